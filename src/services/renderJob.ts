/**
 * One image to render, as plain data that can cross to a worker thread: the voxel grid (its
 * voxels in shared memory travel as a reference, not a copy), the plane, the window; or a frame
 * of an instance, which the worker reads itself. The same
 * function renders it on a worker or on the calling thread, so both give the same bytes.
 */
import { type ObliqueLayout, renderOblique } from '../core/mpr/oblique.js';
import { type Orientation, planeLayout, renderOrthogonal, type SlabSpec } from '../core/mpr/orthogonal.js';
import type { WindowSpec } from '../core/mpr/window.js';
import type { Volume, VoxelGrid } from '../core/volume/volume.js';
import type { FrameImageJob } from '../dicomweb/frameImage.js';
import { encodeScanlinesSync, scanlineBuffer } from '../encode/png.js';

/** A slice of a volume in memory. */
export type VolumeJob =
  | { kind: 'mpr'; grid: VoxelGrid; mode: Orientation; target: number; window: WindowSpec; slab?: SlabSpec }
  | { kind: 'oblique'; grid: VoxelGrid; layout: ObliqueLayout; window: WindowSpec; slab?: SlabSpec };

/** A slice of a volume, or a frame of an instance (DICOMweb rendered resources, read by the worker). */
export type RenderJob = VolumeJob | FrameImageJob;

/**
 * Renders any job: a volume's slice as renderPng does, a frame as dicomweb/frameImage.ts does
 * (loaded on the first frame job: a worker that renders volumes only does not carry the parser,
 * the codecs and the JPEG encoder).
 */
export const renderImage = (job: RenderJob): Buffer | Promise<Buffer> =>
  job.kind === 'frame' ? import('../dicomweb/frameImage.js').then((m) => m.renderFrameImage(job)) : renderPng(job);

/** The part of a volume rendering reads (not its attributes, windows per slice and so on). */
export const gridOf = (v: Volume): VoxelGrid => ({ dims: v.dims, voxelSize: v.voxelSize, pixelFormat: v.pixelFormat, data: v.data });

/** Renders a job to PNG bytes (8-bit grey, Up filter, deflated on this thread). Throws 400 for a bad target or window. */
export function renderPng(job: VolumeJob): Buffer {
  const { width, height } = job.kind === 'mpr' ? planeLayout(job.grid, job.mode) : job.layout;
  const rows = scanlineBuffer(width, height);
  const placement = { stride: width + 1, offset: 1 };
  if (job.kind === 'mpr') renderOrthogonal(job.grid, job.mode, job.target, job.window, rows, placement, job.slab);
  else renderOblique(job.grid, job.layout, job.window, rows, placement, job.slab);
  return encodeScanlinesSync(rows, width, height);
}
