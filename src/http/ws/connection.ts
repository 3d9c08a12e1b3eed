/**
 * One open /ws/volume socket: its transfers, and the images it sends for them.
 *
 * Policy:
 * - Transfers of one socket are served in turn, one image each; within a transfer the unsent
 *   image the ImageQueue puts first goes next. Only that image is asked of the load (its slice
 *   then loads first), so a priority set by the client steers the load too, and a transfer
 *   waiting for its slice never holds up the others.
 * - Images go out as soon as their slice is decoded (SeriesImages.image), in the order above,
 *   each only when the socket is free (see socketWriter.ts). While one is being written, at most
 *   one more image is kept ready (the next one, so that the socket never waits for the
 *   conversion); an image that becomes ready while that place is taken is dropped and made again
 *   when its turn comes (the slice stays decoded in the volume, so that is a copy, not a decode).
 *   A stalled reader so costs at most two images of memory (beside the writer's bound), never
 *   the volume.
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
 * - The token the socket was opened with is checked against each BEGIN_TRANSFER's series (tokens
 *   are series-bound): TRANSFER_ERROR 401 otherwise.
 * - A transfer ends when its last image is written (it is then forgotten: the same transferId may
 *   begin again), when it is aborted, or with a TRANSFER_ERROR (which always ends it, except for
 *   a BEGIN_TRANSFER refused because its transferId is in use: the transfer in progress goes on).
 *   The states a transfer goes through are transfer.ts's.
 * - A frame that is not a message closes the socket with its close code and reason (see
 *   protocol.ts); the other sockets go on. Messages naming a transferId that is not in progress
 *   are ignored (a transfer may end while the client's message is on its way).
 * - A socket idle or stalled for wsIdleTimeoutMs (see idle.ts) is closed or cut: its transfers
 *   and the images they hold end there.
 */
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { CircusError, unprocessable } from '../../core/errors.js';
import { isValidUid } from '../../core/uid.js';
import { ImageQueue } from '../../services/imageQueue.js';
import { descriptorSlices, type PartialVolumeDescriptor, SeriesImages } from '../../services/seriesImages.js';
import { authorizeSeries } from '../auth.js';
import { descriptorOf } from '../volumeDescriptor.js';
import { type ClientMessage, CloseCode, closeReason, parseFrame, ProtocolViolation, transferError, transferImageHeader } from './protocol.js';
import type { VolumeSocketStats, VolumeSocketTotals } from './figures.js';
import { idleVerdict } from './idle.js';
import { SocketWriter } from './socketWriter.js';
import { type ImageRequest, priorityEntries, Transfer } from './transfer.js';

/**
 * Image indices of SET_PRIORITY messages a socket keeps for its transfers whose image count is
 * not known yet (their header pass runs); the socket is closed (1008) beyond.
 */
const MAX_PENDING_TARGETS = 65536;

/** What the limits of the socket are (config options). */
export interface VolumeSocketLimits {
  maxTransfersPerSocket: number;
  maxSocketsPerAddress: number;
  maxMessageBytes: number;
  idleTimeoutMs: number;
}

