/**
 * Composition: config -> source -> services -> app. The source is the data directory with its
 * header index unless the caller gives another (tests give a series in memory). Used by the
 * CLI and by the benchmarks, so both run exactly what a user runs.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { DecodePool } from './dicom/decodePool.js';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { indexPathOf, type Config } from './config/config.js';
import { buildApp } from './http/app.js';
import { createCacheRegions, type CacheRegions } from './services/cacheRegions.js';
import { serverReadiness } from './services/readiness.js';
import { RenderPool, type Renderer } from './services/renderPool.js';
import { TokenService } from './services/tokens.js';
import { VolumeService } from './services/volumeService.js';
import { DicomwebCatalog } from './services/dicomwebCatalog.js';
import { CompositeSource } from './sources/composite.js';
import { DataDirectorySource } from './sources/dataDirectory.js';
import { CachedInstances } from './sources/cachedInstances.js';
import { type DicomwebStats, DicomwebSource } from './sources/dicomweb.js';
import { InstanceCache, type InstanceCacheStats } from './sources/instanceCache.js';
import { SeriesIndex, type IndexSummary } from './sources/seriesIndex.js';
import type { SeriesSource } from './sources/source.js';
import type { SeriesSummary } from './sources/summary.js';
import type { SeriesRecord } from './dicomweb/records.js';

export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface Server {
  app: FastifyInstance;
  source: SeriesSource;
  /** The header index of the data directory; null when off or when another source is used. */
  index: SeriesIndex | null;
  /** The DICOMweb PACS looked up after the data directory (`dicomwebUrl`); null when none (or another source is used). */
  dicomweb: Pacs | null;
  volumes: VolumeService;
  cache: CacheRegions;
  /** Brings the header index up to date in the background; lookups that miss wait for it. */
  startIndexing(): Promise<IndexSummary> | null;
  /** Settles once the workers started by `warmWorkers` are up (at once without it); never rejects. */
  warmed: Promise<void>;
  close(): Promise<void>;
}

/**
 * The PACS as the server reaches it: the DICOMweb source, behind the instance cache when one is
 * configured (`instanceCacheDir`). Lookups go through the cache; the figures are the source's and the cache's.
 */
export interface Pacs extends SeriesSource {
  listSeries(): Promise<SeriesSummary[]>;
  seriesRecords(): Promise<SeriesRecord[]>;
  readiness(): Promise<string | null>;
  /** One page of the PACS's series (QIDO-RS), as `DicomwebSource.list`. */
  list: DicomwebSource['list'];
  /** The DICOMweb source's counters, and the instances read from the instance cache (0 without one). */
  stats(): DicomwebStats & { fromCache: number };
  /** The instance cache's figures, or null without one. */
  cacheStats(): InstanceCacheStats | null;
  /** Resolves once the instance cache's writes under way are done. */
  idle(): Promise<void>;
}

/** The PACS `dicomweb`, behind `cached` when there is one. */
function pacsOf(dicomweb: DicomwebSource, cached: CachedInstances | null): Pacs {
  const front: SeriesSource = cached ?? dicomweb;
  return {
    find: (seriesUid) => front.find(seriesUid),
    listSeries: () => dicomweb.listSeries(),
    seriesRecords: () => dicomweb.seriesRecords(),
    readiness: () => dicomweb.readiness(),
    list: (options) => dicomweb.list(options),
    stats: () => ({ ...dicomweb.stats(), fromCache: cached?.stats().fromCache ?? 0 }),
    cacheStats: () => cached?.cacheStats() ?? null,
    idle: async () => {
      await cached?.idle();
    },
  };
}

export interface ServerOptions {
  /** fastify logger option (a level, a destination stream); false for silence. */
  logger?: FastifyServerOptions['logger'];
  /** Whether to use the SQLite header index (folder trees without UIDs in their names). */
  useIndex?: boolean;
  /** The clock of token expiry (milliseconds); Date.now by default. */
  now?: () => number;
  /** Start the decoding and rendering workers now rather than on first use. */
  warmWorkers?: boolean;
  /** Where series come from instead of the data directory (`dataDir` and the index are then unused). */
  source?: SeriesSource;
  /** What renders images instead of the pool of rendering workers (benchmarks compare the two). */
  renderer?: Renderer;
  /** The folder of the built viewer, instead of dist/viewer (tests build it elsewhere). */
  viewerDir?: string;
}

