/**
 * An instance cache in front of a series source: `CachedInstances` is a SeriesSource around
 * another (a PACS, or any source whose bytes are dear to get), keeping the instances it reads
 * in an `InstanceCache` folder so that a series is retrieved once, and serving a series from
 * there while the source is down. The source behind knows nothing of it.
 *
 * Policy:
 * - What is kept: the instances of a series whose source names every one by a valid SOP
 *   Instance UID before reading it (`sopInstanceUid`: a PACS lists them so). A series with an
 *   instance the source does not name so is handed on as the source gave it, nothing kept.
 * - Finding: the source is asked first, every time (its list is the truth), and the list of
 *   the series' instances is kept. When the source fails (`isSourceFailure`: a PACS down or too
 *   slow, 502 or 504), a series whose kept list's instances are all in the cache is served from
 *   it, with a log line; otherwise the failure stands.
 * - Reading: an instance is found on its first read, once, however many reads wait for it: its
 *   file in the cache, checked (InstanceCache.locate) and read where it lies as a folder's file
 *   is, never held in memory; else its bytes from the source, held in memory for the life of
 *   the load and kept in the cache. A good copy is made the most recently used, and so is the
 *   series' list with it.
 * - Before the first read that goes to the source, the source is told which instances it will
 *   be asked for (`willRead`: those the cache does not hold), so that a source that retrieves a
 *   whole series at once (DICOMweb) does so only when the cache holds none of it.
 * - A cache file that disappears under a read (evicted for other instances) is read from the
 *   source instead; a read that failed is tried again on the next read. An instance served from
 *   the kept list alone is found in the source again (a new lookup) when its file has gone.
 * - Bytes from the source are kept as they come: the cache checks every file against its UID
 *   when it is read, so a wrong copy is removed and read from the source again.
 * - Headers the source knows (`knownHeader`) are not passed on: a copy in the cache may be older
 *   than the file they were read from.
 * - A decoding worker is given bytes, never a cache file's path: a file evicted before the
 *   worker opened it would fail the decoding (a 422) where a read here finds the instance again.
 */
import { badGateway, isSourceFailure } from '../core/errors.js';
import { isValidUid } from '../core/uid.js';
import type { WorkerInput } from '../dicom/instance.js';
import { FileInstance } from './fileInstance.js';
import type { InstanceCache, InstanceCacheStats, SeriesManifest } from './instanceCache.js';
import type { SeriesInstances, SeriesSource, SourceInstance } from './source.js';
import type { SeriesSummary } from './summary.js';
import type { SeriesRecord } from '../dicomweb/records.js';

/** Counters since start. */
export interface CachedInstancesStats {
  /** Instances read from the cache, and from the source behind it (then kept). */
  fromCache: number;
  fromSource: number;
}

/** Where an instance's bytes are: a checked file of the cache, or in memory (read from the source). */
type Located = { kind: 'file'; file: FileInstance; size: number } | { kind: 'bytes'; data: Buffer };

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

export class CachedInstances implements SeriesSource {
  /** The source's listing, when it has one (the cache lists nothing of its own). */
  readonly listSeries?: () => Promise<SeriesSummary[]>;
  /** The source's records, when it has them. */
  readonly seriesRecords?: () => Promise<SeriesRecord[]>;
  /** The source's readiness, when it has one: a cache does not make a source reachable. */
  readonly readiness?: () => Promise<string | null>;
  private readonly counts: CachedInstancesStats = { fromCache: 0, fromSource: 0 };
  private readonly log: (message: string) => void;

  constructor(
    readonly source: SeriesSource,
    readonly cache: InstanceCache,
    options: { log?: (message: string) => void } = {},
  ) {
    this.log = options.log ?? (() => {});
    if (source.listSeries) this.listSeries = () => source.listSeries!();
    if (source.seriesRecords) this.seriesRecords = () => source.seriesRecords!();
    if (source.readiness) this.readiness = () => source.readiness!();
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    let found: SeriesInstances | null;
    try {
      found = await this.source.find(seriesUid);
    } catch (err) {
      // The source is down: a series whose instances are all in the cache is served from there.
      const kept = isSourceFailure(err) && isValidUid(seriesUid) ? await this.cache.getSeries(seriesUid) : null;
      if (!kept?.instances.every((i) => this.cache.has(i.sopInstanceUid))) throw err;
      this.log(`series ${seriesUid} is served from the instance cache: ${(err as Error).message}`);
      void this.cache.putSeries(seriesUid, kept);
      return new CachedSeries(this, seriesUid, null, kept).result();
    }
    if (found === null || found.instances.length === 0) return found;
    if (!found.instances.every((i) => typeof i.sopInstanceUid === 'string' && isValidUid(i.sopInstanceUid))) return found;
    const manifest: SeriesManifest = {
      instances: found.instances.map((i) =>
        i.name === i.sopInstanceUid ? { sopInstanceUid: i.name } : { sopInstanceUid: i.sopInstanceUid!, name: i.name },
      ),
    };
    void this.cache.putSeries(seriesUid, manifest);
    return new CachedSeries(this, seriesUid, found, manifest).result();
  }

