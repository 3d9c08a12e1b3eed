/**
 * Prometheus metrics: GET /metrics answers the text exposition format (prom-client).
 *
 * Policy:
 * - Each app has its own registry (tests build several apps in one process, and two apps must
 *   never count each other's requests). The process metrics of prom-client's default collectors
 *   (CPU, memory, event loop lag, garbage collection, handles) describe the process, not an app:
 *   they are collected once per process, in a registry of their own, and merged into every scrape.
 * - Requests are counted, and their latency observed, by route pattern below the base path
 *   (`/mpr`, `/series/:sid/metadata`), method and status; never by URL or series UID, which would
 *   make a series of samples per series and grow without bound. Requests no route takes (404s)
 *   are counted under the route `unmatched`, CORS preflight requests under `*`. The WebSocket
 *   upgrade is not a fastify route: the socket figures below count it.
 * - Figures the server keeps anyway (cache regions, loads in flight, worker pools, WebSocket
 *   sockets) are read when scraped, so a scrape agrees with /status taken at the same moment.
 *   Only request latencies and load times are observed as they happen.
 * - /metrics is public (no token): it names no series and no configuration value. Operators
 *   keep it off the public side of their reverse proxy (deploy/nginx.conf refuses it) and
 *   scrape each replica directly.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStats, RegionStats } from '../services/budgetCache.js';
import type { PoolStats } from '../workers/workerPool.js';

/** Request latency buckets in seconds: from a cached PNG (about a millisecond) to a cold load of a large series. */
export const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Load time buckets in seconds: a small series from memory to a large compressed one from a network disk. */
export const LOAD_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** The route label of a request no route took. */
export const UNMATCHED_ROUTE = 'unmatched';

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's own metrics (requests, cache, loads, pools, sockets); /metrics adds the process's. */
    metrics: Registry;
  }
}

let processRegistry: Registry | null = null;

/** The registry of the process metrics, made (and its collectors started) on first use. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The route pattern of a request below the base path, as it is labelled. */
export function routeLabel(request: FastifyRequest, basePath: string): string {
  const url = request.routeOptions.url;
  if (url === undefined) return UNMATCHED_ROUTE;
  if (basePath !== '' && url.startsWith(basePath)) return url.slice(basePath.length) || '/';
  return url;
}

/**
 * Creates the app's registry and its metrics, and observes every response. Call once, on the
 * root instance, after `deps` is decorated; /metrics itself is `metricsRoute`.
 */
