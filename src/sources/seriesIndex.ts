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
import { type InstanceFilter, type InstanceRecord, type SeriesRecord, summaryOfRecord } from '../dicomweb/records.js';
import type { SeriesSummary } from './summary.js';
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
 * 6: headers carry the attributes QIDO-RS matches and returns; files know their SOP Instance UID,
 *    InstanceNumber and frames (columns, for paging instances in SQL and counting without JSON);
 *    the series table sums up each series.
 * The version is raised whenever SliceHeader changes shape, so no header of an older shape is read.
 */
export const SCHEMA_VERSION = '6';

/**
 * The series table's columns that come from the header of the series' first file (in path
 * order), with the SliceHeader field each is taken from.
 */
const SERIES_HEADER_COLUMNS = [
  ['study_uid', 'studyInstanceUid'],
  ['patient_name', 'patientName'],
  ['patient_id', 'patientId'],
  ['patient_birth_date', 'patientBirthDate'],
  ['patient_sex', 'patientSex'],
  ['study_date', 'studyDate'],
  ['study_time', 'studyTime'],
  ['accession_number', 'accessionNumber'],
  ['referring_physician_name', 'referringPhysicianName'],
  ['study_id', 'studyId'],
  ['study_description', 'studyDescription'],
  ['modality', 'modality'],
  ['series_number', 'seriesNumber'],
  ['series_description', 'seriesDescription'],
  ['series_date', 'seriesDate'],
  ['series_time', 'seriesTime'],
  ['rows', 'rows'],
  ['columns', 'columns'],
] as const;

/** A row of the series table. */
interface SeriesRow {
  series_uid: string;
  study_uid: unknown;
  patient_name: unknown;
  patient_id: unknown;
  patient_birth_date: unknown;
  patient_sex: unknown;
  study_date: unknown;
  study_time: unknown;
  accession_number: unknown;
  referring_physician_name: unknown;
  study_id: unknown;
  study_description: unknown;
  modality: unknown;
  series_number: unknown;
  series_description: unknown;
  series_date: unknown;
  series_time: unknown;
  rows: unknown;
  columns: unknown;
  instances: number;
  frames: number;
}

/** Text of a JSON value the header held: null when absent, empty or not text. */
const textOf = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const wholeOf = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : null);

function recordOfRow(r: SeriesRow): SeriesRecord {
  return {
    seriesInstanceUid: r.series_uid,
    studyInstanceUid: textOf(r.study_uid),
    patientName: textOf(r.patient_name),
    patientId: textOf(r.patient_id),
    patientBirthDate: textOf(r.patient_birth_date),
    patientSex: textOf(r.patient_sex),
    studyDate: textOf(r.study_date),
    studyTime: textOf(r.study_time),
    accessionNumber: textOf(r.accession_number),
    referringPhysicianName: textOf(r.referring_physician_name),
    studyId: textOf(r.study_id),
    studyDescription: textOf(r.study_description),
    modality: textOf(r.modality),
    seriesNumber: wholeOf(r.series_number),
    seriesDescription: textOf(r.series_description),
    seriesDate: textOf(r.series_date),
    seriesTime: textOf(r.series_time),
    instances: Number(r.instances) || 0,
    frames: Number(r.frames) || 0,
    rows: Number(r.rows) || 0,
    columns: Number(r.columns) || 0,
  };
}

/** A row of an instance query: the file's columns and what is taken out of its header. */
interface InstanceRow {
  sop_uid: string;
  series_uid: string;
  instance_number: number | null;
  sop_class_uid: unknown;
  study_uid: unknown;
  rows: unknown;
  columns: unknown;
  bits_allocated: unknown;
  frames: unknown;
  transfer_syntax_uid: unknown;
}

const INSTANCE_COLUMNS = `sop_uid, series_uid, instance_number,
  json_extract(header, '$.sopClassUid') AS sop_class_uid,
  json_extract(header, '$.studyInstanceUid') AS study_uid,
  json_extract(header, '$.rows') AS rows,
  json_extract(header, '$.columns') AS columns,
  json_extract(header, '$.bitsAllocated') AS bits_allocated,
  json_extract(header, '$.numberOfFrames') AS frames,
  json_extract(header, '$.transferSyntaxUid') AS transfer_syntax_uid`;

function instanceOfRow(r: InstanceRow): InstanceRecord {
  return {
    sopInstanceUid: r.sop_uid,
    sopClassUid: textOf(r.sop_class_uid),
    seriesInstanceUid: r.series_uid,
    studyInstanceUid: textOf(r.study_uid),
    instanceNumber: wholeOf(r.instance_number),
    rows: Number(r.rows) || 0,
    columns: Number(r.columns) || 0,
    bitsAllocated: Number(r.bits_allocated) || 0,
    numberOfFrames: Number(r.frames) || 1,
    transferSyntaxUid: textOf(r.transfer_syntax_uid) ?? '',
  };
}

