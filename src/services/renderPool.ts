/**
 * Images are rendered on a pool of worker threads (one per core by default), so the event loop
 * only routes requests while sampling, windowing, PNG filtering and deflate use every core.
 * Volumes live in shared memory, so a task carries a reference to the voxels, never a copy.
 * A grid whose voxels are not in shared memory (a volume built by hand) is rendered on the
 * calling thread with the same code.
 */
import { CircusError, type ErrorCode, ERROR_TABLE } from '../core/errors.js';
import { type RenderJob, renderImage, renderPng } from './renderJob.js';
import { type PoolStats, WorkerPool, WorkerTaskError } from '../workers/workerPool.js';

export interface Renderer {
  render(job: RenderJob): Promise<Buffer>;
  stats(): PoolStats | null;
  close(): Promise<void>;
}

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './renderWorker.ts' : './renderWorker.js', import.meta.url);

export class RenderPool implements Renderer {
  private readonly pool: WorkerPool<RenderJob | null, Uint8Array | null>;

  /** @param taskTimeoutMs longest one image may take before its worker is stopped (the request then fails) */
  constructor(size?: number, taskTimeoutMs?: number) {
    this.pool = new WorkerPool(WORKER_URL, 'rendering', size, taskTimeoutMs);
  }

  async render(job: RenderJob): Promise<Buffer> {
    if (job.kind !== 'frame' && !(job.grid.data.buffer instanceof SharedArrayBuffer)) return renderPng(job);
    let png: Uint8Array | null;
    try {
      png = await this.pool.run(job);
    } catch (err) {
      // A CircusError thrown in the worker keeps its status.
      const code = (err instanceof WorkerTaskError ? (err.detail as { code?: unknown } | undefined)?.code : undefined) as ErrorCode | undefined;
      if (code !== undefined && code in ERROR_TABLE) throw new CircusError(code, err instanceof Error ? err.message : String(err));
      throw err;
    }
    if (!png) throw new Error('a rendering worker returned no image');
    return Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  }

  /** Starts every worker now, so the first images do not wait for them. */
  warm(): Promise<void> {
    return this.pool.warm(null);
  }

  stats(): PoolStats {
    return this.pool.stats();
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Renders on the calling thread (tests, tools). */
export const inProcessRenderer: Renderer = {
  render: async (job) => renderImage(job),
  stats: () => null,
  close: async () => {},
};
