/**
 * A pool of worker threads that decode compressed frames, sized to the machine by default, so
 * a cold load of a compressed series uses every core and the event loop stays free. A worker
 * decodes each frame straight into its slice of the volume's shared memory (SharedArrayBuffer),
 * normalises the stored bits there and measures the slice's value range: nothing is copied back
 * or transferred, the main thread only learns the ranges. Workers start on first use; a worker
 * that dies fails its task and is replaced.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { StoredRange } from '../core/volume/modality.js';
import type { PixelFormat } from '../core/volume/volume.js';
import type { WorkerInput } from '../sources/source.js';
import type { StoredBits } from './storedValues.js';

/** Where a task's decoded frames go, and how their stored values are read. */
export interface DecodeTarget {
  /** The volume's stored values. */
  buffer: SharedArrayBuffer;
  /** Their format (UInt8, Int8, UInt16 or Int16). */
  format: PixelFormat;
  /** Byte offset in `buffer` of the slice each frame becomes, in the order of the task's frames. */
  byteOffsets: number[];
  /** Voxels a frame (rows * columns). */
  voxels: number;
  bits: StoredBits;
  /** Stored values that are padding (inclusive), left out of the ranges. */
  padding?: readonly [number, number];
}

export interface DecodeTask {
  id: number;
  /** The instance's bytes, or the file the worker reads them from; null only to warm up. */
  input: WorkerInput | null;
  /** Frame indices (0-based) to decode. */
  frames: number[];
  maxInflatedBytes: number;
  /** Null only to warm up. */
  target: DecodeTarget | null;
}

export type DecodeReply =
  | { id: number; ranges: StoredRange[]; error?: undefined }
  | { id: number; error: string; ranges?: undefined /** Index in the task's frames of the frame that failed, when one did. */; at?: number };

/** A task that failed; `at` is the index (in the task's frames) of the frame that failed, when one did. */
export class DecodeError extends Error {
  constructor(
    message: string,
    readonly at?: number,
  ) {
    super(message);
    this.name = 'DecodeError';
  }
}

interface Job {
  task: DecodeTask;
  resolve: (ranges: StoredRange[]) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

// Under the TypeScript sources (tests, benchmarks) the worker is a .ts file run through tsx.
const fromSource = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(fromSource ? './decodeWorker.ts' : './decodeWorker.js', import.meta.url);

export class DecodePool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, size);
  }

  /**
   * Decodes frames (0-based indices) of one instance into `target` (frame i at
   * `target.byteOffsets[i]`), normalised; resolves to each slice's value range, in the same
   * order. Rejects with DecodeError (naming the frame that failed, when one did), or Error when
   * the pool is closed or its worker died.
   */
  decode(input: WorkerInput | null, frames: number[], maxInflatedBytes: number, target: DecodeTarget | null): Promise<StoredRange[]> {
    if (this.closed) return Promise.reject(new Error('the decoding pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, input, frames, maxInflatedBytes, target }, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Slot {
    // From the sources, a small bootstrap registers tsx in the worker before loading the .ts file.
    const worker = fromSource
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`, { eval: true })
      : new Worker(WORKER_URL);
    worker.unref();
    const slot: Slot = { worker, job: null };
    worker.on('message', (reply: DecodeReply) => {
      const job = slot.job;
      slot.job = null;
      if (job && job.task.id === reply.id) {
        if (reply.error !== undefined) job.reject(new DecodeError(reply.error, reply.at));
        else job.resolve(reply.ranges);
      }
      this.pump();
    });
    const fail = (err: Error): void => {
      const job = slot.job;
      slot.job = null;
      this.slots.splice(this.slots.indexOf(slot), 1);
      job?.reject(new Error(`a decoding worker failed: ${err.message}`));
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.task);
    }
    for (const s of this.slots) if (s.job === null) s.worker.unref();
  }

  /**
   * Starts every worker and loads its decoders now, so that the first compressed series does not
   * wait for them (about half a second a worker).
   */
  async warm(): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, () => this.decode(null, [], 0, null)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('the decoding pool is closed'));
    const slots = this.slots.splice(0);
    // Tasks under way end too (their workers' exit is no longer watched once they leave `slots`).
    for (const s of slots) s.job?.reject(new Error('the decoding pool is closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
