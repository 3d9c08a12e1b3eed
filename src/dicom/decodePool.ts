/**
 * A pool of worker threads that decode compressed frames, sized to the machine by default, so
 * a cold load of a compressed series uses every core and the event loop stays free. A worker
 * decodes each frame straight into its slice of the volume's shared memory (SharedArrayBuffer),
 * normalises the stored bits there and measures the slice's value range: nothing is copied back
 * or transferred, the main thread only learns the ranges. It runs on the generic WorkerPool:
 * workers start on first use, a worker that dies fails its task and is replaced, and a task past
 * `taskTimeoutMs` (a decoder looping on a crafted frame) has its worker stopped and fails.
 */
import { availableParallelism } from 'node:os';
import type { StoredRange } from '../core/volume/modality.js';
import type { PixelFormat } from '../core/volume/volume.js';
import { type PoolStats, WorkerPool, WorkerTaskError } from '../workers/workerPool.js';
import type { WorkerInput } from './instance.js';
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
  /** The instance's bytes, or the file the worker reads them from; null only to warm up. */
  input: WorkerInput | null;
  /** Frame indices (0-based) to decode. */
  frames: number[];
  maxInflatedBytes: number;
  /** Null only to warm up. */
  target: DecodeTarget | null;
}

/** An instance to rewrite in Explicit VR Little Endian (see transcode.ts's toExplicitLittle). */
export interface TranscodeTask {
  kind: 'explicitLittle';
  input: WorkerInput;
  maxInflatedBytes: number;
}

/** One frame of an instance, uncompressed (see transcode.ts's frameOfInstance). */
export interface FrameTask {
  kind: 'frame';
  input: WorkerInput;
  /** 0-based. */
  frame: number;
  maxInflatedBytes: number;
}

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

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './decodeWorker.ts' : './decodeWorker.js', import.meta.url);

export class DecodePool {
  private readonly pool: WorkerPool<DecodeTask | TranscodeTask | FrameTask, StoredRange[] | Uint8Array>;

  /** @param taskTimeoutMs longest one task may take before its worker is stopped (the load then fails) */
  constructor(size = availableParallelism(), taskTimeoutMs?: number) {
    this.pool = new WorkerPool(WORKER_URL, 'decoding', size, taskTimeoutMs);
  }

  get size(): number {
    return this.pool.size;
  }

  /**
   * Decodes frames (0-based indices) of one instance into `target` (frame i at
   * `target.byteOffsets[i]`), normalised; resolves to each slice's value range, in the same
   * order. Rejects with DecodeError (naming the frame that failed, when one did), or Error when
   * the pool is closed, its worker died or the task ran past its time.
   */
  async decode(input: WorkerInput | null, frames: number[], maxInflatedBytes: number, target: DecodeTarget | null): Promise<StoredRange[]> {
    try {
      return (await this.pool.run({ input, frames, maxInflatedBytes, target })) as StoredRange[];
    } catch (err) {
      if (!(err instanceof WorkerTaskError)) throw err;
      const at = (err.detail as { at?: unknown } | undefined)?.at;
      throw new DecodeError(err.message, typeof at === 'number' ? at : undefined);
    }
  }

  /**
   * The instance rewritten in Explicit VR Little Endian, compressed pixel data decoded, on a
   * worker. Rejects with Error (the worker's message) when it cannot be read, decoded or re-encoded.
   */
  async toExplicitLittle(input: WorkerInput, maxInflatedBytes: number): Promise<Buffer> {
    const out = (await this.pool.run({ kind: 'explicitLittle', input, maxInflatedBytes })) as Uint8Array;
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Frame `frame` (0-based) of the instance, uncompressed (decoded when compressed), on a worker. */
  async decodeFrame(input: WorkerInput, frame: number, maxInflatedBytes: number): Promise<Uint8Array> {
    return (await this.pool.run({ kind: 'frame', input, frame, maxInflatedBytes })) as Uint8Array;
  }

  stats(): PoolStats {
    return this.pool.stats();
  }

  /**
   * Starts every worker and loads its decoders now, so that the first compressed series does not
   * wait for them (about half a second a worker).
   */
  warm(): Promise<void> {
    return this.pool.warm({ input: null, frames: [], maxInflatedBytes: 0, target: null });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
