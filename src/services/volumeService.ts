/**
 * Volumes by series UID: finds the instances in the source, loads them once (however many requests
 * arrive together) and keeps them in the byte-budget cache.
 */
import { notFound, tooLarge } from '../core/errors.js';
import type { Volume } from '../core/volume/volume.js';
import type { DecodePool } from '../dicom/decodePool.js';
import type { ReadLimits } from '../dicom/fileReader.js';
import { loadVolume } from '../dicom/volumeLoader.js';
import type { SeriesSource } from '../sources/source.js';
import type { CacheRegion } from './budgetCache.js';

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

export class VolumeService {
  constructor(
    private readonly source: SeriesSource,
    /** Where loaded volumes are kept, by series UID. */
    readonly region: CacheRegion<Volume>,
    private readonly options: VolumeServiceOptions,
  ) {}

  get(seriesUid: string): Promise<Volume> {
    return this.region.get(seriesUid, async (reserve) => {
      const found = await this.source.find(seriesUid);
      if (!found) throw notFound(`series ${seriesUid} is not found`);
      const maxFiles = this.options.maxFilesPerSeries ?? Infinity;
      if (found.instances.length > maxFiles) {
        throw tooLarge(`series ${seriesUid} has ${found.instances.length} files, more than maxFilesPerSeries (${maxFiles})`);
      }
      const volume = await loadVolume(found.instances, {
        seriesInstanceUid: seriesUid,
        maxVoxels: this.options.maxVoxels,
        maxFrameBytes: this.options.maxFrameBytes,
        reserve,
        readLimits: this.options.readLimits,
        log: (m) => this.options.log(`series ${seriesUid}: ${m}`),
        concurrency: this.options.concurrency,
        pool: this.options.pool,
      });
      return { value: volume, bytes: volume.data.byteLength };
    });
  }
}
