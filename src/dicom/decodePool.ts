/**
 * A pool of worker threads that decode compressed frames, sized to the machine by default, so
 * a cold load of a compressed series uses every core and the event loop stays free. Decoded
 * samples come back as transferred ArrayBuffers (moved, not copied). Workers start on first use;
 * a worker that dies fails its task and is replaced.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { WorkerInput } from '../sources/source.js';

export interface DecodeTask {
  id: number;
  /** The instance's bytes, or the file the worker reads them from; null only to warm up. */
  input: WorkerInput | null;
  /** Frame indices (0-based) to decode. */
  frames: number[];
  maxInflatedBytes: number;
}

export type DecodeReply = { id: number; frames: ArrayBuffer[]; error?: undefined } | { id: number; error: string; frames?: undefined };

interface Job {
  task: DecodeTask;
  resolve: (frames: ArrayBuffer[]) => void;
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

  /** Decodes frames (0-based indices) of one instance; resolves to their samples in the same order. */
  decode(input: WorkerInput | null, frames: number[], maxInflatedBytes: number): Promise<ArrayBuffer[]> {
    if (this.closed) return Promise.reject(new Error('the decoding pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, input, frames, maxInflatedBytes }, resolve, reject });
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
        if (reply.error !== undefined) job.reject(new Error(reply.error));
        else job.resolve(reply.frames);
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
    await Promise.all(Array.from({ length: this.size }, () => this.decode(null, [], 0)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('the decoding pool is closed'));
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