/** Most values of one list of an instance filter (they go to SQLite as one JSON array each). */
export const MAX_FILTER_VALUES = 100_000;

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
    if (version?.value !== SCHEMA_VERSION) this.db.exec('DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS series');
    const hadSeries = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'series'").get() !== undefined;
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ms REAL NOT NULL,
        ctime_ms REAL NOT NULL,
        ino REAL NOT NULL,
        series_uid TEXT,
        note TEXT,
        header TEXT,
        sop_uid TEXT,
        instance_number REAL,
        frames INTEGER
      );
      CREATE INDEX IF NOT EXISTS files_by_series ON files(series_uid, path, frames);
      CREATE INDEX IF NOT EXISTS files_by_sop ON files(sop_uid);
      CREATE TABLE IF NOT EXISTS series (
        series_uid TEXT PRIMARY KEY,
        ${SERIES_HEADER_COLUMNS.map(([c]) => `${c}`).join(',\n        ')},
        instances INTEGER NOT NULL,
        frames INTEGER NOT NULL
      );
    `);
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('schema', SCHEMA_VERSION);
    // A series table missing beside files of this version (removed by hand) is summed up again.
    if (!hadSeries) {
      const uids = this.db.prepare('SELECT DISTINCT series_uid AS uid FROM files WHERE series_uid IS NOT NULL').all() as { uid: string }[];
      this.refreshSeries(uids.map((u) => u.uid));
    }
  }

  /**
   * Sums up `uids` again in the series table from their files (each from the header of its first
   * file in path order, counted over every file), and drops those that have no file left. Called
   * inside the transaction that changed their files, so the table never disagrees with them.
   * The index (series_uid, path, frames) makes the first file one lookup and the counts a read of
   * the index alone, so a large series summed up again at every batch of an update costs no JSON
   * parsing but that of its first header.
   */
  private refreshSeries(uids: Iterable<string>): void {
    const drop = this.db.prepare('DELETE FROM series WHERE series_uid = ?');
    const insert = this.db.prepare(`
      INSERT INTO series (series_uid, ${SERIES_HEADER_COLUMNS.map(([c]) => c).join(', ')}, instances, frames)
      SELECT f.series_uid, ${SERIES_HEADER_COLUMNS.map(([, field]) => `json_extract(f.header, '$.${field}')`).join(', ')}, c.n, c.frames
      FROM (SELECT series_uid, header FROM files WHERE series_uid = @uid ORDER BY path LIMIT 1) AS f,
        (SELECT COUNT(*) AS n, SUM(COALESCE(frames, 1)) AS frames FROM files WHERE series_uid = @uid) AS c`);
    for (const uid of uids) {
      drop.run(uid);
      insert.run({ uid });
    }
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
   * A summary of every series the index knows (GET /series), from the series table: the header
   * of the series' first file (in path order), with the frames of all its files; no file is read.
   */
  summaries(): SeriesSummary[] {
    return this.seriesRecords().map(summaryOfRecord);
  }

  /**
   * The record of every series the index knows: one read of the series table (kept up to date
   * by `update`, one row a series), however many files the series hold; no header is parsed.
   */
  seriesRecords(): SeriesRecord[] {
    return (this.db.prepare('SELECT * FROM series').all() as SeriesRow[]).map(recordOfRow);
  }

  /** The record of one series, or null when the index does not know it. */
  seriesRecord(seriesUid: string): SeriesRecord | null {
    const row = this.db.prepare('SELECT * FROM series WHERE series_uid = ?').get(seriesUid) as SeriesRow | undefined;
    return row ? recordOfRow(row) : null;
  }

  /**
   * The instances of a series, by InstanceNumber (those without one last), then SOP Instance
   * UID. A SOP Instance UID found in several files (copies) is listed once, from the file first
   * in path order; files without a SOP Instance UID are left out (DICOMweb cannot name them).
   */
  instanceRecords(seriesUid: string): InstanceRecord[] {
    return this.instanceRecordsWhere({ seriesUids: [seriesUid] }, { limit: Number.MAX_SAFE_INTEGER, offset: 0 }).records;
  }

  /**
   * One page of the instances that pass `filter` (every list given must hold the instance's
   * value; every number given must equal it), ordered by series UID, InstanceNumber (those
   * without one last) and SOP Instance UID, with the number of all that pass. Filtering,
   * ordering and paging are SQLite's, so a page costs its own rows, not the whole index.
   */
  instanceRecordsWhere(filter: InstanceFilter, page: { limit: number; offset: number }): { records: InstanceRecord[]; total: number } {
    const where: string[] = ['sop_uid IS NOT NULL', 'header IS NOT NULL'];
    const args: (string | number)[] = [];
    const list = (column: string, values: readonly string[] | undefined): void => {
      if (values === undefined) return;
      if (values.length > MAX_FILTER_VALUES) throw new RangeError(`an instance filter lists more than ${MAX_FILTER_VALUES} values`);
      where.push(`${column} IN (SELECT value FROM json_each(?))`);
      args.push(JSON.stringify(values));
    };
    list('series_uid', filter.seriesUids);
    list('sop_uid', filter.sopInstanceUids);
    list("json_extract(header, '$.sopClassUid')", filter.sopClassUids);
    const equal = (column: string, value: number | undefined): void => {
      if (value === undefined) return;
      where.push(`${column} = ?`);
      args.push(value);
    };
    equal('instance_number', filter.instanceNumber);
    equal("json_extract(header, '$.rows')", filter.rows);
    equal("json_extract(header, '$.columns')", filter.columns);
    equal("json_extract(header, '$.bitsAllocated')", filter.bitsAllocated);
    equal("COALESCE(json_extract(header, '$.numberOfFrames'), 1)", filter.numberOfFrames);
    // One row a SOP Instance UID of a series: SQLite takes the bare columns from the row of MIN(path).
    const grouped = `SELECT MIN(path) AS path, ${INSTANCE_COLUMNS} FROM files WHERE ${where.join(' AND ')} GROUP BY series_uid, sop_uid`;
    const limit = Math.max(0, Math.min(Math.trunc(page.limit), Number.MAX_SAFE_INTEGER));
    const offset = Math.max(0, Math.trunc(page.offset));
    const rows = this.db
      .prepare(`${grouped} ORDER BY series_uid, instance_number IS NULL, instance_number, sop_uid LIMIT ? OFFSET ?`)
      .all(...args, limit, offset) as InstanceRow[];
    const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM (${grouped})`).get(...args) as { n: number }).n;
    return { records: rows.map(instanceOfRow), total };
  }

  /** The absolute path of the file of an instance of a series (the first in path order when copies hold it), or null. */
  fileOfInstance(seriesUid: string, sopInstanceUid: string): string | null {
    const row = this.db.prepare('SELECT MIN(path) AS path FROM files WHERE series_uid = ? AND sop_uid = ?').get(seriesUid, sopInstanceUid) as
      | { path: string | null }
      | undefined;
    return row?.path ? join(this.root, row.path) : null;
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
      'INSERT OR REPLACE INTO files (path, size, mtime_ms, ctime_ms, ino, series_uid, note, header, sop_uid, instance_number, frames) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const remove = this.db.prepare('DELETE FROM files WHERE path = ?');
    const seriesOfPath = this.db.prepare('SELECT series_uid AS uid FROM files WHERE path = ?');
    /** The series a file was in before it changed (to be summed up again without it). */
    const previousSeries = (path: string, into: Set<string>): void => {
      const uid = (seriesOfPath.get(path) as { uid: string | null } | undefined)?.uid;
      if (uid) into.add(uid);
    };
    this.db.transaction((paths: string[]) => {
      const touched = new Set<string>();
      for (const p of paths) {
        previousSeries(p, touched);
        remove.run(p);
      }
      this.refreshSeries(touched);
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
          const uid = h.seriesInstanceUid || null;
          const sop = uid ? h.sopInstanceUid || null : null;
          const number = uid && h.instanceNumber !== undefined && Number.isFinite(h.instanceNumber) ? h.instanceNumber : null;
          return [
            f.rel,
            ...stampColumns(f.stamp),
            uid,
            uid ? null : 'no SeriesInstanceUID',
            uid ? JSON.stringify(h) : null,
            sop,
            number,
            uid ? h.numberOfFrames : null,
          ];
        } catch (err) {
          notDicom++;
          return [f.rel, ...stampColumns(f.stamp), null, (err as Error).message.slice(0, 200), null, null, null, null];
        }
      });
      this.db.transaction(() => {
        const touched = new Set<string>();
        for (const r of rows) {
          const path = r[0] as string;
          if (known.has(path)) {
            changed++;
            previousSeries(path, touched);
          } else added++;
          upsert.run(...r);
          if (typeof r[5] === 'string') touched.add(r[5]);
        }
        this.refreshSeries(touched);
      })();
      done += batch.length;
      options.onProgress?.({ phase: 'read', done, total: found.length });
    }
    const series = (this.db.prepare('SELECT COUNT(*) AS n FROM series').get() as { n: number }).n;
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
