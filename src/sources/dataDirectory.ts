/**
 * Series from a data directory, the embedded default source. Three layouts are looked up, in
 * this order, for a series UID:
 * 1. the CIRCUS layout `DIR/<SeriesInstanceUID>/...`;
 * 2. its hashed form `DIR/<sha256(uid) hex [0:2]>/<[2:4]>/<uid>/...`;
 * 3. any other tree of DICOM files, through the SQLite index of headers (`SeriesIndex`).
 * A lookup that misses while the index is being built waits for the build to finish.
 *
 * The UID must already be valid (`isValidUid`); it is checked again here before a path is built.
 * Instances are files named, in messages, by their path below the data directory, and listed in
 * natural order (the order of series without geometry).
 */
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { isValidUid } from '../core/uid.js';
import { readHeader } from '../dicom/fileReader.js';
import type { SliceHeader } from '../dicom/sliceHeader.js';
import { mapLimit, reuseFor } from '../util/async.js';
import { FileInstance, type FileStamp, sameStamp, stampOf } from './fileInstance.js';
import { naturalCompare } from './naturalOrder.js';
import type { IndexSummary, SeriesIndex } from './seriesIndex.js';
import type { SeriesInstances, SeriesSource } from './source.js';
import { LIST_REUSE_MS, type SeriesSummary } from './summary.js';
import { type SeriesRecord, seriesRecordOf, summaryOfRecord } from '../dicomweb/records.js';

/** Which layout of the data directory a series was found in. */
export type Layout = 'circus' | 'hashed' | 'index';

export const hashedDir = (root: string, uid: string): string => {
  const h = createHash('sha256').update(uid).digest('hex');
  return join(root, h.slice(0, 2), h.slice(2, 4), uid);
};

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function subfolders(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  } catch {
    return [];
  }
}

const HASH_PART = /^[0-9a-f]{2}$/;
/** Files tried, in order, for a folder's summary before the folder is left out of the list. */
const SUMMARY_TRIES = 8;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort(naturalCompare);
}

/** Whether the file at `path` still has `stamp` (false when it is gone). */
async function unchanged(path: string, stamp: FileStamp): Promise<boolean> {
  try {
    return sameStamp(await stat(path), stamp);
  } catch {
    return false;
  }
}

export class DataDirectorySource implements SeriesSource {
  /** The listing, reused for LIST_REUSE_MS. */
  private readonly listing = reuseFor(LIST_REUSE_MS, () => this.listNow());
  readonly root: string;
  private indexing: Promise<IndexSummary> | null = null;
  /**
   * Records of the layouts' series folders, by folder, while the folder's mtime (files added,
   * removed, renamed) and the stamp of the file summed up (rewritten in place) are unchanged.
   */
  private readonly folderRecords = new Map<
    string,
    { mtimeMs: number; record: SeriesRecord | null; from: { path: string; stamp: FileStamp } | null }
  >();

  constructor(
    root: string,
    private readonly index: SeriesIndex | null,
  ) {
    this.root = resolve(root);
  }

  /** Records an index update under way; lookups that miss wait for it. */
  indexingStarted(update: Promise<IndexSummary>): void {
    const p = update.finally(() => {
      if (this.indexing === p) this.indexing = null;
    });
    this.indexing = p;
    p.catch(() => {});
  }

  get indexInProgress(): boolean {
    return this.indexing !== null;
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    const found = await this.findFiles(seriesUid);
    if (!found) return null;
    // Headers the index read before save the header pass from reading every file again.
    const known = this.index?.headersOf(seriesUid);
    return { instances: found.files.map((p) => new FileInstance(p, relative(this.root, p), known?.get(p))) };
  }

  /**
   * Every series of the data directory: the folders of the CIRCUS and hashed layouts, each summed
   * up from its first file that reads (the index's header of it while the file is unchanged), then
   * the index's other series, from the headers it keeps (no file is read for those). A listing
   * is reused for two seconds, so a search typed key by key walks the folders once.
   */
  async listSeries(): Promise<SeriesSummary[]> {
    return (await this.listing()).map(summaryOfRecord);
  }

