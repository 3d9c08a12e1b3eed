import type { FastifyInstance } from 'fastify';
import { addressAllowed, addressList } from '../../config/addresses.js';
import { CircusError } from '../../core/errors.js';
import { seriesParam, type Query } from '../params.js';

/**
 * GET /requestToken?series=UID: a token for the series, for clients whose address is in
 * tokenIssuers (behind trusted proxies, the address X-Forwarded-For gives).
 */
export async function requestTokenRoute(app: FastifyInstance): Promise<void> {
  const issuers = addressList(app.deps.config.tokenIssuers);
  app.get('/requestToken', { config: { access: 'public' } }, async (request, reply) => {
    reply.header('Cache-Control', 'no-store');
    const series = seriesParam(request.query as Query);
    if (!addressAllowed(issuers, request.ip)) throw new CircusError('FORBIDDEN', `tokens are not issued to ${request.ip}`);
    const { token, expiresAt } = app.deps.tokens!.issue(series);
    return { result: 'ok', token, expiresAt: expiresAt.toISOString() };
  });
}
