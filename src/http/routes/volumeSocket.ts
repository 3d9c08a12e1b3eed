/**
 * WebSocket /ws/volume: the current CIRCUS API's volume transfer (see docs/API.md).
 *
 * Every message is one binary frame: UTF-8 JSON, the byte 0x0A, then an optional payload. A
 * client begins transfers (a series, or a partial volume of it), sets image priorities, pauses,
 * resumes and aborts them; the server answers with TRANSFER_IMAGE messages (the image's voxels as
 * the payload) and TRANSFER_ERROR messages.
 *
 * Policy:
 * - The socket is a WebSocket upgrade (`Upgrade: websocket`) of `${basePath}/ws/volume` on the
 *   HTTP server; a WebSocket upgrade of any other path is refused with 404, a client address with
 *   wsMaxSocketsPerAddress sockets open already with 429, and, when authentication is on, an
 *   upgrade without `?token=` with 401. The token is checked against each BEGIN_TRANSFER's series
 *   (tokens are series-bound): TRANSFER_ERROR 401 otherwise. A request asking for another upgrade
 *   (`Upgrade: h2c`) is handed back to the HTTP server, which answers it as an ordinary request.
 * - Transfers of one socket are served in turn, one image each; within a transfer the unsent
 *   image the ImageQueue puts first goes next. Only that image is asked of the load (its slice
 *   then loads first), so a priority set by the client steers the load too, and a transfer
 *   waiting for its slice never holds up the others.
 * - Backpressure: an image is sent only when every earlier message of the socket has been
 *   written out (its send callback came). While one is being written, at most one more image is
 *   kept ready (the next one, so that the socket never waits for the conversion); an image that
 *   becomes ready while that place is taken is dropped and made again when its turn comes (the
 *   slice stays decoded in the volume, so that is a copy, not a decode). Other messages
 *   (TRANSFER_ERROR, pongs) are answers to the client's: while more than MAX_UNSENT_BYTES of them
 *   are unsent, the socket is not read, so the client's next messages wait in its own buffers. A
 *   stalled reader so costs at most two images and MAX_UNSENT_BYTES (plus what one read brought)
 *   of memory, never the volume.
 * - A transfer's ImageQueue is made as soon as the header pass tells its image count (its
 *   priorities apply from then, also while the format waits for the complete volume); SET_PRIORITY
 *   messages before that are kept, at most MAX_PENDING_TARGETS indices a socket (1008 beyond).
 * - A paused transfer lets its load go (it keeps only its queue: which images were sent, their
 *   priorities); RESUME_TRANSFER opens the series again through the volume service (the cache,
 *   or a new load), so a paused transfer never keeps a volume the cache has dropped. Should the
 *   series have changed meanwhile (image count, size or format), the transfer ends with 422.
 * - A transfer holds one of the socket's wsMaxTransfersPerSocket places from BEGIN_TRANSFER until
 *   it has ended and its series is no longer being opened (an ABORT_TRANSFER during the header
 *   pass frees its place only when the header pass is over).
 * - Images go out as soon as their slice is decoded (SeriesImages.image), in the order above.
 * - A transfer ends when its last image is written (it is then forgotten: the same transferId may
 *   begin again), when it is aborted, or with a TRANSFER_ERROR (which always ends it, except for
 *   a BEGIN_TRANSFER refused because its transferId is in use: the transfer in progress goes on).
 * - A frame that is not a message closes the socket with a close code and a reason (1003 text
 *   frame, 1007 not JSON + 0x0A, 1008 not a known message, 1009 larger than wsMaxMessageBytes);
 *   the other sockets go on. Messages naming a transferId that is not in progress are ignored
 *   (a transfer may end while the client's message is on its way).
 * - A socket on which nothing happens for wsIdleTimeoutMs (no message from the client, no image
 *   written, no load waited for) is closed (1000). One that has not finished writing a message
 *   for wsIdleTimeoutMs (its client stopped reading) is cut off, whatever the client still sends:
 *   its transfers and the images they hold end there. When the server closes, every socket is
 *   closed with 1001 first.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { CircusError, unprocessable } from '../../core/errors.js';
import { isValidUid } from '../../core/uid.js';
import type { PixelFormat } from '../../core/volume/volume.js';
import { ImageQueue } from '../../services/imageQueue.js';
import { descriptorSlices, type PartialVolumeDescriptor, SeriesImages } from '../../services/seriesImages.js';
import { authorizeSeries, bearerToken, WWW_AUTHENTICATE } from '../auth.js';
import { rawErrorResponse, unknownAction } from '../errors.js';
import { INSTANCE_HEADER } from '../headers.js';
import { descriptorOf } from '../volumeDescriptor.js';

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
/**
 * Image indices of SET_PRIORITY messages a socket keeps for its transfers whose image count is
 * not known yet (their header pass runs); the socket is closed (1008) beyond.
 */
