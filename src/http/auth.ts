/**
 * Authentication mode: when on, a request for a series must carry a token for it, as
 * `Authorization: Bearer <token>` or as the `token` query parameter (for <img src>).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CircusError } from '../core/errors.js';
import { single, type Query } from './params.js';

export const WWW_AUTHENTICATE = 'Bearer realm="CircusRS"';

function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new CircusError('UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"');
    return m[1];
  }
  return single(request.query as Query, 'token');
}

/** Throws 401 unless authentication is off or the request carries a valid token for `series`. */
export function authorize(app: FastifyInstance, request: FastifyRequest, series: string): void {
  const tokens = app.deps.tokens;
  if (!app.deps.config.auth || !tokens) return;
  const token = tokenOf(request);
  if (token === undefined) throw new CircusError('UNAUTHORIZED', `a token for series ${series} is required (Authorization: Bearer or the token parameter)`);
  tokens.verify(token, series);
}
