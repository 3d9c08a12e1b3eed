/**
 * An index of every DICOM file under a data directory, for folder trees that do not name
 * their series (CD exports, PACS dumps): path -> SeriesInstanceUID, read from headers only.
 * Each file's slice header is kept too, so that a series' header pass can take it from here
 * instead of reading every file again (while the file's stamp is unchanged: size, mtime, ctime
 * and inode, see FileStamp).
 *
 * Stored in SQLite (better-sqlite3). Updates are incremental: a file whose stamp is unchanged
 * is not read again, new and changed files are read (first kilobytes only), removed
 * files are dropped. Files that are not DICOM are remembered too (with the reason), so they are
 * not read again either. Memory stays small whatever the tree holds: one row per file in flight.
 */
import Database from 'better-sqlite3';
import type { Dir, Stats } from 'node:fs';
import { opendir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { readHeader, type ReadLimits } from '../dicom/fileReader.js';
import type { SliceHeader } from '../dicom/sliceHeader.js';
import { mapLimit } from '../util/async.js';
import { studyDateText, type SeriesSummary } from './summary.js';
import { FileInstance, type FileStamp, type KnownHeader, sameStamp, stampOf } from './fileInstance.js';
import { naturalCompare } from './naturalOrder.js';

export interface IndexProgress {
  phase: 'scan' | 'read';
  done: number;
  total: number;
}

export interface IndexSummary {
  files: number;
  added: number;
  changed: number;
  removed: number;
  unchanged: number;
  notDicom: number;
  series: number;
  seconds: number;
}

/**
 * Version of the tables' shape; the files table of another version is dropped and rebuilt.
 * 4: headers carry the patient and study attributes that GET /series lists.
 * 5: files are known by ctime and inode too, not only size and mtime.
 * The version is raised whenever SliceHeader changes shape, so no header of an older shape is read.
 */
const SCHEMA_VERSION = '5';

interface StampRow {
  size: number;
  mtime_ms: number;
  ctime_ms: number;
  ino: number;
}

const stampOfRow = (r: StampRow): FileStamp => ({ size: r.size, mtimeMs: r.mtime_ms, ctimeMs: r.ctime_ms, ino: r.ino });
const stampColumns = (s: FileStamp): [number, number, number, number] => [s.size, s.mtimeMs, s.ctimeMs, s.ino];

export class SeriesIndex {
  private readonly db: Database.Database;
  private closed = false;
  readonly root: string;
  readonly dbPath: string;

  constructor(root: string, dbPath: string) {
    this.root = resolve(root);
    this.dbPath = resolve(dbPath);
    this.db = new Database(this.dbPath);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.transaction(() => this.migrate())();
  }

  /**
   * Creates the tables. A files table of another schema version (or of none: a database
   * from before versions were recorded) is dropped first, so it is rebuilt in its new shape
   * by the next update.
   */
  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const version = this.db.prepare('SELECT value FROM meta WHERE key = ?').get('schema') as { value: string } | undefined;
    if (version?.value !== SCHEMA_VERSION) this.db.exec('DROP TABLE IF EXISTS files');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ms REAL NOT NULL,
        ctime_ms REAL NOT NULL,
        ino REAL NOT NULL,
        series_uid TEXT,
        note TEXT,
        header TEXT
      );
      CREATE INDEX IF NOT EXISTS files_by_series ON files(series_uid);
    `);
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('schema', SCHEMA_VERSION);
  }

  /**
   * Absolute paths of the files of a series in natural order (IM2 before IM10, as a folder
   * listing of the data directory gives them); empty when unknown.
   */
  filesOf(seriesUid: string): string[] {
    const rows = this.db.prepare('SELECT path FROM files WHERE series_uid = ?').all(seriesUid) as { path: string }[];
    return rows.map((r) => join(this.root, r.path)).sort(naturalCompare);
  }

  /**
   * The slice headers the index holds for the files of a series, by absolute path, with the stamp
   * of the file each was read from (a header is valid only while it is unchanged).
   */
  headersOf(seriesUid: string): Map<string, KnownHeader> {
    const rows = this.db
      .prepare('SELECT path, size, mtime_ms, ctime_ms, ino, header FROM files WHERE series_uid = ? AND header IS NOT NULL')
      .all(seriesUid) as (StampRow & { path: string; header: string })[];
    const known = new Map<string, KnownHeader>();
    for (const r of rows) {
      try {
        known.set(join(this.root, r.path), { ...stampOfRow(r), header: JSON.parse(r.header) as SliceHeader });
      } catch {
        // A header that does not parse is read from the file instead.
      }
    }
    return known;
  }

  /** Series known to the index with their file counts. */
  series(): { seriesUid: string; files: number }[] {
    return this.db
      .prepare('SELECT series_uid AS seriesUid, COUNT(*) AS files FROM files WHERE series_uid IS NOT NULL GROUP BY series_uid ORDER BY series_uid')
      .all() as { seriesUid: string; files: number }[];
  }

  /**
   * A summary of every series the index knows, from the header it keeps of the series' first
   * file (in path order), with the frames of all its files; no file is read. The attributes are
   * taken out by SQLite, so a large index costs no JSON parsing here.
   */
  summaries(): SeriesSummary[] {
    const rows = this.db
      .prepare(
        `SELECT series_uid AS seriesUid, MIN(path) AS first,
           json_extract(header, '$.studyInstanceUid') AS studyUid,
           json_extract(header, '$.patientName') AS patientName,
           json_extract(header, '$.patientId') AS patientId,
           json_extract(header, '$.studyDate') AS studyDate,
           json_extract(header, '$.studyDescription') AS studyDescription,
           json_extract(header, '$.seriesDescription') AS seriesDescription,
           json_extract(header, '$.modality') AS modality,
           json_extract(header, '$.rows') AS rows,
           json_extract(header, '$.columns') AS columns,
           SUM(COALESCE(json_extract(header, '$.numberOfFrames'), 1)) AS images
         FROM files WHERE series_uid IS NOT NULL AND header IS NOT NULL GROUP BY series_uid`,
      )
      .all() as (Omit<SeriesSummary, 'rows' | 'columns' | 'images'> & { rows: unknown; columns: unknown; images: unknown })[];
    // SQLite takes the bare columns from the row of MIN(path): the series' first file.
    const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
    return rows.map((r) => ({
      seriesUid: r.seriesUid,
      studyUid: text(r.studyUid),
      patientName: text(r.patientName),
      patientId: text(r.patientId),
      studyDate: studyDateText(text(r.studyDate) ?? undefined),
      studyDescription: text(r.studyDescription),
      seriesDescription: text(r.seriesDescription),
      modality: text(r.modality),
      images: Number(r.images) || 0,
      rows: Number(r.rows) || 0,
      columns: Number(r.columns) || 0,
    }));
  }

  /** Walks the tree and brings the index up to date. */
  async update(options: { readLimits?: ReadLimits; concurrency?: number; onProgress?: (p: IndexProgress) => void } = {}): Promise<IndexSummary> {
    const started = performance.now();
    const known = new Map<string, FileStamp>();
    for (const row of this.db.prepare('SELECT path, size, mtime_ms, ctime_ms, ino FROM files').iterate() as Iterable<StampRow & { path: string }>) {
      known.set(row.path, stampOfRow(row));
    }
    const skip = new Set([this.dbPath, `${this.dbPath}-wal`, `${this.dbPath}-shm`, `${this.dbPath}-journal`]);
    const found: { rel: string; stamp: FileStamp }[] = [];
    const seen = new Set<string>();
    let unchanged = 0;
    const walk = async (dir: string): Promise<void> => {
      let handle: Dir;
      try {
        handle = await opendir(dir);
      } catch {
        return; // unreadable folder: nothing to index there
      }
      for await (const entry of handle) {
        if (entry.name.startsWith('.')) continue;
        const full = join(dir, entry.name);
        if (entry.isDirectory()) {
          await walk(full);
        } else if (entry.isFile() && !skip.has(full)) {
          const rel = relative(this.root, full).split(sep).join('/');
          seen.add(rel);
          let st: Stats;
          try {
            st = await stat(full);
          } catch {
            continue;
          }
          const k = known.get(rel);
          if (k && sameStamp(k, st)) unchanged++;
          else found.push({ rel, stamp: stampOf(st) });
          if (seen.size % 1000 === 0) options.onProgress?.({ phase: 'scan', done: seen.size, total: 0 });
        }
      }
    };
    await walk(this.root);

    if (this.closed) throw new Error('the index was closed during the update');
    const removed = [...known.keys()].filter((p) => !seen.has(p));
    const upsert = this.db.prepare(
      'INSERT OR REPLACE INTO files (path, size, mtime_ms, ctime_ms, ino, series_uid, note, header) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const remove = this.db.prepare('DELETE FROM files WHERE path = ?');
    this.db.transaction((paths: string[]) => {
      for (const p of paths) remove.run(p);
    })(removed);

    let added = 0;
    let changed = 0;
    let notDicom = 0;
    let done = 0;
    const batchSize = 500;
    for (let start = 0; start < found.length; start += batchSize) {
      if (this.closed) throw new Error('the index was closed during the update');
      const batch = found.slice(start, start + batchSize);
      const rows = await mapLimit(batch, options.concurrency ?? 16, async (f) => {
        try {
          const h = await readHeader(new FileInstance(join(this.root, f.rel), f.rel), options.readLimits);
          const uid = h.seriesInstanceUid ?? null;
          return [f.rel, ...stampColumns(f.stamp), uid, uid ? null : 'no SeriesInstanceUID', uid ? JSON.stringify(h) : null];
        } catch (err) {
          notDicom++;
          return [f.rel, ...stampColumns(f.stamp), null, (err as Error).message.slice(0, 200), null];
        }
      });
      this.db.transaction(() => {
        for (const r of rows) {
          if (known.has(r[0] as string)) changed++;
          else added++;
          upsert.run(...r);
        }
      })();
      done += batch.length;
      options.onProgress?.({ phase: 'read', done, total: found.length });
    }
    const series = (this.db.prepare('SELECT COUNT(DISTINCT series_uid) AS n FROM files').get() as { n: number }).n;
    return {
      files: seen.size,
      added,
      changed,
      removed: removed.length,
      unchanged,
      notDicom,
      series,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** Closes the database; an update under way stops at its next batch. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
