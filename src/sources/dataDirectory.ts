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
import { FileInstance } from './fileInstance.js';
import { naturalCompare } from './naturalOrder.js';
import type { IndexSummary, SeriesIndex } from './seriesIndex.js';
import type { SeriesInstances, SeriesSource } from './source.js';

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

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort(naturalCompare);
}

export class DataDirectorySource implements SeriesSource {
  readonly root: string;
  private indexing: Promise<IndexSummary> | null = null;

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
