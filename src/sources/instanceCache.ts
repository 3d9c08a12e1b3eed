/**
 * Instances of a remote source (a PACS), kept on disk so that a series is retrieved once: a
 * folder of files named by SOP Instance UID (`<uid>.dcm`), with the list of each series'
 * instances (`<series uid>.series.json`, so that a series whose instances are all here can be
 * served while the source is down), their total size bounded. `CachedInstances`
 * (cachedInstances.ts) puts it in front of a source; this module only keeps files.
 *
 * Policy:
 * - Names: only a valid UID (digits and dots, PS3.5 9.1) names a file, so no name from a source
 *   can reach outside the folder; other files in the folder are left alone and never counted.
 * - Writes are atomic: the bytes go to a temporary file (`.<uid>.<random>.tmp`) that is then
 *   renamed, so a reader never sees half a file. Temporary files left by a process that stopped
 *   mid-write are removed at start.
 * - Bound: the files' sizes add up to at most `maxBytes`. The least recently used go first, at
 *   start (the order of their modification times, which a read brings forward) and whenever an
 *   instance is added; an instance larger than the whole bound is not kept. A series' list is
 *   used whenever one of its instances is, so it outlives them.
 * - Uses are checked: an instance file must be a whole DICOM Part 10 instance of the SOP
 *   Instance UID it is named by (`checkFile`: its header, and its length against its pixel
 *   data), a series file JSON of valid UIDs. One that is not (cut short by a crash, changed by
 *   hand) is removed and reported as absent, so the instance is retrieved again. A good one is
 *   read where it lies, as a folder's file is: its bytes are not held in memory.
 * - One process per folder: the byte count is kept in memory from the scan at start.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isValidUid } from '../core/uid.js';
import { checkFile } from './instanceCheck.js';

const FILE = /^(.+)\.(dcm|series\.json)$/;
const TEMP = /^\..+\.tmp$/;

interface Entry {
  size: number;
  /** Last use, in milliseconds (the file's mtime at start). */
  used: number;
}

/**
 * What the cache keeps of a series: its instances in the order its source listed them, each by
 * its SOP Instance UID, with the name messages give it when that is not the UID. (Lists kept by
 * earlier versions also hold a `studyUid` and each instance's `instanceNumber`: both are ignored.)
 */
export interface SeriesManifest {
  instances: { sopInstanceUid: string; name?: string }[];
}

export interface InstanceCacheStats {
  /** Files held (instances and series lists) and their bytes. */
  files: number;
  bytes: number;
  maxBytes: number;
  /** Since start: instances read from the cache; files written and kept (evicted while being written: not counted); files removed by the bound; files removed as unreadable. */
  hits: number;
  writes: number;
  evicted: number;
  rejected: number;
}

export class InstanceCache {
  readonly dir: string;
  /** By file name, least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  /** Writes under way by file name. */
  private readonly writes = new Map<string, Promise<void>>();
  private counts = { hits: 0, writes: 0, evicted: 0, rejected: 0 };

  /** Resolves once the files already in the folder are counted (and evicted down to the bound). */
  readonly ready: Promise<void>;
  private readonly maxInflatedBytes: number;
  private readonly log: (message: string) => void;

  /**
   * Creates the folder when it is missing (throws at once when it cannot), then counts what it
   * holds and evicts down to `maxBytes` in the background (`ready`); uses wait for that.
   */
  constructor(
    dir: string,
    readonly maxBytes: number,
    options: { maxInflatedBytes?: number; log?: (message: string) => void } = {},
  ) {
    this.dir = resolve(dir);
    this.maxInflatedBytes = options.maxInflatedBytes ?? 1 << 30;
    this.log = options.log ?? (() => {});
    mkdirSync(this.dir, { recursive: true });
    this.ready = this.scan();
    this.ready.catch((err: Error) => this.log(`instance cache ${this.dir} cannot be read: ${err.message}`));
  }

  /** A cache whose folder has been counted. */
  static async open(
    dir: string,
    maxBytes: number,
    options: { maxInflatedBytes?: number; log?: (message: string) => void } = {},
  ): Promise<InstanceCache> {
    const cache = new InstanceCache(dir, maxBytes, options);
    await cache.ready;
    return cache;
  }

