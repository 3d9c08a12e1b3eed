/**
 * The HTTP side of /ws/volume: which upgrades become sockets, and what the others are answered.
 *
 * Policy:
 * - The socket is a WebSocket upgrade (`Upgrade: websocket`) of `${basePath}/ws/volume` on the
 *   HTTP server; a WebSocket upgrade of any other path is refused with 404, a client address with
 *   wsMaxSocketsPerAddress sockets open already with 429, and, when authentication is on, an
 *   upgrade without `?token=` with 401. A request asking for another upgrade (`Upgrade: h2c`) is
 *   handed back to the HTTP server, which answers it as an ordinary request.
 * - While the server shuts down, upgrades are refused with 503. A page from an origin other than
 *   corsOrigin (when it names one) is refused with 403: browsers apply no CORS to WebSockets.
 * - The token is `?token=` (browsers cannot set headers on a WebSocket) or an Authorization
 *   Bearer header, read by the HTTP routes' parser (a malformed header 401, both given 400); it
 *   is checked against each transfer's series later (connection.ts). The client address is the
 *   HTTP routes' (src/http/clientAddress.ts).
 * - A refusal is an HTTP/1.1 answer with the JSON error body of the current API
 *   (`{"status": "ng", "message"}`), the headers it needs (WWW-Authenticate on 401) and
 *   Connection: close; the connection is closed once it is written.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { CircusError } from '../../core/errors.js';
import { bearerToken, WWW_AUTHENTICATE } from '../auth.js';
import { rawErrorResponse, unknownAction } from '../errors.js';

/** The path of the socket below the base path. */
export const VOLUME_SOCKET_PATH = '/ws/volume';

/** An upgrade let through: the token it carries and the address it is counted under. */
export interface Admitted {
  token: string | undefined;
  address: string;
}

/** Why an upgrade is refused: the HTTP status and message it is answered with. */
export interface Refusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Whether a request the HTTP server handed to its 'upgrade' listener asks for a WebSocket. */
export const isWebSocketUpgrade = (req: IncomingMessage): boolean => req.headers.upgrade?.trim().toLowerCase() === 'websocket';

/** Which upgrades of `${basePath}/ws/volume` become sockets, and the sockets open per client address. */
export class Admission {
  private readonly path: string;
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly app: FastifyInstance,
    private readonly maxSocketsPerAddress: number,
  ) {
    this.path = `${app.deps.config.basePath}${VOLUME_SOCKET_PATH}`;
  }

  /** The token and client address of an upgrade, or why it is refused. */
  admit(req: IncomingMessage): Admitted | Refusal {
    const { config } = this.app.deps;
    const path = this.path;
    const [pathname, query = ''] = (req.url ?? '').split('?', 2);
    if (pathname !== path && pathname !== `${path}/`) return { status: 404, message: unknownAction(pathname) };
    if (this.app.closing) return { status: 503, message: 'the server is shutting down' };
    // Browsers send Origin on every WebSocket and do not apply CORS to it: a server that names
    // the origin allowed to call it refuses pages from any other (non-browser clients send none).
    const origin = req.headers.origin;
    if (config.corsOrigin !== '*' && origin !== undefined && origin !== config.corsOrigin) {
      return { status: 403, message: `origin ${origin.slice(0, 100)} is not allowed (corsOrigin)` };
    }
    const challenge = { 'WWW-Authenticate': WWW_AUTHENTICATE };
    // The token: `?token=` (browsers cannot set headers on a WebSocket), or a Bearer header.
    const tokens = new URLSearchParams(query).getAll('token');
    const header = req.headers.authorization;
    if (header !== undefined) {
      try {
        tokens.push(bearerToken(header));
      } catch (err) {
        if (!(err instanceof CircusError)) throw err;
        return { status: err.status, message: err.message, headers: challenge };
      }
    }
    if (tokens.length > 1) return { status: 400, message: 'give the token once (?token= or an Authorization header)' };
    const token = tokens[0];
    if (config.auth && token === undefined) return { status: 401, message: 'a token is required (?token= on the socket URL)', headers: challenge };
    const address = this.app.clientAddress(req);
    if ((this.perAddress.get(address) ?? 0) >= this.maxSocketsPerAddress) {
      return { status: 429, message: `too many sockets from ${address} (at most ${this.maxSocketsPerAddress})` };
    }
    return { token, address };
  }

  /** Counts a socket opened from `address` (admitted). */
  opened(address: string): void {
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
  }

  /** Stops counting a socket of `address` (it closed). */
  closed(address: string): void {
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
  }
}

/** Writes the HTTP answer of a refused upgrade to its socket (with `headers` after the refusal's), then closes it. */
export function refuse(socket: Duplex, refusal: Refusal, headers: Record<string, string> = {}): void {
  socket.on('error', () => {});
  socket.once('finish', () => socket.destroy());
  socket.end(rawErrorResponse(refusal.status, 'status', refusal.message, { Connection: 'close', ...refusal.headers, ...headers }));
}

/**
 * Gives a request the HTTP server handed to the 'upgrade' listener, but that asks for no
 * WebSocket, back to the server as the ordinary request it also is. Its head is written again
 * without the upgrade (Upgrade, and the token in Connection), in front of the bytes read after it
 * (`head`, and what the socket still holds), and the socket is given to the server as a new
 * connection (the way Node documents to inject one): the server parses it from there as any
 * other, keep-alive, pipelined requests and bodies included. Header bytes are kept as they came
 * (Node reads them as latin1). A response to an earlier request of the connection (pipelined)
 * that is still being made is left to finish first: the new connection's responses would
 * otherwise queue behind it and never be sent. (The server is plain HTTP: this server runs no TLS.)
 */
export function handBack(server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  // The response the socket is writing (Node's field; when it is absent, nothing waits).
  const writing = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (writing && !socket.destroyed) {
    // Meanwhile the socket has no HTTP connection to handle its errors.
    const broken = (): void => {
      socket.destroy();
    };
    socket.on('error', broken);
    writing.once('finish', () => {
      socket.off('error', broken);
      try {
        handBack(server, req, socket, head);
      } catch {
        socket.destroy();
      }
    });
    writing.once('close', () => {
      if (!writing.writableFinished) socket.destroy();
    });
    return;
  }
  if (socket.destroyed) return;
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    let value = raw[i + 1];
    const lower = name.toLowerCase();
    if (lower === 'upgrade') continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '' && token.toLowerCase() !== 'upgrade')
        .join(', ');
      if (value === '') continue;
    }
    lines.push(`${name}: ${value}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
  server.emit('connection', socket);
}
