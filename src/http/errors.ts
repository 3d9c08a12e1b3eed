/**
 * The error body, for the error handler and the places that answer before or outside it.
 *
 * The two APIs name the body's verdict differently: the 2016 routes answer
 * `{"result": "ng", "message"}`, the current CIRCUS API's routes (/series/..., /token)
 * `{"status": "ng", "message"}`. A route says which in its config (`errorStyle`, set for a
 * whole group of routes where they are registered); a request no route took (404, or refused
 * before routing) is answered by its path below the base path.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The key of the error body's verdict: `result` (2016 API) or `status` (current CIRCUS API). */
export type ErrorStyle = 'result' | 'status';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How the route's error bodies name their verdict (default `result`). */
    errorStyle?: ErrorStyle;
  }
}

/** Paths of the current CIRCUS API, below the base path. */
const CURRENT_API_PATH = /^\/(series\/|token\/?$)/;

/** Whether `path` (no query) is one of the current CIRCUS API's, below `basePath`. */
export function isCurrentApiPath(path: string, basePath: string): boolean {
  if (basePath !== '' && !(path === basePath || path.startsWith(`${basePath}/`))) return false;
  return CURRENT_API_PATH.test(path.slice(basePath.length));
}

/** The error style of a request: its route's, else by its path. */
export function errorStyleOf(request: FastifyRequest): ErrorStyle {
  let declared: ErrorStyle | undefined;
  try {
    declared = request.routeOptions.config?.errorStyle;
  } catch {
    // A request refused before routing has no route options.
  }
  if (declared) return declared;
  const basePath = (request.server as { deps?: { config: { basePath?: string } } }).deps?.config.basePath ?? '';
  return isCurrentApiPath((request.url ?? '').split('?')[0], basePath) ? 'status' : 'result';
}

export function sendError(reply: FastifyReply, status: number, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({ [errorStyleOf(reply.request)]: 'ng', message, ...extra });
}
