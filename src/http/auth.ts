/**
 * Access control, declared per route and enforced in one place.
 *
 * Every route declares who may call it in its config: `{ config: { access: 'public' } }` (anyone:
 * /status, /requestToken, which checks its own client list) or `{ config: { access: 'series' } }`
 * (in authentication mode, only a request carrying a valid token for the series it names, as
 * `Authorization: Bearer <token>` or as the `token` query parameter for <img src>). A route
 * registered without a declaration fails at start, so a new route cannot forget it.
 *
 * The check runs in one onRequest hook, before the handler: the series parameter is validated
 * (400), then a missing or invalid token is 401 before anything is looked up, so a 401 never
 * says whether a series exists.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { CircusError } from '../core/errors.js';
import { seriesParam, sidParam, single, type Query } from './params.js';

export const WWW_AUTHENTICATE = 'Bearer realm="CircusRS"';

/**
 * Who may call a route: anyone, a request with a token for the series it names, or (`listing`:
 * searches and study-level resources, which show patient data across series) anyone unless in
 * authentication mode, where only when allowListing is on (403 otherwise).
 */
export type Access = 'public' | 'series' | 'listing';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (required on every route). */
    access?: Access;
  }
  interface FastifyInstance {
    /** Every route registered, with its declared access (in registration order). */
    routeAccess: { method: string; url: string; access: Access }[];
  }
}

/** The token of an `Authorization: Bearer <token>` header (HTTP requests and WebSocket upgrades); 401 for a header of another form. */
export function bearerToken(header: string): string {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new CircusError('UNAUTHORIZED', 'the Authorization header must be "Bearer <token>"');
  return m[1];
}

function tokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) return bearerToken(header);
  return single(request.query as Query, 'token');
}

/**
 * Checks that `token` opens `series` (HTTP requests and WebSocket transfers): nothing to check
 * when authentication is off; else 401 with the message `missing` when there is no token, and
 * what TokenService.verify says of the token.
 */
export function authorizeSeries(app: FastifyInstance, series: string, token: string | undefined, missing: string): void {
  const tokens = app.deps.tokens;
  if (!app.deps.config.auth || !tokens) return;
  if (token === undefined) throw new CircusError('UNAUTHORIZED', missing);
  tokens.verify(token, series);
}

/**
 * The series a request names: the `sid` path parameter (current API), the `series` path
 * parameter (DICOMweb), else the `series` query parameter (400 when malformed).
 */
export function seriesOf(request: FastifyRequest): string {
  const params = request.params as Record<string, string | undefined> | undefined;
  const sid = params?.sid ?? params?.series;
  return sid !== undefined ? sidParam(sid) : seriesParam(request.query as Query);
}

/** Installs the declaration check and the one access hook; call before any route is registered. */
export function registerAccessControl(app: FastifyInstance): void {
  app.decorate('routeAccess', []);
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const access = route.config?.access;
    if (access !== 'public' && access !== 'series' && access !== 'listing') {
      throw new Error(`route ${methods.join(',')} ${route.url} declares no access ('public', 'series' or 'listing')`);
    }
    for (const method of methods) app.routeAccess.push({ method, url: route.url, access });
  });
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config?.access;
    if (access === 'listing') {
      if (app.deps.config.auth && !app.deps.config.allowListing) {
        throw new CircusError(
          'FORBIDDEN',
          'searches and study-level resources are not answered in authentication mode (they show patient data); allowListing turns them on',
        );
      }
      return;
    }
    if (access !== 'series') return;
    const series = seriesOf(request);
    // The token is read only in authentication mode: without it, a malformed header is no error.
    if (!app.deps.config.auth || !app.deps.tokens) return;
    authorizeSeries(app, series, tokenOf(request), `a token for series ${series} is required (Authorization: Bearer or the token parameter)`);
  });
}
