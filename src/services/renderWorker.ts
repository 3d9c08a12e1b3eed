/**
 * A rendering worker: samples, windows, filters and deflates one image per task, reading the
 * volume in place from shared memory, and moves the PNG bytes back (no copy).
 */
import { type RenderJob, renderPng } from './renderJob.js';
import { serveTasks } from '../workers/workerPool.js';

serveTasks<RenderJob | null, Uint8Array | null>((job) => {
  if (job === null) return { result: null }; // warming up
  const png = renderPng(job);
  // Small buffers share a slab with others: move only bytes that own their whole buffer.
  const own = png.byteOffset === 0 && png.byteLength === png.buffer.byteLength ? png : new Uint8Array(png);
  return { result: own, transfer: [own.buffer as ArrayBuffer] };
});