  /** Where an instance's bytes are: its file in the cache (unless `skipCache`), else read from the source and kept. */
  async locate(instance: CachedInstance, skipCache: boolean): Promise<Located> {
    const cached = skipCache ? null : await this.cache.locate(instance.sopInstanceUid);
    if (cached) {
      this.counts.fromCache++;
      this.cache.touchSeries(instance.series.seriesUid);
      return { kind: 'file', file: new FileInstance(cached.path, instance.name), size: cached.size };
    }
    const data = await instance.series.fromSource(instance);
    this.counts.fromSource++;
    void this.cache.putInstance(instance.sopInstanceUid, data);
    this.cache.touchSeries(instance.series.seriesUid);
    return { kind: 'bytes', data };
  }

  stats(): CachedInstancesStats {
    return { ...this.counts };
  }

  /** The cache's figures. */
  cacheStats(): InstanceCacheStats {
    return this.cache.stats();
  }

  /** Resolves once the cache's writes under way are done. */
  idle(): Promise<void> {
    return this.cache.idle();
  }
}

/** The instances of one series as one lookup found them, and the source's own where it gave them. */
class CachedSeries {
  readonly instances: CachedInstance[];
  private told = false;
  /** The source's instances by SOP Instance UID: as found, or (served from the kept list) found again when needed. */
  private inner: Promise<Map<string, SourceInstance>> | null;

  constructor(
    readonly owner: CachedInstances,
    readonly seriesUid: string,
    private readonly found: SeriesInstances | null,
    manifest: SeriesManifest,
  ) {
    this.instances = manifest.instances.map((i) => new CachedInstance(this, i.sopInstanceUid, i.name ?? i.sopInstanceUid));
    this.inner = found ? Promise.resolve(new Map(found.instances.map((i) => [i.sopInstanceUid!, i]))) : null;
  }

  result(): SeriesInstances {
    return { instances: this.instances };
  }

  /** The bytes of `instance` from the source, which is told first which instances it will be asked for. */
  async fromSource(instance: CachedInstance): Promise<Buffer> {
    if (!this.told && this.found) this.tell(this.found);
    this.told = true;
    const inner = (await this.innerInstances()).get(instance.sopInstanceUid);
    if (!inner) {
      throw badGateway(`instance ${instance.name} of series ${this.seriesUid} has left the instance cache and its source no longer has it`);
    }
    return inner.bytes();
  }

  /** Tells the source which of its instances it will be asked for: those the cache does not hold. */
  private tell(found: SeriesInstances): void {
    const cache = this.owner.cache;
    found.willRead?.(found.instances.filter((i) => !(i.sopInstanceUid && cache.has(i.sopInstanceUid))));
  }

  /** The source's instances; found again (once at a time, again after a failure) when the series was served from the kept list. */
  private innerInstances(): Promise<Map<string, SourceInstance>> {
    if (!this.inner) {
      const p = this.owner.source.find(this.seriesUid).then((again) => {
        if (again) this.tell(again);
        return new Map((again?.instances ?? []).flatMap((i) => (i.sopInstanceUid ? [[i.sopInstanceUid, i] as const] : [])));
      });
      this.inner = p;
      p.catch(() => {
        if (this.inner === p) this.inner = null;
      });
    }
    return this.inner;
  }
}

/**
 * One instance behind the cache, found on its first read (once, however many reads wait for
 * it): a file of the cache, read where it lies, or its bytes from the source, then held in
 * memory. A cached file that disappears under a read is read from the source instead; a read
 * that failed is tried again on the next read.
 */
class CachedInstance implements SourceInstance {
  private located: Promise<Located> | null = null;

  constructor(
    readonly series: CachedSeries,
    readonly sopInstanceUid: string,
    readonly name: string,
  ) {}

  private locate(skipCache = false): Promise<Located> {
    if (!this.located) {
      const p = this.series.owner.locate(this, skipCache);
      this.located = p;
      p.catch(() => {
        if (this.located === p) this.located = null;
      });
    }
    return this.located;
  }

  /** `use` on where the bytes are; again on the source's bytes when the cached file has gone. */
  private async use<T>(use: (at: Located) => Promise<T>): Promise<T> {
    const at = await this.locate();
    try {
      return await use(at);
    } catch (err) {
      if (at.kind !== 'file' || !isMissing(err)) throw err;
      if (this.located && (await this.located) === at) this.located = null;
      return use(await this.locate(true));
    }
  }

  read(target: Buffer, position: number, targetOffset = 0, length = target.length - targetOffset): Promise<number> {
    return this.use(async (at) => {
      if (at.kind === 'file') return at.file.read(target, position, targetOffset, length);
      if (position >= at.data.length) return 0;
      return at.data.copy(target, targetOffset, position, Math.min(at.data.length, position + length));
    });
  }

  size(): Promise<number> {
    return this.use(async (at) => (at.kind === 'file' ? at.size : at.data.length));
  }

  bytes(): Promise<Buffer> {
    return this.use(async (at) => (at.kind === 'file' ? at.file.bytes() : at.data));
  }

  async forWorker(): Promise<WorkerInput> {
    // Bytes, never a cache file's path (see the module comment).
    const data = await this.bytes();
    // A view into a larger buffer would send the whole buffer: send exactly the instance.
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    return { kind: 'bytes', bytes: whole ? data : new Uint8Array(data) };
  }
}