const MAX_PENDING_TARGETS = 65536;
/**
 * Bytes of unsent messages (other than the image being written: TRANSFER_ERRORs, pongs) beyond
 * which the socket is no longer read until they are written.
 */
const MAX_UNSENT_BYTES = 64 * 1024;
/**
 * Unsent bytes (other than the image being written) beyond which the socket is cut. Reading stops
 * at MAX_UNSENT_BYTES, and what was read already (one chunk at most) cannot add this much: a guard.
 */
const CUT_UNSENT_BYTES = 1024 * 1024;
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
  /** Largest bufferedAmount seen after a message was handed to the socket or handled. */
  maxBufferedAmount: number;
  bufferedAmount: number;
  /** Messages handed to the socket whose writing has not finished. */
  writing: number;
  /** Whether an image is kept ready for the next turn. */
  holding: boolean;
  /** Series being opened for the socket's transfers (those aborted or failed while opening included). */
  opening: number;
  /** Whether the socket is read (false while too much of what was sent to it is unsent). */
  reading: boolean;
  /** Messages received. */
  messages: number;
}

/** What the sockets have done since the server started (for metrics). */
export interface VolumeSocketTotals {
  /** Sockets accepted. */
  sockets: number;
  /** Transfers begun (BEGIN_TRANSFER messages accepted). */
  transfers: number;
  imagesSent: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /ws/volume sockets, and the totals since start. */
    volumeSockets: { count(): number; stats(): VolumeSocketStats[]; totals(): VolumeSocketTotals };
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
  socket.on('error', () => {});
  socket.once('finish', () => socket.destroy());
  socket.end(rawErrorResponse(status, 'status', message, { Connection: 'close', ...headers }));
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
  paused = false;
  /**
   * The images, while the transfer holds its series open: null until it is opened, and while it
   * is paused (the load is let go then, and opened again on resume).
   */
  images: SeriesImages | null = null;
  /**
   * Which image goes next and which were sent: made as soon as the header pass tells the image
   * count, kept until the transfer ends (across pauses, so that no image is sent twice).
   */
  queue: ImageQueue | null = null;
  /** The image size and format the series was first opened with: a reopening must find the same. */
  shape: { columns: number; rows: number; format: PixelFormat } | null = null;
  /** Whether an open() of it is under way. */
  opening = false;
  /** The image asked of the load, until it is ready. */
  request: { k: number; controller: AbortController; turn: boolean } | null = null;
  /** An image known to be ready whose bytes were dropped (the place for a ready image was taken). */
  ready = -1;
  /** SET_PRIORITY messages received before the image count was known, applied once it is. */
  pending: { target: number[]; priority: number }[] = [];
  /** The entries `pending` counts against MAX_PENDING_TARGETS. */
  pendingTargets = 0;

  constructor(
    readonly id: string,
    /** Order of creation on the socket (for taking turns). */
    readonly seq: number,
    readonly series: string,
    readonly descriptor: PartialVolumeDescriptor | undefined,
  ) {}
}

/** The state of one open socket. */
class VolumeConnection {
  private readonly transfers = new Map<string, Transfer>();
  /** Transfers whose open() has not settled, ended ones included: they hold a place until it has. */
  private readonly unsettled = new Set<Transfer>();
  private seq = 0;
  /** The seq of the transfer served last. */
  private lastServed = -1;
  /** Messages handed to ws whose send callback has not come. */
  private writing = 0;
  /** Bytes of the image message handed to ws whose send callback has not come. */
  private imageUnwritten = 0;
  /** The image made for a transfer whose turn it is (the socket is kept for it). */
  private producing = false;
  /** The one image kept ready while the socket is busy. */
  private held: { t: Transfer; k: number; bytes: Buffer } | null = null;
  /** SET_PRIORITY entries kept for transfers whose image count is not known yet. */
  private pendingTargets = 0;
  /** Whether reading the socket is stopped (too much unsent). */
  private readPaused = false;
  private closed = false;
  private lastActivity = Date.now();
  /** When the socket last finished writing a message, or began writing after it had nothing to write. */
  private lastWritten = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  imagesSent = 0;
  maxBufferedAmount = 0;
  messages = 0;