export function createServer(config: Config, options: ServerOptions = {}): Server {
  let index: SeriesIndex | null = null;
  let indexError: string | null = null;
  if (!options.source && options.useIndex !== false) {
    try {
      index = new SeriesIndex(config.dataDir, indexPathOf(config));
    } catch (err) {
      indexError = `header index ${indexPathOf(config)} cannot be opened: ${(err as Error).message}`;
    }
  }
  const directory = options.source ? null : new DataDirectorySource(config.dataDir, index);
  const cache = createCacheRegions(config.cacheBytes, config.cacheWaitMs);
  let lastIndex: IndexSummary | null = null;
  let log: (message: string) => void = () => {};
  // The PACS after the folder: a series in the folder is never asked of the PACS. The instance
  // cache, when there is one, is in front of the PACS.
  let dicomweb: Pacs | null = null;
  if (!options.source && config.dicomwebUrl !== '') {
    const pacs = new DicomwebSource({
      url: config.dicomwebUrl,
      headers: config.dicomwebHeaders,
      timeoutMs: config.dicomwebTimeoutMs,
      concurrency: config.dicomwebConcurrency,
      maxInflatedBytes: config.maxInflatedBytes,
      maxInstances: config.maxFilesPerSeries,
      log: (m) => log(m),
    });
    const cached =
      config.instanceCacheDir === ''
        ? null
        : new CachedInstances(
            pacs,
            new InstanceCache(config.instanceCacheDir, config.instanceCacheBytes, { maxInflatedBytes: config.maxInflatedBytes, log: (m) => log(m) }),
            { log: (m) => log(m) },
          );
    dicomweb = pacsOf(pacs, cached);
  }
  const source: SeriesSource = options.source ?? (dicomweb ? new CompositeSource([directory!, dicomweb]) : directory!);
  const pool = new DecodePool(config.decodeWorkers > 0 ? config.decodeWorkers : availableParallelism(), config.workerTaskTimeoutMs);
  const renderPool = options.renderer
    ? null
    : new RenderPool(config.renderWorkers > 0 ? config.renderWorkers : availableParallelism(), config.workerTaskTimeoutMs);
  const renderer: Renderer = options.renderer ?? renderPool!;
  const warmed: Promise<void> = options.warmWorkers
    ? Promise.all([
        pool.warm().catch((err: Error) => app.log.warn(`decoding workers did not start: ${err.message}`)),
        renderPool?.warm().catch((err: Error) => app.log.warn(`rendering workers did not start: ${err.message}`)),
      ]).then(() => {})
    : Promise.resolve();
  const volumes = new VolumeService(source, cache.volumes, {
    pool,
    maxVoxels: config.maxVoxels,
    maxFrameBytes: config.maxFrameBytes,
    maxFilesPerSeries: config.maxFilesPerSeries,
    readLimits: { maxInflatedBytes: config.maxInflatedBytes },
    concurrency: config.loadConcurrency,
    log: (m) => log(m),
  });
  const secretGiven = config.tokenSecret !== '';
  const tokens = new TokenService({ secret: secretGiven ? config.tokenSecret : randomBytes(32), ttlSeconds: config.tokenTtl, now: options.now });
  const app = buildApp({
    config,
    volumes,
    cache,
    renderer,
    tokens,
    version: VERSION,
    logger: options.logger ?? false,
    decoder: pool,
    // The data directory's series, then the PACS's (CompositeSource.listSeries).
    listSource: source,
    catalog: new DicomwebCatalog(source, { readLimits: { maxInflatedBytes: config.maxInflatedBytes } }),
    viewerDir: options.viewerDir,
    readiness: serverReadiness({ indexError: () => indexError, dataDir: directory ? config.dataDir : null, source }),
    statusExtras: () => ({
      index: {
        enabled: index !== null,
        updating: directory?.indexInProgress ?? false,
        lastUpdate: lastIndex ? { files: lastIndex.files, series: lastIndex.series, seconds: lastIndex.seconds } : null,
      },
      dicomweb: dicomweb ? { ...dicomweb.stats(), instanceCache: dicomweb.cacheStats() } : null,
    }),
  });
  log = (m) => app.log.warn(m);
  if (indexError) app.log.warn(indexError);
  // Without authentication tokens are only issued, never required: the warning would mislead.
  if (!secretGiven && config.auth) {
    app.log.warn('no tokenSecret is set: a random one is used, so tokens die with this process and other instances do not accept them');
  }

  return {
    app,
    source,
    index,
    dicomweb,
    volumes,
    cache,
    startIndexing() {
      if (!index || !directory) return null;
      const update = index.update({ readLimits: { maxInflatedBytes: config.maxInflatedBytes } }).then((summary) => {
        lastIndex = summary;
        return summary;
      });
      directory.indexingStarted(update);
      return update;
    },
    warmed,
    async close() {
      app.closing = true;
      await app.close();
      await pool.close();
      await renderer.close();
      index?.close();
      // Instances being written to the instance cache are finished, so a restart finds them.
      await dicomweb?.idle();
    },
  };
}
