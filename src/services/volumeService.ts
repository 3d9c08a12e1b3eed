/**
 * Volumes by series UID: finds the instances in the source, loads them once (however many requests
 * arrive together) and keeps them in the byte-budget cache.
 *
 * Policy:
 * - One load per series and kind (volume, stack) at a time, in the cache's volume region: its
 *   bytes are reserved there from the header pass on, and a load that fails leaves the cache (its
 *   bytes released), so the next request tries again.
 * - `get` gives the complete volume; `open` gives the load itself as soon as its header pass is
 *   done (size, geometry, stored format), so that a request can wait for its own slices only.
 *   A volume already loaded is opened as a complete load.
 * - Stacks (`open` with `allowStack`, for the current API): a series is opened as its volume
 *   when it is one (the very entry `get` and `open` use: one load for both APIs), and as a stack
 *   of images (VolumeLoad.stack) when its slices are not one volume for a reason of geometry
 *   (SliceGeometryError). A stack is cached under its own key (`stackKey`), so `get` and `open`
 *   without the option never see it and still refuse the series with the same 422. A series
 *   found to be a stack is remembered as one, so that later stack requests go straight to the
 *   stack (no header pass to find it out again); should its files have become a volume since, the
 *   stack load says so (no `stack`), and the series is then forgotten as a stack.
 * - The load and the volume it completes to have one volumeId, so images cached from either
 *   are the same images, and a series loaded again never gets them.
 * - A load goes on when the requests that wait for it go away: the volume is kept in the cache
 *   for the next one. It always ends (complete, or failed at its first failing slice).
 */
import { notFound, tooLarge } from '../core/errors.js';
import type { Volume } from '../core/volume/volume.js';
import type { DecodePool } from '../dicom/decodePool.js';
import type { ReadLimits } from '../dicom/fileReader.js';
import { SliceGeometryError } from '../core/volume/sliceOrdering.js';
import { loadedVolume, type VolumeLoad } from '../dicom/progressiveVolume.js';
import { openVolume } from '../dicom/volumeLoader.js';
import type { SeriesSource } from '../sources/source.js';
import type { CacheRegion, Loader } from './budgetCache.js';
import { shareVolumeId } from './cacheRegions.js';

export interface VolumeServiceOptions {
  maxVoxels: number;
  maxFrameBytes?: number;
  maxFilesPerSeries?: number;
  readLimits: ReadLimits;
  concurrency: number;
  log: (message: string) => void;
  /** Decodes compressed frames on worker threads. */
  pool?: DecodePool;
}

export interface OpenOptions {
  /**
   * A series whose images do not form a volume but are a stack of same-size monochrome images
   * is opened as a stack (VolumeLoad.stack) instead of refused with 422.
   */
  allowStack?: boolean;
}

/** Told when a load ends: its time from start to end in seconds, and whether it completed. */
export type LoadListener = (seconds: number, ok: boolean) => void;

/** The cache key of a series' stack (never a series UID, which has no space). */
export const stackKey = (seriesUid: string): string => `${seriesUid} stack`;

export class VolumeService {
  /** Loads under way by cache key (series UID, or stackKey), from the start of their header pass until they end. */
  private readonly loads = new Map<string, Promise<VolumeLoad>>();
  /** Series UIDs whose last load with allowStack was a stack. */
  private readonly stacks = new Set<string>();
  private readonly loadListeners = new Set<LoadListener>();

  constructor(
    private readonly source: SeriesSource,
    /** Where loaded volumes are kept, by series UID (stacks by stackKey). */
    readonly region: CacheRegion<Volume>,
    private readonly options: VolumeServiceOptions,
  ) {}

  /** Loads under way now (volumes and stacks), from the start of their header pass until they end. */
  get loadsInFlight(): number {
    return this.loads.size;
  }

  /** Calls `listener` as each load ends (completed or failed); returns the function that stops it. */
  onLoadEnd(listener: LoadListener): () => void {
    this.loadListeners.add(listener);
    return () => this.loadListeners.delete(listener);
  }

