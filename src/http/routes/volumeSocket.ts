/**
 * WebSocket /ws/volume: the current CIRCUS API's volume transfer (see docs/API.md).
 *
 * Every message is one binary frame: UTF-8 JSON, the byte 0x0A, then an optional payload. A
 * client begins transfers (a series, or a partial volume of it), sets image priorities, pauses,
 * resumes and aborts them; the server answers with TRANSFER_IMAGE messages (the image's voxels as
 * the payload) and TRANSFER_ERROR messages.
 *
 * Policy:
 * - The socket is an upgrade of `${basePath}/ws/volume` on the HTTP server; any other path is
 *   refused with 404, a client address with wsMaxSocketsPerAddress sockets open already with 429,
 *   and, when authentication is on, an upgrade without `?token=` with 401. The token is checked
 *   against each BEGIN_TRANSFER's series (tokens are series-bound): TRANSFER_ERROR 401 otherwise.
 * - Transfers of one socket are served in turn, one image each; within a transfer the unsent
 *   image the ImageQueue puts first goes next. Only that image is asked of the load (its slice
 *   then loads first), so a priority set by the client steers the load too, and a transfer
 *   waiting for its slice never holds up the others.
 * - Backpressure: an image is sent only when every earlier message of the socket has been
 *   written out (its send callback came). While one is being written, at most one more image is
 *   kept ready (the next one, so that the socket never waits for the conversion); an image that
 *   becomes ready while that place is taken is dropped and made again when its turn comes (the
 *   slice stays decoded in the volume, so that is a copy, not a decode). A stalled reader so
 *   costs at most two images of memory, never the volume.
 * - Images go out as soon as their slice is decoded (SeriesImages.image), in the order above.
 * - A transfer ends when its last image is written (it is then forgotten: the same transferId may
 *   begin again), when it is aborted, or with a TRANSFER_ERROR (which always ends it, except for
 *   a BEGIN_TRANSFER refused because its transferId is in use: the transfer in progress goes on).
 * - A frame that is not a message closes the socket with a close code and a reason (1003 text
 *   frame, 1007 not JSON + 0x0A, 1008 not a known message, 1009 larger than wsMaxMessageBytes);
 *   the other sockets go on. Messages naming a transferId that is not in progress are ignored
 *   (a transfer may end while the client's message is on its way).
 * - A socket on which nothing happens for wsIdleTimeoutMs (no message from the client, no image
 *   written, no load waited for) is closed (1000); one whose client stopped reading is cut off.
 *   When the server closes, every socket is closed with 1001 first.
 */
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { addressAllowed, addressList } from '../../config/addresses.js';
import { CircusError } from '../../core/errors.js';
import { isValidUid } from '../../core/uid.js';
import { ImageQueue } from '../../services/imageQueue.js';
import { descriptorOf, type PartialVolumeDescriptor, SeriesImages } from '../../services/seriesImages.js';
import { WWW_AUTHENTICATE } from '../auth.js';

/** The path of the socket below the base path. */
export const VOLUME_SOCKET_PATH = '/ws/volume';

/** Close codes (RFC 6455 7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
} as const;

const SEPARATOR = 0x0a;
/** Longest transferId accepted. */
const MAX_TRANSFER_ID = 256;
/** SET_PRIORITY messages kept for a transfer whose series is still being opened. */
const MAX_PENDING_PRIORITIES = 1024;
/** How long a socket closed at shutdown has to answer the close before it is cut. */
const SHUTDOWN_GRACE_MS = 1000;

/** What the limits of the socket are (config options). */
export interface VolumeSocketLimits {
  maxTransfersPerSocket: number;
  maxSocketsPerAddress: number;
  maxMessageBytes: number;
  idleTimeoutMs: number;
}

/** Figures of one open socket (for tests and status). */
export interface VolumeSocketStats {
  address: string;
  transfers: number;
  imagesSent: number;
  /** Largest bufferedAmount seen right after an image was handed to the socket. */
  maxBufferedAmount: number;
  bufferedAmount: number;
  /** Messages handed to the socket whose writing has not finished. */
  writing: number;
  /** Whether an image is kept ready for the next turn. */
  holding: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /ws/volume sockets. */
    volumeSockets: { count(): number; stats(): VolumeSocketStats[] };
  }
}

