/**
 * Orthogonal planes (the contract's /mpr), one pixel per voxel:
 * - axial:    width nx, height ny; pixel (i, j) = voxel (i, j, target)
 * - coronal:  width nx, height nz; pixel (i, j) = voxel (i, target, j)
 * - sagittal: width ny, height nz; pixel (i, j) = voxel (target, i, j)
 * Sampled by the reslice core: axial and coronal rows are contiguous runs of the volume and are
 * windowed straight from it; sagittal rows are strided and are gathered first.
 */
import { badParameter } from '../errors.js';
import { reslice, type Slab } from '../reslice/reslice.js';
import type { ReslicePlane } from '../reslice/types.js';
import type { Volume, VoxelArray, VoxelGrid } from '../volume/volume.js';
import type { Orientation, RowPlacement, SlabSpec } from './types.js';
import { effectiveWindow, type WindowSpec } from './window.js';

export { ORIENTATIONS, type Orientation, type SlabSpec } from './types.js';

export interface PlaneLayout {
  width: number;
  height: number;
  /** How many planes of this orientation the volume has (target is 0 .. count - 1). */
  count: number;
  /** [horizontal, vertical] pixel size in mm. */
  pixelSize: [number, number];
}

export function planeLayout(v: Pick<Volume, 'dims' | 'voxelSize'>, mode: Orientation): PlaneLayout {
  const [nx, ny, nz] = v.dims;
  const [sx, sy, sz] = v.voxelSize;
  switch (mode) {
    case 'axial':
      return { width: nx, height: ny, count: nz, pixelSize: [sx, sy] };
    case 'coronal':
      return { width: nx, height: nz, count: ny, pixelSize: [sx, sz] };
    case 'sagittal':
      return { width: ny, height: nz, count: nx, pixelSize: [sy, sz] };
  }
}

function checkTarget(layout: PlaneLayout, target: number): void {
  if (!Number.isInteger(target) || target < 0 || target >= layout.count) {
    throw badParameter(`parameter 'target' must be an integer from 0 to ${layout.count - 1}, got ${target}`);
  }
}

/** The plane of `target` as the reslice core takes it: one voxel a pixel, from voxel (0, 0) of the slice. */
export function orthogonalPlane(v: Pick<Volume, 'dims' | 'voxelSize'>, mode: Orientation, target: number): ReslicePlane {
  const layout = planeLayout(v, mode);
  checkTarget(layout, target);
  const { width, height } = layout;
  switch (mode) {
    case 'axial':
      return { origin: [0, 0, target], col: [1, 0, 0], row: [0, 1, 0], width, height };
    case 'coronal':
      return { origin: [0, target, 0], col: [1, 0, 0], row: [0, 0, 1], width, height };
    case 'sagittal':
      return { origin: [target, 0, 0], col: [0, 1, 0], row: [0, 0, 1], width, height };
  }
}

const VOXELS = { interpolation: 'nearest', edges: 'clamp' } as const;

/** Copies the plane's voxels (the volume's own type) into `out` (length width * height). */
export function sampleOrthogonal(v: VoxelGrid, mode: Orientation, target: number, out: VoxelArray): void {
  reslice({ grid: v }, orthogonalPlane(v, mode, target), VOXELS, { kind: 'values', out });
}

/**
 * Windows the plane into 8-bit `out`, pixel (i, j) at `rows.offset + j * rows.stride + i`
 * (contiguous rows by default; PNG scanlines use stride width + 1, offset 1). A Binary volume
 * is shown through its effective window whatever `w` says (0 -> 0, 1 -> 255).
 * Throws a 400 CircusError for a target out of range or an invalid window.
 */
export function renderOrthogonal(
  v: VoxelGrid,
  mode: Orientation,
  target: number,
  window: WindowSpec,
  out: Uint8Array,
  rows?: RowPlacement,
  slab?: SlabSpec,
): void {
  const plane = orthogonalPlane(v, mode, target);
  const w = effectiveWindow(v.pixelFormat, window);
  reslice(
    { grid: v },
    plane,
    VOXELS,
    { kind: 'window', out, window: w, stride: rows?.stride, offset: rows?.offset },
    slab && orthogonalSlab(v, mode, target, slab),
  );
}

/** The volume axis along the normal of each orientation's planes. */
const NORMAL_AXIS: Record<Orientation, 0 | 1 | 2> = { axial: 2, coronal: 1, sagittal: 0 };

/**
 * The slices of an orthogonal slab: those whose centres lie within thickness / 2 of the target
 * slice's centre (ends included, to 1e-9 of a slice), inside the volume.
 */
export function orthogonalSlab(v: Pick<Volume, 'dims' | 'voxelSize'>, mode: Orientation, target: number, slab: SlabSpec): Slab {
  const axis = NORMAL_AXIS[mode];
  const reach = Math.floor(slab.thickness / 2 / v.voxelSize[axis] + 1e-9);
  const step: [number, number, number] = [0, 0, 0];
  step[axis] = 1;
  return { step, from: Math.max(-reach, -target), to: Math.min(reach, v.dims[axis] - 1 - target), projection: slab.projection };
}