  /**
   * The records of the same series as `listSeries` (from the same listing): a layout folder's
   * record counts its files as instances, times the frames of the file summed up as frames.
   */
  seriesRecords(): Promise<SeriesRecord[]> {
    return this.listing();
  }

  private async listNow(): Promise<SeriesRecord[]> {
    const folders = await this.layoutFolders();
    const records = await mapLimit(folders, 8, ({ uid, dir }) => this.folderRecord(uid, dir));
    const seen = new Set(folders.map((f) => f.dir));
    for (const dir of this.folderRecords.keys()) if (!seen.has(dir)) this.folderRecords.delete(dir);
    const out = new Map<string, SeriesRecord>();
    for (const r of records) if (r && !out.has(r.seriesInstanceUid)) out.set(r.seriesInstanceUid, r);
    for (const r of this.index?.seriesRecords() ?? []) if (!out.has(r.seriesInstanceUid)) out.set(r.seriesInstanceUid, r);
    return [...out.values()];
  }

  /** Series folders: `DIR/<uid>` (CIRCUS layout), then `DIR/xx/yy/<uid>` where xx/yy begin the UID's hash. */
  private async layoutFolders(): Promise<{ uid: string; dir: string }[]> {
    const circus: { uid: string; dir: string }[] = [];
    const hashed: { uid: string; dir: string }[] = [];
    for (const name of await subfolders(this.root)) {
      if (name.length > 2 && isValidUid(name)) circus.push({ uid: name, dir: join(this.root, name) });
      else if (HASH_PART.test(name)) {
        for (const sub of await subfolders(join(this.root, name))) {
          if (!HASH_PART.test(sub)) continue;
          for (const uid of await subfolders(join(this.root, name, sub))) {
            const dir = join(this.root, name, sub, uid);
            if (isValidUid(uid) && hashedDir(this.root, uid) === dir) hashed.push({ uid, dir });
          }
        }
      }
    }
    return [...circus, ...hashed];
  }

  /** A folder's record: its first file that reads; frames are its files times that file's frames. */
  private async folderRecord(uid: string, dir: string): Promise<SeriesRecord | null> {
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(dir)).mtimeMs;
    } catch {
      return null;
    }
    const cached = this.folderRecords.get(dir);
    if (cached && cached.mtimeMs === mtimeMs && (cached.from === null || (await unchanged(cached.from.path, cached.from.stamp))))
      return cached.record;
    const files = await listFiles(dir).catch(() => [] as string[]);
    const known = this.index?.headersOf(uid);
    let record: SeriesRecord | null = null;
    let from: { path: string; stamp: FileStamp } | null = null;
    for (const path of files.slice(0, SUMMARY_TRIES)) {
      const instance = new FileInstance(path, relative(this.root, path), known?.get(path));
      let header: SliceHeader | undefined;
      try {
        const stamp = stampOf(await stat(path));
        header = (await instance.knownHeader()) ?? (await readHeader(instance));
        from = { path, stamp };
      } catch {
        continue;
      }
      record = seriesRecordOf(uid, header, files.length, files.length * header.numberOfFrames);
      break;
    }
    this.folderRecords.set(dir, { mtimeMs, record, from });
    return record;
  }

  /** The files of a series (absolute paths, natural order) and the layout they were found in. */
  async findFiles(seriesUid: string): Promise<{ files: string[]; layout: Layout } | null> {
    if (!isValidUid(seriesUid)) return null;
    // A two-character name at the top is a folder of the hashed layout, never a series.
    const candidates = [
      ...(seriesUid.length > 2 ? ([['circus', join(this.root, seriesUid)]] as const) : []),
      ['hashed', hashedDir(this.root, seriesUid)] as const,
    ];
    for (const [layout, dir] of candidates) {
      if (await isDirectory(dir)) {
        const files = await listFiles(dir);
        if (files.length > 0) return { files, layout };
      }
    }
    if (!this.index) return null;
    let files = this.index.filesOf(seriesUid);
    if (files.length === 0 && this.indexing) {
      await this.indexing.catch(() => {});
      files = this.index.filesOf(seriesUid);
    }
    return files.length > 0 ? { files, layout: 'index' } : null;
  }
}