export function installMetrics(app: FastifyInstance): void {
  const registry = new Registry();
  app.decorate('metrics', registry);
  const { deps } = app;
  const basePath = deps.config.basePath ?? '';
  const registers = [registry];

  new Gauge({
    name: 'circus_rs_info',
    help: 'Always 1; the labels name the version and the instance (instanceName)',
    labelNames: ['version', 'instance'],
    registers,
  }).set({ version: deps.version, instance: deps.config.instanceName ?? '' }, 1);

  const requests = new Counter({
    name: 'circus_rs_http_requests_total',
    help: 'HTTP requests answered, by route pattern (below the base path), method and status',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  const latency = new Histogram({
    name: 'circus_rs_http_request_duration_seconds',
    help: 'Time from the request to the end of its response, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: REQUEST_BUCKETS,
    registers,
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = { route: routeLabel(request, basePath), method: request.method, status: String(reply.statusCode) };
    requests.inc(labels);
    latency.observe(labels, reply.elapsedTime / 1000);
  });

  // The cache, by region (volumes, volumeStreams, images) and as a whole.
  const cacheStats = (): CacheStats => deps.cache.cache.stats();
  const regionGauge = (name: string, help: string, pick: (r: RegionStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['region'],
      registers,
      collect() {
        this.reset();
        for (const [region, r] of Object.entries(cacheStats().regions)) this.set({ region }, pick(r));
      },
    });
  const regionCounter = (name: string, help: string, pick: (r: RegionStats) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['region'],
      registers,
      collect() {
        this.reset();
        for (const [region, r] of Object.entries(cacheStats().regions)) this.inc({ region }, pick(r));
      },
    });
  regionGauge('circus_rs_cache_bytes', 'Bytes the cache holds, by region', (r) => r.bytes);
  regionGauge('circus_rs_cache_entries', 'Values the cache holds, by region', (r) => r.count);
  regionCounter('circus_rs_cache_hits_total', 'Lookups answered from the cache or from a load under way, by region', (r) => r.hits);
  regionCounter('circus_rs_cache_misses_total', 'Lookups that found nothing (a load started, an image to render), by region', (r) => r.misses);
  regionCounter('circus_rs_cache_evictions_total', 'Values evicted to make room, by region', (r) => r.evictions);
  new Gauge({
    name: 'circus_rs_cache_budget_bytes',
    help: 'The byte budget of the cache (cacheBytes)',
    registers,
    collect() {
      this.set(cacheStats().budgetBytes);
    },
  });
  new Gauge({
    name: 'circus_rs_cache_reserved_bytes',
    help: 'Bytes reserved by loads under way (not yet held as values)',
    registers,
    collect() {
      this.set(cacheStats().reservedBytes);
    },
  });

  // Loads of series into volumes.
  new Gauge({
    name: 'circus_rs_volume_loads_in_flight',
    help: 'Series being loaded now (from the start of the header pass to the complete volume or failure)',
    registers,
    collect() {
      this.set(deps.volumes.loadsInFlight);
    },
  });
  const loadTime = new Histogram({
    name: 'circus_rs_volume_load_duration_seconds',
    help: 'Time to load a series, from finding its instances to the complete volume, by outcome (ok, error)',
    labelNames: ['outcome'],
    buckets: LOAD_BUCKETS,
    registers,
  });
  const unsubscribe = deps.volumes.onLoadEnd((seconds, ok) => loadTime.observe({ outcome: ok ? 'ok' : 'error' }, seconds));
  app.addHook('onClose', async () => unsubscribe());

  // The worker pools: decoding compressed frames, rendering images (none when rendering in process).
  const pools = (): [string, PoolStats][] => {
    const out: [string, PoolStats][] = [];
    const decoding = deps.decoder?.stats();
    if (decoding) out.push(['decoding', decoding]);
    const rendering = deps.renderer.stats();
    if (rendering) out.push(['rendering', rendering]);
    return out;
  };
  const poolGauge = (name: string, help: string, pick: (p: PoolStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, p] of pools()) this.set({ pool }, pick(p));
      },
    });
  poolGauge('circus_rs_worker_pool_size', 'Threads a worker pool may run, by pool (decoding, rendering)', (p) => p.size);
  poolGauge('circus_rs_worker_pool_workers', 'Threads started, by pool', (p) => p.workers);
  poolGauge('circus_rs_worker_pool_busy', 'Threads running a task, by pool', (p) => p.busy);
  poolGauge('circus_rs_worker_pool_queued', 'Tasks waiting for a thread, by pool', (p) => p.queued);

  // WebSocket /ws/volume.
  const sockets = () => app.volumeSockets.stats();
  const socketTotals = () => app.volumeSockets.totals();
  new Gauge({
    name: 'circus_rs_ws_sockets',
    help: '/ws/volume sockets open now',
    registers,
    collect() {
      this.set(sockets().length);
    },
  });
  new Gauge({
    name: 'circus_rs_ws_transfers',
    help: '/ws/volume transfers under way now',
    registers,
    collect() {
      this.set(sockets().reduce((n, s) => n + s.transfers, 0));
    },
  });
  new Counter({
    name: 'circus_rs_ws_sockets_opened_total',
    help: '/ws/volume sockets accepted since start',
    registers,
    collect() {
      this.reset();
      this.inc(socketTotals().sockets);
    },
  });
  new Counter({
    name: 'circus_rs_ws_transfers_total',
    help: '/ws/volume transfers begun since start',
    registers,
    collect() {
      this.reset();
      this.inc(socketTotals().transfers);
    },
  });
  new Counter({
    name: 'circus_rs_ws_images_sent_total',
    help: 'Images sent over /ws/volume since start',
    registers,
    collect() {
      this.reset();
      this.inc(socketTotals().imagesSent);
    },
  });
}

/** The text of a scrape: the app's metrics and the process's. */
export function scrape(app: FastifyInstance): Promise<string> {
  return Registry.merge([processMetrics(), app.metrics]).metrics();
}

/** GET /metrics (public; see the policy above). */
export async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get('/metrics', { config: { access: 'public' } }, async (_request, reply) => {
    const text = await scrape(app);
    reply.header('Cache-Control', 'no-store').type(app.metrics.contentType);
    return text;
  });
}
