/**
 * A rendered frame (PS3.18 rendered and thumbnail resources) as one task for a rendering worker:
 * the instance is read and parsed there, its frame taken as stored or decoded, shown through the
 * VOI (rendered.ts), fitted to the viewport and encoded, so the event loop only routes the
 * request. The same function runs on the calling thread when no pool is given.
 */
import { CircusError } from '../core/errors.js';
import { type WorkerInput, workerInputBytes } from '../dicom/instance.js';
import { parseDicom } from '../dicom/parser.js';
import { readSliceHeader } from '../dicom/sliceHeader.js';
import { encodeJpeg } from '../encode/jpeg.js';
import { encodePngSync, encodeRgbPngSync } from '../encode/png.js';
import { uncompressedFrame } from './frames.js';
import { applyViewport, MAX_RENDERED_SIDE, renderFrame, type RenderWindow, type Viewport } from './rendered.js';

export type RenderedType = 'image/png' | 'image/jpeg';

export interface FrameImageJob {
  kind: 'frame';
  input: WorkerInput;
  /** 0-based. */
  frame: number;
  maxInflatedBytes: number;
  /** The window given; the instance's own (or its value range) when absent. */
  window?: RenderWindow;
  viewport?: Viewport;
  type: RenderedType;
  /** 1..100, for JPEG. */
  quality: number;
}

/** The encoded image. Throws CircusError (400 for an image over MAX_RENDERED_SIDE, 422 for an instance that cannot be read or decoded). */
export async function renderFrameImage(job: FrameImageJob): Promise<Buffer> {
  const bytes = await workerInputBytes(job.input);
  let header: ReturnType<typeof readSliceHeader>;
  let parsed: ReturnType<typeof parseDicom>;
  try {
    parsed = parseDicom(bytes, { maxInflatedBytes: job.maxInflatedBytes });
    header = readSliceHeader(parsed);
  } catch (err) {
    throw new CircusError('UNPROCESSABLE_SERIES', `the instance cannot be read: ${(err as Error).message}`);
  }
  const { bytes: frame, layout } = await uncompressedFrame(parsed, header, job.frame);
  let img = renderFrame(frame, layout, job.window);
  if (job.viewport) img = applyViewport(img, job.viewport);
  if (img.width > MAX_RENDERED_SIDE || img.height > MAX_RENDERED_SIDE) {
    throw new CircusError('BAD_PARAMETER', `the image would be larger than ${MAX_RENDERED_SIDE} pixels a side`);
  }
  if (job.type === 'image/jpeg') return encodeJpeg(img.pixels, img.width, img.height, img.channels, job.quality);
  return img.channels === 3 ? encodeRgbPngSync(img.pixels, img.width, img.height) : encodePngSync(img.pixels, img.width, img.height);
}
