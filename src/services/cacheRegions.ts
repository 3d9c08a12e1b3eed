/**
 * The regions of the server's one byte budget, declared in one place:
 * - volumes: loaded volumes by series UID; may evict anything;
 * - volumeStreams: complete gzip streams of /raw by loaded volume and format; may evict anything;
 * - images: rendered PNGs by loaded volume and view; take only free room or other images' room,
 *   since an image is cheap to make again and a volume is not.
 * Keys of volume streams and images name the loaded volume (volumeId), so a series loaded again
 * never gets another load's bytes; an image made from a volume while it loads is keyed by the
 * same id as one made from the complete volume.
 */
import type { Volume } from '../core/volume/volume.js';
import type { VolumeLoad } from '../dicom/progressiveVolume.js';
import { BudgetCache, type CacheRegion } from './budgetCache.js';

/** A complete gzip stream, as the pieces it was made of (no final copy). */
export interface CompressedStream {
  pieces: Buffer[];
  bytes: number;
}

/** A rendered image as it is sent. */
export interface RenderedImage {
  png: Buffer;
  headers: Record<string, string>;
}

export interface CacheRegions {
  cache: BudgetCache;
  volumes: CacheRegion<Volume>;
  volumeStreams: CacheRegion<CompressedStream>;
  images: CacheRegion<RenderedImage>;
}

export function createCacheRegions(budgetBytes: number, waitMs?: number): CacheRegions {
  const cache = new BudgetCache(budgetBytes, waitMs);
  return {
    cache,
    volumes: cache.region<Volume>('volumes', { evictsOthers: true }),
    volumeStreams: cache.region<CompressedStream>('volumeStreams', { evictsOthers: true }),
    images: cache.region<RenderedImage>('images', { evictsOthers: false }),
  };
}

const volumeIds = new WeakMap<object, number>();
let nextVolumeId = 1;

/**
 * An id for one loaded volume, so that images and streams of a volume loaded again are never
 * mixed up. A load under way (a VolumeLoad) and the Volume it completes to share one id (see
 * `shareVolumeId`), so images made before and after completion share one key space.
 */
export function volumeId(v: Volume | VolumeLoad): number {
  let id = volumeIds.get(v);
  if (id === undefined) {
    id = nextVolumeId++;
    volumeIds.set(v, id);
  }
  return id;
}

/** Gives `to` the id of `from` (allocated now if `from` has none): the same load seen two ways. */
export function shareVolumeId(from: Volume | VolumeLoad, to: Volume | VolumeLoad): void {
  volumeIds.set(to, volumeId(from));
}
