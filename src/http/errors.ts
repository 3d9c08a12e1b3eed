/**
 * The error body, for the error handler and the places that answer before or outside it.
 *
 * The two APIs name the body's verdict differently: the 2016 routes answer
 * `{"result": "ng", "message"}`, the current CIRCUS API's routes (/series/..., /token)
 * `{"status": "ng", "message"}`. A route says which in its config (`errorStyle`, set for a
 * whole group of routes where they are registered); a request no route took (404, or refused
 * before routing) is answered by its path below the base path.
 */
import { STATUS_CODES } from 'node:http';
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

/** The message of a 404 for a path no route serves (the query left out, the path cut at 100 characters). */
export const unknownAction = (url: string): string => `unknown action ${url.split('?')[0].slice(0, 100)}`;

/**
 * An error answer as the bytes of an HTTP/1.1 response, for a socket fastify does not answer on
 * (a request Node's parser refused, a refused WebSocket upgrade): the status line, Content-Type
 * and Content-Length, then `headers` in their order, then the JSON error body.
 */
export function rawErrorResponse(status: number, style: ErrorStyle, message: string, headers: Record<string, string>): string {
  const body = JSON.stringify({ [style]: 'ng', message });
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
