/**
 * One transfer of a /ws/volume socket: the state it is in, and what it keeps across its life.
 *
 * Policy (the states and the events that move a transfer between them):
 *
 *   opening --opened--> streaming --finish--> done
 *   opening, streaming --pause--> paused --resume--> opening
 *   opening, streaming, paused --abort--> aborted
 *   opening, streaming, paused --fail--> failed
 *
 * - `opening`: its series is being opened (at BEGIN_TRANSFER, and again on RESUME_TRANSFER);
 *   `streaming`: it holds the series' images and sends them; `paused`: it has let its images go
 *   (an open under way when it was paused goes on, and its images are let go when it ends).
 * - Every other event leaves the state as it is: `resume` of a transfer that is not paused,
 *   `opened` of a paused one (its series stays let go), `pause` of a paused one, and any event of
 *   an ended one (`done`, `aborted`, `failed` are final).
 * - The queue (which images were sent, their priorities) is made once, when the image count is
 *   first known, and kept across pauses, so that no image is sent twice. SET_PRIORITY messages
 *   that come before it are kept until then.
 */
import type { PixelFormat } from '../../core/volume/volume.js';
import type { ImageQueue } from '../../services/imageQueue.js';
import type { PartialVolumeDescriptor, SeriesImages } from '../../services/seriesImages.js';

export type TransferState = 'opening' | 'streaming' | 'paused' | 'done' | 'aborted' | 'failed';
export type TransferEvent = 'opened' | 'pause' | 'resume' | 'finish' | 'abort' | 'fail';

const TRANSITIONS: Record<TransferState, Partial<Record<TransferEvent, TransferState>>> = {
  opening: { opened: 'streaming', pause: 'paused', abort: 'aborted', fail: 'failed' },
  streaming: { pause: 'paused', finish: 'done', abort: 'aborted', fail: 'failed' },
  paused: { resume: 'opening', abort: 'aborted', fail: 'failed' },
  done: {},
  aborted: {},
  failed: {},
};

/** The state `event` moves a transfer in `state` to (the same state when the event does not move it). */
export function nextState(state: TransferState, event: TransferEvent): TransferState {
  return TRANSITIONS[state][event] ?? state;
}

/** Whether a transfer in `state` has ended. */
export const isEnded = (state: TransferState): boolean => state === 'done' || state === 'aborted' || state === 'failed';

/** The image size and format a series was first opened with. */
export interface ImageShape {
  readonly columns: number;
  readonly rows: number;
  readonly format: PixelFormat;
}

/** An image asked of the load, until it is ready. */
export interface ImageRequest {
  readonly k: number;
  readonly controller: AbortController;
  /** Whether the socket is kept for it (it is sent as soon as it is made). */
  readonly turn: boolean;
}

/** The entries a SET_PRIORITY's target counts against the socket's limit of kept ones (at least 1). */
export const priorityEntries = (target: readonly number[]): number => Math.max(1, target.length);

/** One transfer of a socket. */
export class Transfer {
  private current: TransferState = 'opening';
  private heldImages: SeriesImages | null = null;
  /**
   * Which image goes next and which were sent: made as soon as the header pass tells the image
   * count, kept until the transfer ends (across pauses, so that no image is sent twice).
   */
  queue: ImageQueue | null = null;
  /** The image size and format the series was first opened with: a reopening must find the same. */
  shape: ImageShape | null = null;
  /** The image asked of the load, until it is ready. */
  request: ImageRequest | null = null;
  /** An image that was ready but whose bytes were dropped (the place for a ready image was taken); -1 when none. */
  dropped = -1;
  /** SET_PRIORITY messages received before the image count was known, applied once it is. */
  private pending: { target: number[]; priority: number }[] = [];
  /** The entries `pending` counts against the socket's limit. */
  private pendingEntries = 0;

  constructor(
    readonly id: string,
    /** Order of creation on the socket (for taking turns). */
    readonly seq: number,
    readonly series: string,
    readonly descriptor: PartialVolumeDescriptor | undefined,
  ) {}

  get state(): TransferState {
    return this.current;
  }

  get ended(): boolean {
    return isEnded(this.current);
  }

  /** The series' images, while the transfer is streaming; null in every other state. */
  get images(): SeriesImages | null {
    return this.heldImages;
  }

  /** The series is open: the transfer streams `images`, unless it was paused meanwhile (or has ended). */
  opened(images: SeriesImages): void {
    this.move('opened');
    if (this.current === 'streaming') this.heldImages = images;
  }

  /** PAUSE_TRANSFER: the images are let go. */
  pause(): void {
    this.move('pause');
  }

  /** RESUME_TRANSFER: a paused transfer opens its series again (the caller starts the open when none is under way). */
  resume(): void {
    this.move('resume');
  }

  /** The transfer ends: `finish` (its last image was handed to the socket), `abort` or `fail`. */
  end(event: 'finish' | 'abort' | 'fail'): void {
    this.move(event);
  }

  /** Keeps a SET_PRIORITY until the queue is made; the entries it counts against the socket's limit. */
  keepPriority(target: number[], priority: number): number {
    const entries = priorityEntries(target);
    this.pending.push({ target, priority });
    this.pendingEntries += entries;
    return entries;
  }

  /** Applies the kept SET_PRIORITY messages to `queue` (in the order they came). */
  applyPriorities(queue: ImageQueue): void {
    for (const p of this.pending) queue.setPriority(p.target, p.priority);
  }

  /** Forgets the kept SET_PRIORITY messages; the entries they counted. */
  dropPriorities(): number {
    const entries = this.pendingEntries;
    this.pending = [];
    this.pendingEntries = 0;
    return entries;
  }

  private move(event: TransferEvent): void {
    this.current = nextState(this.current, event);
    if (this.current !== 'streaming') this.heldImages = null;
  }
}
