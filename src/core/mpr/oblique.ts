/**
 * Oblique planes (the contract's /oblique).
 *
 * The plane is perpendicular to the reference plane `b` and contains the line through the cursor
 * `c` (voxel index coordinates) at angle `a` (radians, counterclockwise on screen, image y down)
 * from the reference plane's first image axis. Output pixels are squares of s = min(sx, sy, sz) mm.
 * Steps per output pixel, in voxel index units (eu along image columns, ev along rows):
 *   axial:    eu = ( cos a s/sx, -sin a s/sy, 0 ),  ev = ( 0, 0, s/sz )
 *   coronal:  eu = ( cos a s/sx, 0, -sin a s/sz ),  ev = ( 0, s/sy, 0 )
 *   sagittal: eu = ( s/sx, 0, 0 ),                  ev = ( 0, cos a s/sy, -sin a s/sz )
 * Along the rotated axis (eu; ev for sagittal) the image holds every sample c + k e, k integer,
 * inside [0, nx-1] x [0, ny-1] x [0, nz-1], so the cursor is exactly on a pixel centre; along the
 * other ("fixed") axis it spans the volume from index 0 in steps of s / s_k. Extents are computed
 * in closed form; sampling is trilinear, except for Binary volumes (masks), which are sampled
 * nearest-neighbour so that their images hold only 0 and 255: each sample takes the voxel whose
 * index is its coordinate rounded half up (floor(x + 0.5) on every axis, after clamping to the
 * volume), so a sample exactly halfway between two voxels takes the higher index.
 *
 * The rotated step has no component along the fixed axis k: the reslice core samples such a
 * plane separably (the bilinear part per rotated index, the linear part per fixed index).
 */
import { badParameter, tooLarge } from '../errors.js';
import { reslice, type Slab } from '../reslice/reslice.js';
import type { ReslicePlane, ResliceOptions } from '../reslice/types.js';
import { PixelFormat, type Volume, type VoxelGrid } from '../volume/volume.js';
import type { Orientation, RowPlacement, SlabSpec } from './types.js';
import { effectiveWindow, type WindowSpec } from './window.js';

export type { RowPlacement } from './types.js';

export interface ObliqueRequest {
  /** Angle in radians. */
  readonly a: number;
  readonly b: Orientation;
  /** Cursor in voxel index coordinates. */
  readonly c: readonly [number, number, number];
}

export interface ObliqueLayout {
  width: number;
  height: number;
  /** Pixel size s in mm. */
  pixelSize: number;
  /** Pixel coordinates (column, row) of the cursor in the image. */
  center: [number, number];
  /** Which image axis is the rotated one. */
  rotated: 'columns' | 'rows';
  /** Step of the rotated axis per pixel, voxel index units. */
  rotatedStep: [number, number, number];
  /** Volume axis (0 x, 1 y, 2 z) the fixed image axis runs along, and its step. */
  fixedAxis: 0 | 1 | 2;
  fixedStep: number;
  /** Position (voxel index coordinates) of rotated index 0, fixed coordinate left at 0. */
  start: [number, number, number];
  /** Number of samples along the rotated and fixed axes. */
  rotatedCount: number;
  fixedCount: number;
}

/** Tolerance, in steps, for samples that land on the volume's boundary through rounding. */
const EPS = 1e-9;

export function checkCursor(v: Pick<Volume, 'dims'>, c: readonly number[]): void {
  for (let d = 0; d < 3; d++) {
    if (!Number.isFinite(c[d]) || c[d] < 0 || c[d] > v.dims[d] - 1) {
      throw badParameter(
        `parameter 'c' must lie inside the volume (0..${v.dims[0] - 1}, 0..${v.dims[1] - 1}, 0..${v.dims[2] - 1}), got ${c.join(',')}`,
      );
    }
  }
}