/** The state of one open socket. */
export class VolumeConnection {
  /** The transfers in progress, by transferId. */
  private readonly transfers = new Map<string, Transfer>();
  /** Transfers whose series is being opened, ended ones included: they hold a place until the open settles. */
  private readonly openings = new Set<Transfer>();
  private seq = 0;
  /** The seq of the transfer served last. */
  private lastServed = -1;
  /** The image made for a transfer whose turn it is (the socket is kept for it). */
  private producing = false;
  /** The one image kept ready while the socket is busy. */
  private held: { t: Transfer; k: number; bytes: Buffer } | null = null;
  /** SET_PRIORITY entries kept for transfers whose image count is not known yet. */
  private pendingTargets = 0;
  private closed = false;
  private lastActivity = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly writer: SocketWriter;
  imagesSent = 0;
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
    this.writer = new SocketWriter(ws, socket, {
      written: (now) => {
        this.lastActivity = now;
        this.pump();
      },
      // The socket is closing or broken: its 'close' event disposes of it.
      broken: () => this.dispose(),
      overflow: () => this.cut(),
    });
    this.armIdleTimer(limits.idleTimeoutMs);
  }

  stats(): VolumeSocketStats {
    return {
      address: this.address,
      transfers: this.transfers.size,
      imagesSent: this.imagesSent,
      maxBufferedAmount: this.writer.maxBufferedAmount,
      bufferedAmount: this.ws.bufferedAmount,
      writing: this.writer.writing,
      holding: this.held !== null,
      opening: this.openings.size,
      reading: this.writer.reading,
      messages: this.messages,
    };
  }

  /** Drops every transfer (the socket closed). */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.stop();
    for (const t of this.transfers.values()) {
      this.cancel(t);
      t.end('abort');
    }
    this.transfers.clear();
    this.pendingTargets = 0;
    this.held = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
  }

  /** Closes the socket with `code` and `reason`, dropping its transfers. */
  close(code: CloseCode, reason: string): void {
    this.dispose();
    // The client's answer to the close frame is read (what else it sends is ignored now).
    this.writer.readForClose();
    this.ws.close(code, closeReason(reason));
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
    const verdict = idleVerdict(this.limits.idleTimeoutMs, {
      now: Date.now(),
      lastActivity: this.lastActivity,
      writingSince: this.writer.writing > 0 ? this.writer.lastWritten : null,
      waitingForLoad: this.waitingForLoad(),
    });
    if (verdict.action === 'cut') this.cut();
    else if (verdict.action === 'close') this.close(CloseCode.NORMAL, `idle for ${Math.round(this.limits.idleTimeoutMs / 1000)} s`);
    else this.armIdleTimer(verdict.ms);
  }

  /** Whether a transfer waits for the load (so the socket is quiet, not idle). */
  private waitingForLoad(): boolean {
    for (const t of this.transfers.values()) if (this.openings.has(t) || (t.state !== 'paused' && t.request !== null)) return true;
    return false;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    this.messages++;
    this.lastActivity = Date.now();
    try {
      this.handle(parseFrame(data, isBinary));
    } catch (err) {
      if (err instanceof ProtocolViolation) {
        this.close(err.code, err.message);
        return;
      }
      this.app.log.error({ err }, 'ws/volume: a message failed');
      this.close(CloseCode.INTERNAL_ERROR, 'internal error');
      return;
    }
    this.writer.flow();
  }

  private handle(m: ClientMessage): void {
    if (m.messageType === 'BEGIN_TRANSFER') {
      this.begin(m);
      return;
    }
    const t = this.transfers.get(m.transferId);
    if (!t) return;
    switch (m.messageType) {
      case 'SET_PRIORITY':
        if (t.queue) t.queue.setPriority(m.target, m.priority);
        else this.keep(t, m.target, m.priority);
        break;
      case 'PAUSE_TRANSFER':
        // The load is let go (the cache may drop it meanwhile): RESUME opens the series again.
        this.cancel(t);
        t.pause();
        break;
      case 'RESUME_TRANSFER':
        t.resume();
        if (t.state === 'opening' && !this.openings.has(t)) void this.open(t);
        break;
      case 'ABORT_TRANSFER':
      case 'STOP_TRANSFER':
        this.end(t, 'abort');
        break;
    }
    this.pump();
  }

  /** Keeps a SET_PRIORITY for `t` until its image count is known; 1008 beyond MAX_PENDING_TARGETS entries on the socket. */
  private keep(t: Transfer, target: number[], priority: number): void {
    if (this.pendingTargets + priorityEntries(target) > MAX_PENDING_TARGETS) {
      throw new ProtocolViolation(
        CloseCode.POLICY_VIOLATION,
        `SET_PRIORITY: more than ${MAX_PENDING_TARGETS} image indices for transfers whose series is being opened`,
      );
    }
    this.pendingTargets += t.keepPriority(target, priority);
  }

  private begin(m: Extract<ClientMessage, { messageType: 'BEGIN_TRANSFER' }>): void {
    const id = m.transferId;
    const series = m.seriesUid;
    const refusal = this.refusal(id, series);
    if (refusal) {
      this.sendError(id, refusal.status, refusal.message);
      return;
    }
    let descriptor: PartialVolumeDescriptor | undefined;
    try {
      descriptor = descriptorOf(m.partialVolumeDescriptor);
      authorizeSeries(this.app, series, this.token, `a token for series ${series} is required (?token= on the socket URL)`);
    } catch (err) {
      this.sendErrorFor(id, err);
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
    for (const t of this.openings) if (t.ended) n++;
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

  /**
   * Opens `t`'s series (at BEGIN_TRANSFER, and again on RESUME_TRANSFER): its queue as soon as the
   * header pass tells the image count, its images once their format is known. A transfer paused
   * meanwhile lets the images go.
   */
  private async open(t: Transfer): Promise<void> {
    this.openings.add(t);
    try {
      const load = await this.app.deps.volumes.open(t.series, { allowStack: true });
      if (t.ended) return;
      if (!t.queue) {
        // Priorities apply from now on, also while the format waits for the complete volume.
        t.queue = new ImageQueue(descriptorSlices(t.descriptor, load.dims[2]).length);
        t.applyPriorities(t.queue);
        this.pendingTargets -= t.dropPriorities();
      }
      const images = await SeriesImages.of(load, t.descriptor);
      if (t.ended) return;
      const was = t.shape;
      if (images.count !== t.queue.count || (was && (was.columns !== images.columns || was.rows !== images.rows || was.format !== images.format))) {
        throw unprocessable(`series ${t.series} changed while the transfer was paused`);
      }
      t.shape = { columns: images.columns, rows: images.rows, format: images.format };
      t.opened(images);
    } catch (err) {
      if (!t.ended) this.endWithError(t, err);
    } finally {
      this.openings.delete(t);
    }
    this.pump();
  }

  /** Stops what `t` has under way: its request, and its image kept ready. */
  private cancel(t: Transfer): void {
    if (t.request) {
      const request = t.request;
      t.request = null;
      if (request.turn) this.producing = false;
      request.controller.abort(new Error('the image is no longer wanted'));
    }
    t.dropped = -1;
    if (this.held?.t === t) this.held = null;
  }

  /** Ends `t` (an open under way goes on, holding its place until it settles). */
  private end(t: Transfer, event: 'finish' | 'abort' | 'fail'): void {
    this.cancel(t);
    this.pendingTargets -= t.dropPriorities();
    this.transfers.delete(t.id);
    t.end(event);
  }

  /** Ends `t` with a TRANSFER_ERROR for `err`. */
  private endWithError(t: Transfer, err: unknown): void {
    this.end(t, 'fail');
    this.sendErrorFor(t.id, err);
  }

  /** Sends the TRANSFER_ERROR `err` calls for (its status and message when it is a CircusError, else 500), logging server errors. */
  private sendErrorFor(id: string, err: unknown): void {
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
    this.writer.write(false, transferError(transferId, status, message));
  }

  /** Sends image `k` of `t` (the socket is free). */
  private sendImage(t: Transfer, k: number, bytes: Buffer): void {
    const queue = t.queue!;
    queue.take(k);
    this.lastServed = t.seq;
    if (queue.remaining === 0) this.end(t, 'finish');
    // Two fragments of one message: the image is sent as it is, never copied behind the header.
    this.writer.write(true, transferImageHeader(t.id, k), bytes);
    this.imagesSent++;
    this.totals.imagesSent++;
  }

  /** Does what can be done now: asks for each transfer's next image, and sends one when the socket is free. */
  private pump(): void {
    if (this.closed) return;
    for (const t of this.transfers.values()) this.askNext(t);
    if (this.writer.writing > 0 || this.producing) return;
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
    const k = t.dropped;
    t.dropped = -1;
    this.askFor(t, k, true);
  }

  /** The next transfer in turn with an image to send now. */
  private nextInTurn(): Transfer | null {
    let first: Transfer | null = null;
    let after: Transfer | null = null;
    for (const t of this.transfers.values()) {
      if (t.images === null || !(this.held?.t === t || t.dropped >= 0)) continue;
      if (first === null || t.seq < first.seq) first = t;
      if (t.seq > this.lastServed && (after === null || t.seq < after.seq)) after = t;
    }
    return after ?? first;
  }

  /** Makes sure `t`'s next image is asked for (or kept ready), and nothing else of it. */
  private askNext(t: Transfer): void {
    if (t.images === null) return;
    const top = t.queue!.peek();
    if (top < 0) return;
    const held = this.held?.t === t ? this.held.k : -1;
    if (held === top || t.dropped === top || t.request?.k === top) return;
    // The priorities changed: what was under way for this transfer is for another image.
    this.cancel(t);
    this.askFor(t, top, false);
  }

  /** Asks for image `k` of `t`; `turn`: the socket is kept for it, and it is sent when made. */
  private askFor(t: Transfer, k: number, turn: boolean): void {
    const images = t.images!;
    const controller = new AbortController();
    const request: ImageRequest = { k, controller, turn };
    t.request = request;
    if (turn) this.producing = true;
    images.image(k, controller.signal).then(
      (bytes) => this.imageMade(t, request, bytes),
      (err: unknown) => {
        if (t.request !== request) return; // withdrawn
        t.request = null;
        if (turn) this.producing = false;
        if (!t.ended) this.endWithError(t, err);
        this.pump();
      },
    );
  }

  private imageMade(t: Transfer, request: ImageRequest, bytes: Buffer): void {
    if (t.request !== request) return; // withdrawn: the image is no longer the one wanted
    t.request = null;
    if (request.turn) this.producing = false;
    if (t.ended) return;
    if (request.turn) {
      this.sendImage(t, request.k, bytes);
    } else if (this.held === null) {
      this.held = { t, k: request.k, bytes };
    } else {
      t.dropped = request.k;
    }
    this.pump();
  }
}