  /**
   * The complete volume of a series, from the cache, from the load under way, or loaded now.
   * Rejects with 404 (no such series), 413 (a limit), 422 (not one volume, or a slice that
   * cannot be read or decoded, named), 503 (no room in the cache in time).
   */
  get(seriesUid: string): Promise<Volume> {
    return this.region.get(seriesUid, this.loader(seriesUid, false));
  }

  /**
   * The series' load: at once for a volume in the cache (complete), else when the header pass of
   * the load under way (started now if none is) is done. Rejects as `get` does for failures of
   * the header pass; later failures reject the load's waiters and `complete`. With `allowStack`,
   * a series whose slices are not one volume by their geometry opens as a stack instead.
   */
  open(seriesUid: string, options: OpenOptions = {}): Promise<VolumeLoad> {
    if (!options.allowStack) return this.openKey(seriesUid, seriesUid, false);
    if (this.stacks.has(seriesUid)) return this.openStack(seriesUid);
    return this.openKey(seriesUid, seriesUid, false).catch((err: unknown) => {
      if (!(err instanceof SliceGeometryError)) throw err;
      this.stacks.add(seriesUid);
      return this.openStack(seriesUid);
    });
  }

  private async openStack(seriesUid: string): Promise<VolumeLoad> {
    const load = await this.openKey(stackKey(seriesUid), seriesUid, true);
    if (!load.stack) this.stacks.delete(seriesUid);
    return load;
  }

  /** The load cached or under way under `key`, started now if there is none. */
  private openKey(key: string, seriesUid: string, allowStack: boolean): Promise<VolumeLoad> {
    const complete = this.region.get(key, this.loader(seriesUid, allowStack));
    // The cache calls the loader (which registers the load) before `get` returns when it starts a load.
    const loading = this.loads.get(key);
    if (loading) {
      complete.catch(() => {}); // the load's failure reaches its waiters
      return loading;
    }
    return complete.then((volume) => {
      const load = loadedVolume(volume);
      shareVolumeId(volume, load);
      return load;
    });
  }

  /** Loads the series under its own key, or (`allowStack`) under its stackKey. */
  private loader(seriesUid: string, allowStack: boolean): Loader<Volume> {
    const key = allowStack ? stackKey(seriesUid) : seriesUid;
    return async (reserve) => {
      let opened!: (load: VolumeLoad) => void;
      let refused!: (err: unknown) => void;
      const opening = new Promise<VolumeLoad>((resolve, reject) => {
        opened = resolve;
        refused = reject;
      });
      opening.catch(() => {}); // seen by whoever opens it
      this.loads.set(key, opening);
      const started = performance.now();
      let ok = false;
      try {
        const found = await this.source.find(seriesUid);
        if (!found) throw notFound(`series ${seriesUid} is not found`);
        const maxFiles = this.options.maxFilesPerSeries ?? Infinity;
        if (found.instances.length > maxFiles) {
          throw tooLarge(`series ${seriesUid} has ${found.instances.length} files, more than maxFilesPerSeries (${maxFiles})`);
        }
        const load = await openVolume(found.instances, {
          seriesInstanceUid: seriesUid,
          maxVoxels: this.options.maxVoxels,
          maxFrameBytes: this.options.maxFrameBytes,
          reserve,
          readLimits: this.options.readLimits,
          log: (m) => this.options.log(`series ${seriesUid}: ${m}`),
          concurrency: this.options.concurrency,
          pool: this.options.pool,
          allowStack,
          onComplete: (volume) => shareVolumeId(load, volume),
        });
        opened(load);
        const volume = await load.complete;
        ok = true;
        return { value: volume, bytes: volume.data.byteLength };
      } catch (err) {
        refused(err);
        throw err;
      } finally {
        if (this.loads.get(key) === opening) this.loads.delete(key);
        const seconds = (performance.now() - started) / 1000;
        for (const listener of this.loadListeners) listener(seconds, ok);
      }
    };
  }
}