  private async scan(): Promise<void> {
    const found: [string, Entry][] = [];
    for (const name of await readdir(this.dir)) {
      if (TEMP.test(name)) {
        await unlink(join(this.dir, name)).catch(() => {});
        continue;
      }
      const uid = FILE.exec(name)?.[1];
      if (uid === undefined || !isValidUid(uid)) continue;
      try {
        const st = await stat(join(this.dir, name));
        if (st.isFile()) found.push([name, { size: st.size, used: st.mtimeMs }]);
      } catch {
        // removed meanwhile
      }
    }
    found.sort((a, b) => a[1].used - b[1].used);
    // Entries made meanwhile (none: every use waits for `ready`) would be the most recent.
    for (const [name, entry] of found) {
      this.entries.set(name, entry);
      this.total += entry.size;
    }
    await this.remove(this.evict(0));
  }

  /** The file name of an instance or of a series list; throws for a string that is not a UID. */
  private static nameOf(uid: string, kind: 'instance' | 'series'): string {
    if (!isValidUid(uid)) throw new RangeError(`not a UID: ${uid.slice(0, 80)}`);
    return kind === 'instance' ? `${uid}.dcm` : `${uid}.series.json`;
  }

  /**
   * Where the cache holds a good copy of the instance (`checkFile`), with its size; null when
   * it holds none (a bad copy is removed). The file is then the most recently used.
   */
  async locate(sopInstanceUid: string): Promise<{ path: string; size: number } | null> {
    const name = InstanceCache.nameOf(sopInstanceUid, 'instance');
    const entry = await this.entry(name);
    if (!entry) return null;
    const path = join(this.dir, name);
    let checked: { size: number } | { wrong: string };
    try {
      checked = await checkFile(path, sopInstanceUid, this.maxInflatedBytes);
    } catch {
      this.forget(name); // gone meanwhile
      return null;
    }
    if ('wrong' in checked) {
      await this.reject(name, checked.wrong);
      return null;
    }
    this.counts.hits++;
    this.used(name, entry, checked.size);
    return { path, size: checked.size };
  }

  /** Whether the cache holds a file for the instance (not checked until read). */
  has(sopInstanceUid: string): boolean {
    // Before `ready` nothing is known to be held.
    return this.entries.has(InstanceCache.nameOf(sopInstanceUid, 'instance'));
  }