class MalformedMessage extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

interface ClientMessage {
  messageType: string;
  transferId: string;
  [key: string]: unknown;
}

const MESSAGE_TYPES = new Set(['BEGIN_TRANSFER', 'SET_PRIORITY', 'PAUSE_TRANSFER', 'RESUME_TRANSFER', 'ABORT_TRANSFER', 'STOP_TRANSFER']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON part of a frame as a message; throws MalformedMessage with the close code that fits. */
export function parseMessage(data: Buffer): ClientMessage {
  const end = data.indexOf(SEPARATOR);
  if (end < 0) throw new MalformedMessage(CloseCode.INVALID_PAYLOAD, 'a message is JSON followed by the byte 0x0A');
  let text: string;
  try {
    text = utf8.decode(data.subarray(0, end));
  } catch {
    throw new MalformedMessage(CloseCode.INVALID_PAYLOAD, 'the JSON part is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedMessage(CloseCode.INVALID_PAYLOAD, 'the JSON part is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedMessage(CloseCode.INVALID_PAYLOAD, 'the JSON part is not an object');
  }
  const m = value as Record<string, unknown>;
  if (typeof m.messageType !== 'string' || !MESSAGE_TYPES.has(m.messageType)) {
    const shown = typeof m.messageType === 'string' ? JSON.stringify(m.messageType.slice(0, 40)) : 'missing';
    throw new MalformedMessage(CloseCode.POLICY_VIOLATION, `unknown messageType (${shown})`);
  }
  if (typeof m.transferId !== 'string' || m.transferId.length === 0 || m.transferId.length > MAX_TRANSFER_ID) {
    throw new MalformedMessage(CloseCode.POLICY_VIOLATION, `${m.messageType}: transferId must be a string of 1 to ${MAX_TRANSFER_ID} characters`);
  }
  return m as ClientMessage;
}

/** SET_PRIORITY's target as a list of indices; throws MalformedMessage unless an integer or an array of integers. */
function targetOf(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  if (!list.every((v) => typeof v === 'number' && Number.isInteger(v))) {
    throw new MalformedMessage(CloseCode.POLICY_VIOLATION, 'SET_PRIORITY: target must be an image index or an array of them');
  }
  return list as number[];
}

/** A close reason within the 123 bytes a close frame allows. */
function reasonOf(message: string): string {
  let r = message;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}

/** Why an upgrade is refused: the HTTP status and message it is answered with. */
interface Refusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Writes an HTTP error to a socket that asked for an upgrade, then closes it. */
function refuse(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ status: 'ng', message });
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.on('error', () => {});
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/**
 * The server's sockets: a message over maxPayload makes ws close the socket with 1009 and no
 * reason; this gives it one, as every other close of this route has.
 */
class VolumeWebSocket extends WebSocket {
  override close(code?: number, reason?: string | Buffer): void {
    super.close(code, code === CloseCode.MESSAGE_TOO_BIG && reason === undefined ? 'the message is larger than wsMaxMessageBytes' : reason);
  }
}

/** One transfer of a socket. */
class Transfer {
  state: 'opening' | 'open' = 'opening';
  paused = false;
  images: SeriesImages | null = null;
  queue: ImageQueue | null = null;
  /** The image asked of the load, until it is ready. */
  request: { k: number; controller: AbortController; turn: boolean } | null = null;
  /** An image known to be ready whose bytes were dropped (the place for a ready image was taken). */
  ready = -1;
  /** SET_PRIORITY messages received while the series was being opened, applied once it is. */
  pending: { target: number[]; priority: number }[] = [];

  constructor(
    readonly id: string,
    /** Order of creation on the socket (for taking turns). */
    readonly seq: number,
  ) {}
}

/** The state of one open socket. */
class VolumeConnection {
  private readonly transfers = new Map<string, Transfer>();
  private seq = 0;
  /** The seq of the transfer served last. */
  private lastServed = -1;
  /** Messages handed to ws whose send callback has not come. */
  private writing = 0;
  /** The image made for a transfer whose turn it is (the socket is kept for it). */
  private producing = false;
  /** The one image kept ready while the socket is busy. */
  private held: { t: Transfer; k: number; bytes: Buffer } | null = null;
  private closed = false;
  private lastActivity = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  imagesSent = 0;
  maxBufferedAmount = 0;

  constructor(
    private readonly app: FastifyInstance,
    readonly ws: WebSocket,
    readonly address: string,
    private readonly token: string | undefined,
    private readonly limits: VolumeSocketLimits,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.armIdleTimer(limits.idleTimeoutMs);
  }

  stats(): VolumeSocketStats {
    return {
      address: this.address,
      transfers: this.transfers.size,
      imagesSent: this.imagesSent,
      maxBufferedAmount: this.maxBufferedAmount,
      bufferedAmount: this.ws.bufferedAmount,
      writing: this.writing,
      holding: this.held !== null,
    };
  }

  /** Drops every transfer (the socket closed). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.transfers.values()) this.cancel(t);
    this.transfers.clear();
    this.held = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
  }

  /** Closes the socket with `code` and `reason`, dropping its transfers. */
  close(code: number, reason: string): void {
    this.dispose();
    this.ws.close(code, reasonOf(reason));
  }

  private armIdleTimer(ms: number): void {
    this.idleTimer = setTimeout(() => this.checkIdle(), ms);
    this.idleTimer.unref();
  }

  private checkIdle(): void {
    if (this.closed) return;
    const idle = Date.now() - this.lastActivity;
    const limit = this.limits.idleTimeoutMs;
    const stalled = this.writing > 0;
    if (idle >= limit && (stalled || !this.waitingForLoad())) {
      if (stalled) {
        // The close frame would queue behind what the client does not read.
        this.dispose();
        this.ws.terminate();
      } else {
        this.close(CloseCode.NORMAL, `idle for ${Math.round(limit / 1000)} s`);
      }
      return;
    }
    this.armIdleTimer(idle >= limit ? limit : limit - idle);
  }

  /** Whether a transfer waits for the load (so the socket is quiet, not idle). */
  private waitingForLoad(): boolean {
    for (const t of this.transfers.values()) if (t.state === 'opening' || (!t.paused && t.request !== null)) return true;
    return false;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    if (!isBinary) {
      this.close(CloseCode.UNSUPPORTED_DATA, 'text frames are not accepted: send binary frames (JSON, 0x0A, payload)');
      return;
    }
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    try {
      this.handle(parseMessage(bytes));
    } catch (err) {
      if (err instanceof MalformedMessage) {
        this.close(err.code, err.message);
        return;
      }
      this.app.log.error({ err }, 'ws/volume: a message failed');
      this.close(1011, 'internal error');
    }
  }

  private handle(m: ClientMessage): void {
    const t = this.transfers.get(m.transferId);
    switch (m.messageType) {
      case 'BEGIN_TRANSFER':
        this.begin(m);
        return;
      case 'SET_PRIORITY': {
        const target = targetOf(m.target);
        if (typeof m.priority !== 'number' || !Number.isFinite(m.priority)) {
          throw new MalformedMessage(CloseCode.POLICY_VIOLATION, 'SET_PRIORITY: priority must be a finite number');
        }
        if (!t) return;
        if (t.state === 'opening') {
          // Kept until the series is open; a client that floats more loses its oldest.
          if (t.pending.length >= MAX_PENDING_PRIORITIES) t.pending.shift();
          t.pending.push({ target, priority: m.priority });
        } else t.queue!.setPriority(target, m.priority);
        break;
      }
      case 'PAUSE_TRANSFER':
        if (!t) return;
        t.paused = true;
        this.cancel(t);
        break;
      case 'RESUME_TRANSFER':
        if (!t) return;
        t.paused = false;
        break;
      case 'ABORT_TRANSFER':
      case 'STOP_TRANSFER':
        if (!t) return;
        this.cancel(t);
        this.transfers.delete(t.id);
        break;
    }
    this.pump();
  }

  private begin(m: ClientMessage): void {
    const id = m.transferId;
    if (typeof m.seriesUid !== 'string') throw new MalformedMessage(CloseCode.POLICY_VIOLATION, 'BEGIN_TRANSFER: seriesUid must be a string');
    const series = m.seriesUid;
    const refusal = this.refusal(id, series);
    if (refusal) {
      this.sendError(id, refusal.status, refusal.message);
      return;
    }
    let descriptor: PartialVolumeDescriptor | undefined;
    try {
      descriptor = descriptorOf(m.partialVolumeDescriptor);
      this.authorize(series);
    } catch (err) {
      this.failed(id, err);
      return;
    }
    const t = new Transfer(id, this.seq++);
    this.transfers.set(id, t);
    this.open(t, series, descriptor);
  }

  /** Why a BEGIN_TRANSFER cannot begin before its series is looked at; null when it can. */
  private refusal(id: string, series: string): { status: number; message: string } | null {
    if (this.transfers.has(id)) return { status: 400, message: `transfer ${id.slice(0, 64)} is already in progress on this socket` };
    const max = this.limits.maxTransfersPerSocket;
    if (this.transfers.size >= max) return { status: 429, message: `too many transfers on this socket (at most ${max} at once)` };
    if (!isValidUid(series)) return { status: 400, message: 'seriesUid must be a DICOM UID (digits and dots, at most 64 characters)' };
    return null;
  }

  /** Throws 401 unless authentication is off or the socket's token is for `series`. */
  private authorize(series: string): void {
    const { auth } = this.app.deps.config;
    const tokens = this.app.deps.tokens;
    if (!auth || !tokens) return;
    if (this.token === undefined) throw new CircusError('UNAUTHORIZED', `a token for series ${series} is required (?token= on the socket URL)`);
    tokens.verify(this.token, series);
  }

  private async open(t: Transfer, series: string, descriptor: PartialVolumeDescriptor | undefined): Promise<void> {
    try {
      const load = await this.app.deps.volumes.open(series, { allowStack: true });
      if (!this.current(t)) return;
      const images = await SeriesImages.of(load, descriptor);
      if (!this.current(t)) return;
      t.images = images;
      t.queue = new ImageQueue(images.count);
      for (const p of t.pending) t.queue.setPriority(p.target, p.priority);
      t.pending = [];
      t.state = 'open';
      this.pump();
    } catch (err) {
      if (this.current(t)) this.fail(t, err);
    }
  }

  /** Whether `t` is still a transfer of this open socket. */
  private current(t: Transfer): boolean {
    return !this.closed && this.transfers.get(t.id) === t;
  }

  /** Stops what `t` has under way: its request, and its image kept ready. */
  private cancel(t: Transfer): void {
    if (t.request) {
      const request = t.request;
      t.request = null;
      if (request.turn) this.producing = false;
      request.controller.abort(new Error('the image is no longer wanted'));
    }
    t.ready = -1;
    if (this.held?.t === t) this.held = null;
  }

  /** Ends `t` with a TRANSFER_ERROR for `err`. */
  private fail(t: Transfer, err: unknown): void {
    this.cancel(t);
    this.transfers.delete(t.id);
    this.failed(t.id, err);
  }

  private failed(id: string, err: unknown): void {
    if (err instanceof CircusError && err.status < 500) {
      this.sendError(id, err.status, err.message);
      return;
    }
    if (err instanceof CircusError) {
      this.app.log.warn({ err }, `ws/volume transfer ${id.slice(0, 64)}: ${err.message}`);
      this.sendError(id, err.status, err.message);
      return;
    }
    this.app.log.error({ err }, `ws/volume transfer ${id.slice(0, 64)} failed`);
    this.sendError(id, 500, 'internal error');
  }

  private sendError(transferId: string, status: number, message: string): void {
    this.write(Buffer.from(`${JSON.stringify({ messageType: 'TRANSFER_ERROR', transferId, status, message })}\n`));
  }

  /** Hands one message (or the fragments of one) to the socket; the next image waits for its callback. */
  private write(...fragments: Buffer[]): void {
    if (this.closed) return;
    this.writing++;
    fragments.forEach((fragment, i) => {
      const last = i === fragments.length - 1;
      this.ws.send(fragment, { binary: true, fin: last }, last ? (err) => this.written(err) : undefined);
    });
  }

  private written(err: Error | undefined): void {
    this.writing--;
    if (err) {
      // The socket is closing or broken: its 'close' event disposes of it.
      this.dispose();
      return;
    }
    this.lastActivity = Date.now();
    this.pump();
  }

  /** Sends image `k` of `t` (the socket is free). */
  private sendImage(t: Transfer, k: number, bytes: Buffer): void {
    const queue = t.queue!;
    queue.take(k);
    this.lastServed = t.seq;
    if (queue.remaining === 0) this.transfers.delete(t.id);
    const header = Buffer.from(`${JSON.stringify({ messageType: 'TRANSFER_IMAGE', transferId: t.id, imageIndex: k })}\n`);
    // Two fragments of one message: the image is sent as it is, never copied behind the header.
    this.write(header, bytes);
    this.imagesSent++;
    this.maxBufferedAmount = Math.max(this.maxBufferedAmount, this.ws.bufferedAmount);
  }

  /** Does what can be done now: asks for each transfer's next image, and sends one when the socket is free. */
  private pump(): void {
    if (this.closed) return;
    for (const t of this.transfers.values()) this.ask(t);
    if (this.writing > 0 || this.producing) return;
    const t = this.nextInTurn();
    if (!t) return;
    if (this.held?.t === t) {
      const { k, bytes } = this.held;
      this.held = null;
      this.sendImage(t, k, bytes);
      this.pump();
      return;
    }
    // Its image was ready but dropped: made again now (a copy), the socket kept for it.
    const k = t.ready;
    t.ready = -1;
    this.request(t, k, true);
  }

  /** The next transfer in turn with an image to send now. */
  private nextInTurn(): Transfer | null {
    let first: Transfer | null = null;
    let after: Transfer | null = null;
    for (const t of this.transfers.values()) {
      if (t.state !== 'open' || t.paused || !(this.held?.t === t || t.ready >= 0)) continue;
      if (first === null || t.seq < first.seq) first = t;
      if (t.seq > this.lastServed && (after === null || t.seq < after.seq)) after = t;
    }
    return after ?? first;
  }

  /** Makes sure `t`'s next image is asked for (or kept ready), and nothing else of it. */
  private ask(t: Transfer): void {
    if (t.state !== 'open' || t.paused) return;
    const top = t.queue!.peek();
    if (top < 0) return;
    const held = this.held?.t === t ? this.held.k : -1;
    if (held === top || t.ready === top || t.request?.k === top) return;
    // The priorities changed: what was under way for this transfer is for another image.
    this.cancel(t);
    this.request(t, top, false);
  }

  /** Asks for image `k` of `t`; `turn`: the socket is kept for it, and it is sent when made. */
  private request(t: Transfer, k: number, turn: boolean): void {
    const controller = new AbortController();
    const request = { k, controller, turn };
    t.request = request;
    if (turn) this.producing = true;
    t.images!.image(k, controller.signal).then(
      (bytes) => this.made(t, request, bytes),
      (err: unknown) => {
        if (t.request !== request) return; // withdrawn
        t.request = null;
        if (turn) this.producing = false;
        if (this.current(t)) this.fail(t, err);
        this.pump();
      },
    );
  }

  private made(t: Transfer, request: NonNullable<Transfer['request']>, bytes: Buffer): void {
    if (t.request !== request) return; // withdrawn: the image is no longer the one wanted
    t.request = null;
    if (request.turn) this.producing = false;
    if (!this.current(t)) return;
    if (request.turn) {
      this.sendImage(t, request.k, bytes);
    } else if (this.held === null) {
      this.held = { t, k: request.k, bytes };
    } else {
      t.ready = request.k;
    }
    this.pump();
  }
}

/** The address a socket is counted under: the peer, or behind trusted proxies the client X-Forwarded-For names. */
function clientAddress(req: IncomingMessage, trusted: ReturnType<typeof addressList> | null): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (!trusted || !addressAllowed(trusted, peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!addressAllowed(trusted, hops[i])) return hops[i];
  return hops[0] ?? peer;
}

/** Serves /ws/volume on the app's HTTP server: upgrades, the sockets' limits, and their closing with the app. */
export function registerVolumeSocket(app: FastifyInstance): void {
  const config = app.deps.config;
  const limits: VolumeSocketLimits = {
    maxTransfersPerSocket: config.wsMaxTransfersPerSocket,
    maxSocketsPerAddress: config.wsMaxSocketsPerAddress,
    maxMessageBytes: config.wsMaxMessageBytes,
    idleTimeoutMs: config.wsIdleTimeoutMs,
  };
  const path = `${config.basePath}${VOLUME_SOCKET_PATH}`;
  const trusted = config.trustProxy.length > 0 ? addressList(config.trustProxy) : null;
  const wss = new WebSocketServer<typeof VolumeWebSocket>({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: VolumeWebSocket,
  });
  const connections = new Set<VolumeConnection>();
  const perAddress = new Map<string, number>();

  app.decorate('volumeSockets', {
    count: () => connections.size,
    stats: () => [...connections].map((c) => c.stats()),
  });

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      upgrade(req, socket, head);
    } catch (err) {
      // A listener of the HTTP server must not throw: that would end the process.
      app.log.error({ err }, 'ws/volume: an upgrade failed');
      socket.destroy();
    }
  });

  /** The token and client address of an upgrade, or why it is refused. */
  function admit(req: IncomingMessage): { token: string | undefined; address: string } | Refusal {
    const [pathname, query = ''] = (req.url ?? '').split('?', 2);
    if (pathname !== path && pathname !== `${path}/`) return { status: 404, message: `unknown action ${pathname.slice(0, 100)}` };
    if (app.closing) return { status: 503, message: 'the server is shutting down' };
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
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!bearer) return { status: 401, message: 'the Authorization header must be "Bearer <token>"', headers: challenge };
      tokens.push(bearer[1]);
    }
    if (tokens.length > 1) return { status: 400, message: 'give the token once (?token= or an Authorization header)' };
    const token = tokens[0];
    if (config.auth && token === undefined) return { status: 401, message: 'a token is required (?token= on the socket URL)', headers: challenge };
    const address = clientAddress(req, trusted);
    if ((perAddress.get(address) ?? 0) >= limits.maxSocketsPerAddress) {
      return { status: 429, message: `too many sockets from ${address} (at most ${limits.maxSocketsPerAddress})` };
    }
    return { token, address };
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = admit(req);
    if ('status' in admitted) {
      refuse(socket, admitted.status, admitted.message, admitted.headers);
      return;
    }
    const { token, address } = admitted;
    wss.handleUpgrade(req, socket, head, (ws) => {
      perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
      const connection = new VolumeConnection(app, ws, address, token, limits);
      connections.add(connection);
      // Protocol errors (a bad frame, a message over maxPayload) close the socket with their code.
      ws.on('error', (err) => app.log.debug({ err }, 'ws/volume: socket error'));
      ws.on('close', () => {
        connection.dispose();
        connections.delete(connection);
        const n = (perAddress.get(address) ?? 1) - 1;
        if (n > 0) perAddress.set(address, n);
        else perAddress.delete(address);
      });
    });
  }

  // Before the HTTP server closes: it would wait for these connections to end.
  app.addHook('preClose', async () => {
    await Promise.all(
      [...connections].map(
        (c) =>
          new Promise<void>((resolve) => {
            c.ws.once('close', () => resolve());
            const cut = setTimeout(() => c.ws.terminate(), SHUTDOWN_GRACE_MS);
            cut.unref();
            c.ws.once('close', () => clearTimeout(cut));
            c.close(CloseCode.GOING_AWAY, 'the server is shutting down');
          }),
      ),
    );
  });
  app.addHook('onClose', async () => {
    for (const c of connections) c.ws.terminate();
    wss.close();
  });
}
