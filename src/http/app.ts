/**
 * The HTTP application: buildApp(deps) returns a fastify instance that is not listening, so
 * tests call `inject` and the CLI calls `listen`. One error handler maps domain errors to the
 * contract's statuses and JSON bodies; 5xx details are hidden unless in development mode.
 */
import type { IncomingMessage } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { CircusError } from '../core/errors.js';
import { BASE_PATH_PATTERN, type Config } from '../config/config.js';
import type { CacheRegions } from '../services/cacheRegions.js';
import type { ReadinessCheck } from '../services/readiness.js';
import type { PoolStats } from '../workers/workerPool.js';
import { inProcessRenderer, type Renderer } from '../services/renderPool.js';
import type { TokenService } from '../services/tokens.js';
import type { WorkerInput } from '../dicom/instance.js';
import type { DicomwebCatalog } from '../services/dicomwebCatalog.js';
import type { VolumeService } from '../services/volumeService.js';
import type { SeriesSource } from '../sources/source.js';
import { registerAccessControl, WWW_AUTHENTICATE } from './auth.js';
import { clientAddresses } from './clientAddress.js';
import { rawErrorResponse, sendError, unknownAction } from './errors.js';
import { CORS_HEADERS, INSTANCE_HEADER } from './headers.js';
import { installMetrics, metricsRoute } from './metrics.js';
import { healthRoutes } from './routes/health.js';
import { metadataRoute } from './routes/metadata.js';
import { mprRoute } from './routes/mpr.js';
import { obliqueRoute } from './routes/oblique.js';
import { rawRoute } from './routes/raw.js';
import { currentApiRoutes } from './routes/currentApi.js';
import { requestTokenRoute } from './routes/requestToken.js';
import { seriesListRoute } from './routes/seriesList.js';
import { viewerRoute } from './routes/viewer.js';
import { statusRoute } from './routes/status.js';
import { registerVolumeSocket } from './ws/index.js';
import { dicomwebRoutes } from './dicomweb/index.js';

export interface AppDeps {
  /** The server's options (the app reads those of its routes, limits and headers). */
  config: Config;
  volumes: VolumeService;
  /** The byte-budget cache and its regions (volumes, volume streams, rendered images). */
  cache: CacheRegions;
  /** Renders images (a pool of worker threads; on the calling thread when not given). */
  renderer?: Renderer;
  /** Signs and checks access tokens (needed for /requestToken and authentication mode). */
  tokens?: TokenService;
  version: string;
  /** fastify logger option: false in tests, a level or pino options from the CLI. */
  logger?: FastifyServerOptions['logger'];
  /** Extra status fields (index progress and the like). */
  statusExtras?: () => Record<string, unknown>;
  /** Where GET /series lists series from (the server's source); without one, or one without `listSeries`, GET /series is 404. */
  listSource?: SeriesSource;
  /** The folder of the built viewer (dist/viewer by default). */
  viewerDir?: string;
  /** The pool of threads decoding compressed frames (its figures go to /metrics). */
  decoder?: {
    stats(): PoolStats;
    toExplicitLittle?(input: WorkerInput, maxInflatedBytes: number): Promise<Buffer>;
    decodeFrame?(input: WorkerInput, frame: number, maxInflatedBytes: number): Promise<Uint8Array>;
  };
  /** Why the server cannot serve series now, null when it can (GET /health/ready); ready when not given. */
  readiness?: ReadinessCheck;
  /** What the DICOMweb face serves (over the server's source); without it (or with `dicomweb` off) there is none. */
  catalog?: DicomwebCatalog;
}

export interface Counters {
  [action: string]: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps & { renderer: Renderer };
    counters: Counters;
    startedAt: Date;
    /** Set when shutting down: new requests get 503 while those in flight finish. */
    closing: boolean;
  }
}

export { CORS_HEADERS, EXPOSED_HEADERS, INSTANCE_HEADER } from './headers.js';