  /** The series' list of instances as last kept, or null. */
  async getSeries(seriesUid: string): Promise<SeriesManifest | null> {
    const name = InstanceCache.nameOf(seriesUid, 'series');
    const bytes = await this.read(name);
    if (bytes === null) return null;
    let manifest: SeriesManifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as SeriesManifest;
      const good =
        Array.isArray(manifest?.instances) &&
        manifest.instances.every(
          (i) => typeof i?.sopInstanceUid === 'string' && isValidUid(i.sopInstanceUid) && (i.name === undefined || typeof i.name === 'string'),
        );
      if (!good) throw new Error('not a list of instances');
    } catch (err) {
      await this.reject(name, (err as Error).message);
      return null;
    }
    return { instances: manifest.instances.map(({ sopInstanceUid, name }) => (name === undefined ? { sopInstanceUid } : { sopInstanceUid, name })) };
  }

  /**
   * Makes the series' list of instances the most recently used (as its instances are read or
   * written), so that it is evicted after them, never before.
   */
  touchSeries(seriesUid: string): void {
    const name = InstanceCache.nameOf(seriesUid, 'series');
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    this.entries.set(name, entry);
    const now = Date.now();
    // On disk (the order at the next start) at most once a second.
    if (now - entry.used > 1000) utimes(join(this.dir, name), new Date(now), new Date(now)).catch(() => {});
    entry.used = now;
  }

  /** Keeps the series' list of instances (replacing the one kept). Never rejects. */
  putSeries(seriesUid: string, manifest: SeriesManifest): Promise<void> {
    return this.put(InstanceCache.nameOf(seriesUid, 'series'), Buffer.from(JSON.stringify(manifest)));
  }

  /**
   * Keeps a copy of an instance (already checked by the caller), evicting the least recently
   * used first; resolves once it is written (or found not to fit). Never rejects: a cache that
   * cannot be written only logs.
   */
  putInstance(sopInstanceUid: string, bytes: Buffer): Promise<void> {
    return this.put(InstanceCache.nameOf(sopInstanceUid, 'instance'), bytes);
  }

  /** The entry of a file, once the folder is counted and a write of it under way is done. */
  private async entry(name: string): Promise<Entry | null> {
    if (!(await this.usable())) return null;
    await this.writes.get(name);
    return this.entries.get(name) ?? null;
  }

  /** Makes a file the most recently used, here and (for the order at the next start) on disk. */
  private used(name: string, entry: Entry, size: number): void {
    if (this.entries.get(name) !== entry) return;
    this.entries.delete(name);
    this.total += size - entry.size;
    entry.size = size;
    entry.used = Date.now();
    this.entries.set(name, entry);
    const now = new Date(entry.used);
    utimes(join(this.dir, name), now, now).catch(() => {});
  }

  /** A file's bytes, made the most recently used; null when absent. */
  private async read(name: string): Promise<Buffer | null> {
    const entry = await this.entry(name);
    if (!entry) return null;
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, name));
    } catch {
      this.forget(name);
      return null;
    }
    this.used(name, entry, bytes.length);
    return bytes;
  }

  private async reject(name: string, why: string): Promise<void> {
    this.log(`instance cache: ${name} is removed: ${why}`);
    this.counts.rejected++;
    this.forget(name);
    await unlink(join(this.dir, name)).catch(() => {});
  }

  private put(name: string, bytes: Buffer): Promise<void> {
    // One write of a name at a time: the next waits for the one under way.
    const before = this.writes.get(name) ?? Promise.resolve();
    const write = before
      .then(() => this.write(name, bytes))
      .catch((err: Error) => this.log(`instance cache: ${name} is not kept: ${err.message}`))
      .finally(() => {
        if (this.writes.get(name) === write) this.writes.delete(name);
      });
    this.writes.set(name, write);
    return write;
  }

  private async write(name: string, bytes: Buffer): Promise<void> {
    if (!(await this.usable()) || bytes.length > this.maxBytes) return;
    this.forget(name);
    // Room is made and taken in one step (no other write comes between), and the files making
    // it are gone before this one is written; a file evicted while still being written is
    // removed when its write ends. Files on disk pass the bound by at most the writes under way.
    const victims = this.evict(bytes.length);
    const entry: Entry = { size: bytes.length, used: Date.now() };
    this.entries.set(name, entry);
    this.total += bytes.length;
    await this.remove(victims);
    const temp = join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(temp, bytes);
      // Evicted while it was written (other instances came after it): not kept.
      if (this.entries.get(name) !== entry) {
        await unlink(temp);
        return;
      }
      await rename(temp, join(this.dir, name));
      if (this.entries.get(name) !== entry) await unlink(join(this.dir, name));
      else this.counts.writes++;
    } catch (err) {
      if (this.entries.get(name) === entry) this.forget(name);
      await unlink(temp).catch(() => {});
      throw err;
    }
  }

  /** Whether the folder was counted (a cache that could not be is not used). */
  private async usable(): Promise<boolean> {
    try {
      await this.ready;
      return true;
    } catch {
      return false;
    }
  }

  /** Takes least recently used entries off until `incoming` more bytes fit under the bound; returns their names. */
  private evict(incoming: number): string[] {
    const victims: string[] = [];
    for (const name of this.entries.keys()) {
      if (this.total + incoming <= this.maxBytes) break;
      this.forget(name);
      victims.push(name);
    }
    this.counts.evicted += victims.length;
    return victims;
  }

  private async remove(names: readonly string[]): Promise<void> {
    await Promise.all(names.map((name) => unlink(join(this.dir, name)).catch(() => {})));
  }

  private forget(name: string): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    this.total -= entry.size;
  }

  /** Resolves once the writes under way are done. */
  async idle(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes.values()]);
  }

  stats(): InstanceCacheStats {
    return { files: this.entries.size, bytes: this.total, maxBytes: this.maxBytes, ...this.counts };
  }
}
