import type { FastifyInstance } from 'fastify';

/** Open /ws/volume sockets, their transfers under way and the images they have sent. */
function volumeSocketStatus(app: FastifyInstance): { sockets: number; transfers: number; imagesSent: number } {
  const sockets = app.volumeSockets.stats();
  return {
    sockets: sockets.length,
    transfers: sockets.reduce((n, s) => n + s.transfers, 0),
    imagesSent: sockets.reduce((n, s) => n + s.imagesSent, 0),
  };
}

/** GET /status: server state, never configuration values or secrets. */
export async function statusRoute(app: FastifyInstance): Promise<void> {
  app.get('/status', { config: { access: 'public' } }, async (_request, reply) => {
    const cache = app.deps.cache.cache.stats();
    const volumes = cache.regions.volumes;
    const mem = process.memoryUsage();
    reply.header('Cache-Control', 'no-store');
    return {
      status: 'Running',
      version: app.deps.version,
      process: {
        memoryUsage: { rss: mem.rss, heapTotal: mem.heapTotal, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers },
        upTime: Math.round(process.uptime() * 1000) / 1000,
        upSince: app.startedAt.toISOString(),
      },
      dicomReader: { count: volumes?.count ?? 0, size: volumes?.bytes ?? 0 },
      cache: {
        budgetBytes: cache.budgetBytes,
        usedBytes: cache.usedBytes,
        entries: cache.count,
        reservedBytes: cache.reservedBytes,
        hits: cache.hits,
        misses: cache.misses,
        evictions: cache.evictions,
        loading: cache.loading,
        regions: cache.regions,
      },
      counter: { ...app.counters },
      authorization: { enabled: app.deps.config.auth },
      renderer: app.deps.renderer.stats(),
      volumeSockets: volumeSocketStatus(app),
      ...(app.deps.statusExtras?.() ?? {}),
    };
  });
}
