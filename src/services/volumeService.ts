/**
 * Volumes by series UID: finds the files in the source, loads them once (however many requests
 * arrive together) and keeps them in the byte-budget cache.
 */
import { notFound } from '../core/errors.js';
import type { Volume } from '../core/volume/volume.js';
import type { DecodePool } from '../dicom/decodePool.js';
import type { ReadLimits } from '../dicom/fileReader.js';
import { loadVolume } from '../dicom/volumeLoader.js';
import type { SeriesSource } from '../sources/dataDirectory.js';
import type { BudgetCache } from './budgetCache.js';

export interface VolumeServiceOptions {
  maxVoxels: number;
  readLimits: ReadLimits;
  concurrency: number;
  log: (message: string) => void;
  /** Decodes compressed frames on worker threads. */
  pool?: DecodePool;
}

export class VolumeService {
  constructor(
    private readonly source: SeriesSource,
    readonly cache: BudgetCache<unknown>,
    private readonly options: VolumeServiceOptions,
  ) {}

  get(seriesUid: string): Promise<Volume> {
    return this.cache.get(`volume:${seriesUid}`, async (reserve) => {
      const found = await this.source.find(seriesUid);
      if (!found) throw notFound(`series ${seriesUid} is not found`);
      const volume = await loadVolume(found.files, {
        seriesInstanceUid: seriesUid,
        maxVoxels: this.options.maxVoxels,
        reserve,
        readLimits: this.options.readLimits,
        label: found.label,
        log: (m) => this.options.log(`series ${seriesUid}: ${m}`),
        concurrency: this.options.concurrency,
        pool: this.options.pool,
      });
      return { value: volume, bytes: volume.data.byteLength };
    }) as Promise<Volume>;
  }
}