export function buildApp(deps: AppDeps): FastifyInstance {
  // Authentication without a way to check tokens would let every request through.
  if (deps.config.auth && !deps.tokens) throw new Error('authentication mode needs a token service');
  const basePath = deps.config.basePath ?? '';
  if (basePath !== '' && !BASE_PATH_PATTERN.test(basePath)) throw new Error(`basePath must start with '/' and not end with '/', got '${basePath}'`);
  const instanceName = deps.config.instanceName ?? '';
  const instance: Record<string, string> = instanceName ? { [INSTANCE_HEADER]: instanceName } : {};
  // One notion of the client's address: fastify's request.ip trusts the proxies ours does.
  const clientAddress = clientAddresses(deps.config.trustProxy);
  const app = Fastify({
    logger: deps.logger ?? false,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    trustProxy: deps.config.trustProxy.length > 0 ? (address: string) => clientAddress.trusts(address) : false,
    requestTimeout: deps.config.requestTimeoutMs,
    // A client that stops reading (a stalled /raw download) is cut off after two minutes.
    connectionTimeout: 120_000,
    // Room for a URL of maxUrlLength plus ordinary headers, so the URL limit is ours to answer.
    http: { maxHeaderSize: Math.max(16 * 1024, deps.config.maxUrlLength + 8 * 1024) },
    // Requests Node's parser refuses (headers too long, malformed) get the contract's body too.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      // A response already under way on this connection (a /raw download) must not get another
      // one spliced into its body: the connection is only closed.
      const current = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (current?.headersSent) {
        socket.destroy(err);
        return;
      }
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const message =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? 'bad request: the request line and headers are too long'
          : timeout
            ? 'the request was not received in time'
            : `bad request: ${err.code ?? 'malformed request'}`;
      if (socket.writable) {
        const headers = { 'Access-Control-Allow-Origin': deps.config.corsOrigin, ...instance, Connection: 'close' };
        socket.write(rawErrorResponse(timeout ? 408 : 400, 'result', message, headers));
      }
      socket.destroy(err);
    },
    keepAliveTimeout: 5000,
    routerOptions: { caseSensitive: true, ignoreTrailingSlash: true },
    // Requests fastify refuses before routing (a malformed URL) get the contract's body too.
    frameworkErrors: (error, _request, reply) => {
      reply.header('Access-Control-Allow-Origin', deps.config.corsOrigin).headers(CORS_HEADERS);
      if (instanceName) reply.header(INSTANCE_HEADER, instanceName);
      sendError(reply, 400, `bad request: ${error.message}`);
    },
  });
  app.decorate('deps', { ...deps, renderer: deps.renderer ?? inProcessRenderer });
  app.decorate('counters', { _error: 0 } as Counters);
  app.decorate('startedAt', new Date());
  app.decorate('closing', false);
  app.decorate('clientAddress', (req: IncomingMessage) => clientAddress.of(req));
  app.addHook('preClose', async () => {
    app.closing = true;
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('Access-Control-Allow-Origin', deps.config.corsOrigin);
    reply.headers(CORS_HEADERS);
    if (instanceName) reply.header(INSTANCE_HEADER, instanceName);
    if (deps.config.corsOrigin !== '*') reply.header('Vary', 'Origin');
    if (app.closing && !request.routeOptions.config?.whileClosing) {
      return sendError(reply.header('Connection', 'close'), 503, 'the server is shutting down');
    }
    if (request.url.length > deps.config.maxUrlLength) {
      return sendError(reply, 400, `the URL is longer than ${deps.config.maxUrlLength} characters`);
    }
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'OPTIONS') {
      return sendError(reply.header('Allow', 'GET, HEAD, OPTIONS'), 405, `method ${request.method} is not allowed; use GET`);
    }
  });

  // After the hook above: a request refused there is never checked for a token.
  registerAccessControl(app);

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.method === 'OPTIONS') return;
    const action = request.routeOptions.config?.counter ?? (request.routeOptions.url?.slice(basePath.length).replace(/^\//, '') || 'unknown');
    if (reply.statusCode >= 400) app.counters._error++;
    else app.counters[action] = (app.counters[action] ?? 0) + 1;
  });
  installMetrics(app);

  // Preflight on any path (under the base path or not): 204 with the CORS headers the hook above set.
  app.options('*', { config: { access: 'public' } }, async (_request, reply) => {
    reply.code(204).send();
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 404, unknownAction(request.url));
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof CircusError) {
      if (error.status >= 500) request.log.error({ err: error }, error.message);
      if (error.status === 401) {
        const presented = request.headers.authorization !== undefined || (request.query as Record<string, unknown>)?.token !== undefined;
        reply.header('WWW-Authenticate', presented ? `${WWW_AUTHENTICATE}, error="invalid_token"` : WWW_AUTHENTICATE);
      }
      return sendError(reply, error.status, error.message);
    }
    // Errors fastify raises itself for malformed requests (bad URL encoding and the like).
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, 400, `bad request: ${error.message}`);
    }
    request.log.error({ err: error }, 'internal error');
    return sendError(reply, 500, 'internal error', deps.config.development ? { stack: error.stack } : {});
  });

  // Every route of both APIs sits under the base path (the root when it is empty).
  app.register(
    async (api) => {
      api.register(statusRoute);
      api.register(metadataRoute);
      api.register(mprRoute);
      api.register(obliqueRoute);
      api.register(rawRoute);
      if (deps.tokens) api.register(requestTokenRoute);
      api.register(currentApiRoutes);
      api.register(seriesListRoute);
      if (deps.config.viewer) api.register(viewerRoute);
      api.register(healthRoutes);
      api.register(metricsRoute);
      if (deps.config.dicomweb && deps.catalog) api.register(dicomwebRoutes);
    },
    { prefix: basePath },
  );
  // WebSocket /ws/volume: upgrades of the HTTP server, outside fastify's routing.
  registerVolumeSocket(app);
  return app;
}