  constructor(
    private readonly app: FastifyInstance,
    readonly ws: WebSocket,
    socket: Duplex,
    readonly address: string,
    private readonly token: string | undefined,
    private readonly limits: VolumeSocketLimits,
    private readonly totals: VolumeSocketTotals,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    // ws answers a ping with a pong before this listener runs: it counts as unsent too.
    ws.on('ping', () => this.flow());
    // Written out (pongs have no callback of ours): reading may go on.
    socket.on('drain', () => this.flow());
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
      opening: this.unsettled.size,
      reading: !this.readPaused,
      messages: this.messages,
    };
  }

  /** Drops every transfer (the socket closed). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.transfers.values()) this.cancel(t);
    this.transfers.clear();
    this.pendingTargets = 0;
    this.held = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
  }

  /** Closes the socket with `code` and `reason`, dropping its transfers. */
  close(code: number, reason: string): void {
    this.dispose();
    // The client's answer to the close frame is read (what else it sends is ignored now).
    if (this.readPaused) this.ws.resume();
    this.ws.close(code, reasonOf(reason));
  }

  /** Cuts the socket at once (nothing more can be written to it). */
  private cut(): void {
    this.dispose();
    this.ws.terminate();
  }

  private armIdleTimer(ms: number): void {
    this.idleTimer = setTimeout(() => this.checkIdle(), Math.max(1, ms));
    this.idleTimer.unref();
  }

  private checkIdle(): void {
    if (this.closed) return;
    const now = Date.now();
    const limit = this.limits.idleTimeoutMs;
    // A client that has not taken a message for that long is cut off, whatever it sends: the close
    // frame would queue behind what it does not read.
    const stalled = this.writing > 0 ? now - this.lastWritten : 0;
    if (stalled >= limit) {
      this.cut();
      return;
    }
    const idle = now - this.lastActivity;
    if (idle >= limit && this.writing === 0 && !this.waitingForLoad()) {
      this.close(CloseCode.NORMAL, `idle for ${Math.round(limit / 1000)} s`);
      return;
    }
    this.armIdleTimer(Math.min(idle >= limit ? limit : limit - idle, this.writing > 0 ? limit - stalled : limit));
  }

  /** Whether a transfer waits for the load (so the socket is quiet, not idle). */
  private waitingForLoad(): boolean {
    for (const t of this.transfers.values()) if (t.opening || (!t.paused && t.request !== null)) return true;
    return false;
  }

  /**
   * Reads the socket only while what was handed to it, apart from the image being written, is
   * small: a client that sends and does not read cannot make the server keep more than that
   * (a TRANSFER_ERROR or a pong for each of its messages).
   */
  private flow(): void {
    if (this.closed) return;
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.maxBufferedAmount) this.maxBufferedAmount = buffered;
    const unsent = buffered - this.imageUnwritten;
    if (unsent > CUT_UNSENT_BYTES) {
      this.cut();
    } else if (unsent > MAX_UNSENT_BYTES) {
      if (!this.readPaused) {
        this.readPaused = true;
        this.ws.pause();
      }
    } else if (this.readPaused) {
      this.readPaused = false;
      this.ws.resume();
    }
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    this.messages++;
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
      return;
    }
    this.flow();
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
        if (t.queue) t.queue.setPriority(target, m.priority);
        else this.keep(t, target, m.priority);
        break;
      }
      case 'PAUSE_TRANSFER':
        if (!t) return;
        t.paused = true;
        this.cancel(t);
        // The load is let go (the cache may drop it meanwhile): RESUME opens the series again.
        t.images = null;
        break;
      case 'RESUME_TRANSFER':
        if (!t) return;
        t.paused = false;
        if (t.images === null && !t.opening) void this.open(t);
        break;
      case 'ABORT_TRANSFER':
      case 'STOP_TRANSFER':
        if (!t) return;
        this.end(t);
        break;
    }
    this.pump();
  }

  /** Keeps a SET_PRIORITY for `t` until its image count is known; 1008 beyond MAX_PENDING_TARGETS entries on the socket. */
  private keep(t: Transfer, target: number[], priority: number): void {
    const entries = Math.max(1, target.length);
    if (this.pendingTargets + entries > MAX_PENDING_TARGETS) {
      throw new MalformedMessage(
        CloseCode.POLICY_VIOLATION,
        `SET_PRIORITY: more than ${MAX_PENDING_TARGETS} image indices for transfers whose series is being opened`,
      );
    }
    t.pending.push({ target, priority });
    t.pendingTargets += entries;
    this.pendingTargets += entries;
  }

  private dropPending(t: Transfer): void {
    this.pendingTargets -= t.pendingTargets;
    t.pendingTargets = 0;
    t.pending = [];
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
    const t = new Transfer(id, this.seq++, series, descriptor);
    this.transfers.set(id, t);
    this.totals.transfers++;
    void this.open(t);
  }

  /** Transfers that hold a place: those in progress, and those ended whose series is still being opened. */
  private places(): number {
    let n = this.transfers.size;
    for (const t of this.unsettled) if (this.transfers.get(t.id) !== t) n++;
    return n;
  }

  /** Why a BEGIN_TRANSFER cannot begin before its series is looked at; null when it can. */
  private refusal(id: string, series: string): { status: number; message: string } | null {
    if (this.transfers.has(id)) return { status: 400, message: `transfer ${id.slice(0, 64)} is already in progress on this socket` };
    const max = this.limits.maxTransfersPerSocket;
    if (this.places() >= max) return { status: 429, message: `too many transfers on this socket (at most ${max} at once)` };
    if (!isValidUid(series)) return { status: 400, message: 'seriesUid must be a DICOM UID (digits and dots, at most 64 characters)' };
    return null;
  }

  /** Throws 401 unless authentication is off or the socket's token is for `series`. */
  private authorize(series: string): void {
    authorizeSeries(this.app, series, this.token, `a token for series ${series} is required (?token= on the socket URL)`);
  }

  /**
   * Opens `t`'s series (at BEGIN_TRANSFER, and again on RESUME_TRANSFER): its queue as soon as the
   * header pass tells the image count, its images once their format is known. A transfer paused
   * meanwhile lets the images go.
   */
  private async open(t: Transfer): Promise<void> {
    t.opening = true;
    this.unsettled.add(t);
    try {
      const load = await this.app.deps.volumes.open(t.series, { allowStack: true });
      if (!this.current(t)) return;
      if (!t.queue) {
        // Priorities apply from now on, also while the format waits for the complete volume.
        t.queue = new ImageQueue(descriptorSlices(t.descriptor, load.dims[2]).length);
        for (const p of t.pending) t.queue.setPriority(p.target, p.priority);
        this.dropPending(t);
      }
      const images = await SeriesImages.of(load, t.descriptor);
      if (!this.current(t)) return;
      const was = t.shape;
      if (images.count !== t.queue.count || (was && (was.columns !== images.columns || was.rows !== images.rows || was.format !== images.format))) {
        throw unprocessable(`series ${t.series} changed while the transfer was paused`);
      }
      t.shape = { columns: images.columns, rows: images.rows, format: images.format };
      if (!t.paused) t.images = images;
    } catch (err) {
      if (this.current(t)) this.fail(t, err);
    } finally {
      t.opening = false;
      this.unsettled.delete(t);
    }
    this.pump();
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

  /** Ends `t` (an open() under way goes on, holding its place until it settles). */
  private end(t: Transfer): void {
    this.cancel(t);
    this.dropPending(t);
    this.transfers.delete(t.id);
  }

  /** Ends `t` with a TRANSFER_ERROR for `err`. */
  private fail(t: Transfer, err: unknown): void {
    this.end(t);
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
    this.write(false, Buffer.from(`${JSON.stringify({ messageType: 'TRANSFER_ERROR', transferId, status, message })}\n`));
  }

  /**
   * Hands one message (or the fragments of one) to the socket; the next image waits for its
   * callback. `image`: it is an image (which flow control leaves out).
   */
  private write(image: boolean, ...fragments: Buffer[]): void {
    if (this.closed) return;
    if (this.writing === 0) this.lastWritten = Date.now();
    this.writing++;
    const bytes = image ? fragments.reduce((n, f) => n + f.length, 0) : 0;
    this.imageUnwritten += bytes;
    fragments.forEach((fragment, i) => {
      const last = i === fragments.length - 1;
      this.ws.send(fragment, { binary: true, fin: last }, last ? (err) => this.written(err, bytes) : undefined);
    });
    this.flow();
  }

  private written(err: Error | undefined, imageBytes: number): void {
    this.writing--;
    this.imageUnwritten -= imageBytes;
    if (err) {
      // The socket is closing or broken: its 'close' event disposes of it.
      this.dispose();
      return;
    }
    this.lastActivity = this.lastWritten = Date.now();
    this.flow();
    this.pump();
  }

  /** Sends image `k` of `t` (the socket is free). */
  private sendImage(t: Transfer, k: number, bytes: Buffer): void {
    const queue = t.queue!;
    queue.take(k);
    this.lastServed = t.seq;
    if (queue.remaining === 0) this.end(t);
    const header = Buffer.from(`${JSON.stringify({ messageType: 'TRANSFER_IMAGE', transferId: t.id, imageIndex: k })}\n`);
    // Two fragments of one message: the image is sent as it is, never copied behind the header.
    this.write(true, header, bytes);
    this.imagesSent++;
    this.totals.imagesSent++;
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
      if (t.images === null || t.paused || !(this.held?.t === t || t.ready >= 0)) continue;
      if (first === null || t.seq < first.seq) first = t;
      if (t.seq > this.lastServed && (after === null || t.seq < after.seq)) after = t;
    }
    return after ?? first;
  }

  /** Makes sure `t`'s next image is asked for (or kept ready), and nothing else of it. */
  private ask(t: Transfer): void {
    if (t.images === null || t.paused) return;
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
function handBack(server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
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
  const wss = new WebSocketServer<typeof VolumeWebSocket>({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: VolumeWebSocket,
  });
  const connections = new Set<VolumeConnection>();
  const perAddress = new Map<string, number>();
  const totals: VolumeSocketTotals = { sockets: 0, transfers: 0, imagesSent: 0 };
  // The instance name, on the upgrade's answer (101) and on its refusals, as on every HTTP response.
  const instance: Record<string, string> = config.instanceName ? { [INSTANCE_HEADER]: config.instanceName } : {};
  if (config.instanceName) wss.on('headers', (headers) => headers.push(`${INSTANCE_HEADER}: ${config.instanceName}`));

  app.decorate('volumeSockets', {
    count: () => connections.size,
    stats: () => [...connections].map((c) => c.stats()),
    totals: () => ({ ...totals }),
  });

  // Node gives this listener every request that carries Upgrade (Upgrade: h2c from curl --http2
  // too): only WebSocket upgrades are this route's, the others go back to the HTTP server.
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      if (req.headers.upgrade?.trim().toLowerCase() === 'websocket') upgrade(req, socket, head);
      else handBack(app.server, req, socket, head);
    } catch (err) {
      // A listener of the HTTP server must not throw: that would end the process.
      app.log.error({ err }, 'ws/volume: an upgrade failed');
      socket.destroy();
    }
  });

  /** The token and client address of an upgrade, or why it is refused. */
  function admit(req: IncomingMessage): { token: string | undefined; address: string } | Refusal {
    const [pathname, query = ''] = (req.url ?? '').split('?', 2);
    if (pathname !== path && pathname !== `${path}/`) return { status: 404, message: unknownAction(pathname) };
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
    const address = app.clientAddress(req);
    if ((perAddress.get(address) ?? 0) >= limits.maxSocketsPerAddress) {
      return { status: 429, message: `too many sockets from ${address} (at most ${limits.maxSocketsPerAddress})` };
    }
    return { token, address };
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = admit(req);
    if ('status' in admitted) {
      refuse(socket, admitted.status, admitted.message, { ...admitted.headers, ...instance });
      return;
    }
    const { token, address } = admitted;
    wss.handleUpgrade(req, socket, head, (ws) => {
      perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
      totals.sockets++;
      const connection = new VolumeConnection(app, ws, socket, address, token, limits, totals);
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
