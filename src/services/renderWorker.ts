/**
 * A rendering worker: samples, windows, filters and deflates one image per task, reading the
 * volume in place from shared memory, and moves the PNG bytes back (no copy).
 */
import { CircusError } from '../core/errors.js';
import { type RenderJob, renderImage } from './renderJob.js';
import { movedBytes, serveTasks } from '../workers/workerPool.js';

/** What the worker threw, with its error code when it is a CircusError (the pool's caller rethrows it so). */
class CodedError extends Error {
  constructor(
    message: string,
    readonly detail: { code: string },
  ) {
    super(message);
  }
}

serveTasks<RenderJob | null, Uint8Array | null>(async (job) => {
  if (job === null) return { result: null }; // warming up
  let png: Buffer;
  try {
    png = await renderImage(job);
  } catch (err) {
    if (err instanceof CircusError) throw new CodedError(err.message, { code: err.code });
    throw err;
  }
  return movedBytes(png);
});
