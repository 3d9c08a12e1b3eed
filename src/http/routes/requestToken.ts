import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { addressAllowed, addressList } from '../../config/addresses.js';
import { CircusError } from '../../core/errors.js';
import { seriesParam, type Query } from '../params.js';

/**
 * The token issuance /requestToken and /token share: a token for the `series` parameter's
 * series, for clients whose address is in tokenIssuers (behind trusted proxies, the address
 * X-Forwarded-For gives: see src/http/clientAddress.ts); 403 for others. Never cached.
 */
export function tokenIssuer(app: FastifyInstance): (request: FastifyRequest, reply: FastifyReply) => { token: string; expiresAt: string } {
  const issuers = addressList(app.deps.config.tokenIssuers);
  return (request, reply) => {
    reply.header('Cache-Control', 'no-store');
    const series = seriesParam(request.query as Query);
    const address = app.clientAddress(request.raw);
    if (!addressAllowed(issuers, address)) throw new CircusError('FORBIDDEN', `tokens are not issued to ${address}`);
    const { token, expiresAt } = app.deps.tokens!.issue(series);
    return { token, expiresAt: expiresAt.toISOString() };
  };
}

/** GET /requestToken?series=UID (the 2016 API). */
export async function requestTokenRoute(app: FastifyInstance): Promise<void> {
  const issue = tokenIssuer(app);
  app.get('/requestToken', { config: { access: 'public' } }, async (request, reply) => ({ result: 'ok', ...issue(request, reply) }));
}

/** GET /token?series=UID (the current CIRCUS API). */
export async function tokenRoute(app: FastifyInstance): Promise<void> {
  const issue = tokenIssuer(app);
  app.get('/token', { config: { access: 'public' } }, async (request, reply) => ({ result: 'OK', ...issue(request, reply) }));
}
