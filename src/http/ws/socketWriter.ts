/**
 * What one /ws/volume socket has been handed to write, and whether the socket is read meanwhile.
 *
 * Policy (backpressure):
 * - An image is sent only when every earlier message of the socket has been written out (its
 *   send callback came): `writing` tells the connection when the socket is free.
 * - Other messages (TRANSFER_ERROR, pongs) are answers to the client's: while more than
 *   MAX_UNSENT_BYTES of them are unsent, the socket is not read, so the client's next messages
 *   wait in its own buffers. Beyond CUT_UNSENT_BYTES the socket is cut (a guard: reading stops
 *   long before). A stalled reader so costs, beside the images the connection keeps, at most
 *   MAX_UNSENT_BYTES (plus what one read brought) of memory.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

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

/** What the writer tells its connection. */
export interface WriterEvents {
  /** A message has been written out, at `now` (the socket may be free). */
  written(now: number): void;
  /** A write failed: the socket is closing or broken (its 'close' event follows). */
  broken(): void;
  /** Far more is unsent than reading allows: the socket must be cut. */
  overflow(): void;
}

/** Writes messages to one socket and reads it only while little of what it was handed is unsent. */
export class SocketWriter {
  /** Messages handed to ws whose send callback has not come. */
  private unfinished = 0;
  /** Bytes of the image message handed to ws whose send callback has not come. */
  private imageUnwritten = 0;
  /** Whether reading the socket is stopped (too much unsent). */
  private readPaused = false;
  private stopped = false;
  /** When the socket last finished writing a message, or began writing after it had nothing to write. */
  private lastWrittenAt = Date.now();
  /** Largest bufferedAmount seen after a message was handed to the socket or handled. */
  maxBufferedAmount = 0;

  constructor(
    private readonly ws: WebSocket,
    socket: Duplex,
    private readonly events: WriterEvents,
  ) {
    // ws answers a ping with a pong before this listener runs: it counts as unsent too.
    ws.on('ping', () => this.flow());
    // Written out (pongs have no callback of ours): reading may go on.
    socket.on('drain', () => this.flow());
  }

  /** Messages handed to the socket whose writing has not finished. */
  get writing(): number {
    return this.unfinished;
  }

  /** When the socket last finished writing a message, or began writing after it had nothing to write (ms since the epoch). */
  get lastWritten(): number {
    return this.lastWrittenAt;
  }

  /** Whether the socket is read (false while too much of what was sent to it is unsent). */
  get reading(): boolean {
    return !this.readPaused;
  }

  /**
   * Hands one message (or the fragments of one) to the socket; the next image waits for its
   * callback. `image`: it is an image (which flow control leaves out).
   */
  write(image: boolean, ...fragments: Buffer[]): void {
    if (this.stopped) return;
    if (this.unfinished === 0) this.lastWrittenAt = Date.now();
    this.unfinished++;
    const bytes = image ? fragments.reduce((n, f) => n + f.length, 0) : 0;
    this.imageUnwritten += bytes;
    fragments.forEach((fragment, i) => {
      const last = i === fragments.length - 1;
      this.ws.send(fragment, { binary: true, fin: last }, last ? (err) => this.written(err, bytes) : undefined);
    });
    this.flow();
  }

  /**
   * Reads the socket only while what was handed to it, apart from the image being written, is
   * small: a client that sends and does not read cannot make the server keep more than that
   * (a TRANSFER_ERROR or a pong for each of its messages).
   */
  flow(): void {
    if (this.stopped) return;
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.maxBufferedAmount) this.maxBufferedAmount = buffered;
    const unsent = buffered - this.imageUnwritten;
    if (unsent > CUT_UNSENT_BYTES) {
      this.events.overflow();
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

  /** Writes nothing more, and no longer steers reading (the socket is closing or closed). */
  stop(): void {
    this.stopped = true;
  }

  /** Reads the socket again whatever is unsent, so that the client's answer to a close frame is read. */
  readForClose(): void {
    if (this.readPaused) this.ws.resume();
  }

  private written(err: Error | undefined, imageBytes: number): void {
    this.unfinished--;
    this.imageUnwritten -= imageBytes;
    if (err) {
      this.events.broken();
      return;
    }
    this.lastWrittenAt = Date.now();
    this.flow();
    this.events.written(this.lastWrittenAt);
  }
}