export function obliqueLayout(v: Pick<Volume, 'dims' | 'voxelSize'>, req: ObliqueRequest, maxSide = 4096): ObliqueLayout {
  const { dims: n, voxelSize: sv } = v;
  const { a, b, c } = req;
  if (!Number.isFinite(a)) throw badParameter(`parameter 'a' must be a finite number, got ${a}`);
  checkCursor(v, c);
  const s = Math.min(sv[0], sv[1], sv[2]);
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  let rotatedStep: [number, number, number];
  let fixedAxis: 0 | 1 | 2;
  if (b === 'axial') {
    rotatedStep = [(cos * s) / sv[0], (-sin * s) / sv[1], 0];
    fixedAxis = 2;
  } else if (b === 'coronal') {
    rotatedStep = [(cos * s) / sv[0], 0, (-sin * s) / sv[2]];
    fixedAxis = 1;
  } else {
    rotatedStep = [0, (cos * s) / sv[1], (-sin * s) / sv[2]];
    fixedAxis = 0;
  }
  const fixedStep = s / sv[fixedAxis];

  // k range along the rotated axis: 0 <= c_d + k e_d <= n_d - 1 for each axis with e_d != 0.
  let lo = -Infinity;
  let hi = Infinity;
  for (let d = 0; d < 3; d++) {
    const e = rotatedStep[d];
    if (Math.abs(e) < 1e-12) {
      rotatedStep[d] = 0;
      continue;
    }
    const k1 = (0 - c[d]) / e;
    const k2 = (n[d] - 1 - c[d]) / e;
    lo = Math.max(lo, Math.min(k1, k2));
    hi = Math.min(hi, Math.max(k1, k2));
  }
  const kMin = Number.isFinite(lo) ? Math.ceil(lo - EPS) : 0;
  const kMax = Number.isFinite(hi) ? Math.floor(hi + EPS) : 0;
  const rotatedCount = kMax - kMin + 1;
  const fixedCount = Math.floor((n[fixedAxis] - 1) / fixedStep + EPS) + 1;

  const rotatedIsColumns = b !== 'sagittal';
  const width = rotatedIsColumns ? rotatedCount : fixedCount;
  const height = rotatedIsColumns ? fixedCount : rotatedCount;
  if (width > maxSide || height > maxSide) {
    throw tooLarge(`the oblique image would be ${width}x${height} pixels, more than maxImageSide (${maxSide}) a side`);
  }
  const start: [number, number, number] = [c[0] + kMin * rotatedStep[0], c[1] + kMin * rotatedStep[1], c[2] + kMin * rotatedStep[2]];
  start[fixedAxis] = 0;
  const cursorFixed = c[fixedAxis] / fixedStep;
  return {
    width,
    height,
    pixelSize: s,
    center: rotatedIsColumns ? [-kMin, cursorFixed] : [cursorFixed, -kMin],
    rotated: rotatedIsColumns ? 'columns' : 'rows',
    rotatedStep,
    fixedAxis,
    fixedStep,
    start,
    rotatedCount,
    fixedCount,
  };
}

/** The plane of a layout as the reslice core takes it (rows and columns as the image has them). */
export function obliquePlane(layout: ObliqueLayout): ReslicePlane {
  const fixed: [number, number, number] = [0, 0, 0];
  fixed[layout.fixedAxis] = layout.fixedStep;
  const columns = layout.rotated === 'columns';
  return {
    origin: layout.start,
    col: columns ? layout.rotatedStep : fixed,
    row: columns ? fixed : layout.rotatedStep,
    width: layout.width,
    height: layout.height,
  };
}

/** Trilinear interpolation, nearest voxel for Binary volumes (masks), edge voxels extended. */
const samplingOf = (v: VoxelGrid): ResliceOptions => ({
  interpolation: v.pixelFormat === PixelFormat.Binary ? 'nearest' : 'trilinear',
  edges: 'clamp',
});

/**
 * Samples the plane into `out` (Float32Array of width * height, row-major) by trilinear
 * interpolation of the volume's values (nearest voxel, rounding half up, for Binary volumes).
 */
export function sampleOblique(v: VoxelGrid, layout: ObliqueLayout, out: Float32Array): void {
  reslice({ grid: v }, obliquePlane(layout), samplingOf(v), { kind: 'values', out });
}

/**
 * Samples and windows the plane into 8-bit `out`, rows placed as `rows` says (for PNG
 * scanlines, stride width + 1 and offset 1). A Binary volume is sampled nearest-neighbour and
 * shown through its effective window whatever `w` says, so its image holds only 0 and 255.
 * Throws a 400 CircusError for an invalid window.
 */
export function renderOblique(
  v: VoxelGrid,
  layout: ObliqueLayout,
  w: WindowSpec,
  out: Uint8Array,
  rows: RowPlacement = { stride: layout.width, offset: 0 },
  slab?: SlabSpec,
): void {
  const window = effectiveWindow(v.pixelFormat, w);
  reslice(
    { grid: v },
    obliquePlane(layout),
    samplingOf(v),
    { kind: 'window', out, window, stride: rows.stride, offset: rows.offset },
    slab && obliqueSlab(v, layout, slab),
  );
}

/**
 * The samples of an oblique slab: along the plane's normal, one pixel size s apart, from -r to r
 * with r = floor(thickness / 2 / s + 1e-9) (the samples within thickness / 2 of the plane, ends
 * included), each interpolated as the plane's pixels are (edge voxels extended beyond the volume).
 */
export function obliqueSlab(v: Pick<Volume, 'voxelSize'>, layout: ObliqueLayout, slab: SlabSpec): Slab {
  const sv = v.voxelSize;
  const s = layout.pixelSize;
  // The plane's two steps in mm, and their cross product: the normal.
  const rotated = [0, 1, 2].map((d) => layout.rotatedStep[d] * sv[d]);
  const fixed = [0, 0, 0];
  fixed[layout.fixedAxis] = layout.fixedStep * sv[layout.fixedAxis];
  const normal = [
    rotated[1] * fixed[2] - rotated[2] * fixed[1],
    rotated[2] * fixed[0] - rotated[0] * fixed[2],
    rotated[0] * fixed[1] - rotated[1] * fixed[0],
  ];
  const length = Math.hypot(normal[0], normal[1], normal[2]);
  const step: [number, number, number] = [0, 1, 2].map((d) => ((normal[d] / length) * s) / sv[d]) as [number, number, number];
  const r = Math.floor(slab.thickness / 2 / s + 1e-9);
  return { step, from: -r, to: r, projection: slab.projection };
}
