/**
 * Health checks for process supervisors and load balancers, public and under the base path like
 * every route:
 * - GET /health/live: 200 `{"status":"ok"}` as long as the process runs and answers, shutting
 *   down included (a liveness probe must not have a process killed while it finishes its
 *   requests).
 * - GET /health/ready: 200 `{"status":"ok"}` when the server can serve series: not shutting
 *   down, its header index open (when it uses one), its source reachable (the data directory
 *   listable); otherwise 503 `{"status":"unavailable","reason":"..."}`. A load balancer stops
 *   sending requests to a replica that is not ready.
 * Both answer while the server shuts down (route option `whileClosing`), when every other route
 * is 503, and are never cached.
 */
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers while the server shuts down, when every other route is refused with 503. */
    whileClosing?: boolean;
  }
}

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const config = { access: 'public', whileClosing: true } as const;
  app.get('/health/live', { config }, async (_request, reply) => {
    reply.header('Cache-Control', 'no-store');
    return { status: 'ok' };
  });
  app.get('/health/ready', { config }, async (_request, reply) => {
    reply.header('Cache-Control', 'no-store');
    const reason = app.closing ? null : ((await app.deps.readiness?.()) ?? null);
    // Shutting down may also have begun while the checks ran.
    const why = app.closing ? 'the server is shutting down' : reason;
    if (why === null) return { status: 'ok' };
    return reply.code(503).send({ status: 'unavailable', reason: why });
  });
}
