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
 * The rotated step has no component along the fixed axis k, so a sample's coordinate on k
 * depends only on the fixed index and its other two coordinates only on the rotated index: the
 * bilinear part is precomputed per rotated index and the linear part per fixed index.
 */
import { badParameter, tooLarge } from '../errors.js';
import { PixelFormat, type Volume, type VoxelGrid } from '../volume/volume.js';
import type { Orientation } from './orthogonal.js';
import { effectiveWindow, windowValue, type WindowSpec } from './window.js';

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

const clamp = (x: number, max: number): number => (x < 0 ? 0 : x > max ? max : x);

/** Where rows of an 8-bit image go: pixel (col, row) at `offset + row * stride + col`. */
export interface RowPlacement {
  stride: number;
  offset: number;
}

/**
 * Samples the plane into `out` (Float32Array of width * height, row-major) by trilinear
 * interpolation of the volume's values (nearest voxel, rounding half up, for Binary volumes).
 */
export function sampleOblique(v: VoxelGrid, layout: ObliqueLayout, out: Float32Array): void {
  obliqueInto(v, layout, out, null, null, { stride: layout.width, offset: 0 });
}

/**
 * Samples and windows the plane straight into 8-bit `out` (no intermediate values), rows placed
 * as `rows` says (for PNG scanlines, stride width + 1 and offset 1). A Binary volume is sampled
 * nearest-neighbour and shown through its effective window whatever `w` says, so its image
 * holds only 0 and 255. Throws a 400 CircusError for an invalid window.
 */
export function renderOblique(
  v: VoxelGrid,
  layout: ObliqueLayout,
  w: WindowSpec,
  out: Uint8Array,
  rows: RowPlacement = { stride: layout.width, offset: 0 },
): void {
  obliqueInto(v, layout, null, out, effectiveWindow(v.pixelFormat, w), rows);
}

function obliqueInto(
  v: VoxelGrid,
  layout: ObliqueLayout,
  f32: Float32Array | null,
  u8: Uint8Array | null,
  w: WindowSpec | null,
  rows: RowPlacement,
): void {
  if (v.pixelFormat === PixelFormat.Binary) nearestInto(v, layout, f32, u8, w, rows);
  else trilinearInto(v, layout, f32, u8, w, rows);
}

/**
 * The volume's sizes and memory strides by axis (x, y, z), the axis the fixed step moves along
 * (k), and the two the rotated step moves along (p, q).
 */
function axesOf(v: VoxelGrid, layout: ObliqueLayout): { n: number[]; stride: number[]; k: number; p: number; q: number } {
  const [nx, ny, nz] = v.dims;
  const k = layout.fixedAxis;
  return { n: [nx, ny, nz], stride: [1, nx, nx * ny], k, p: k === 0 ? 1 : 0, q: k === 2 ? 1 : 2 };
}

/** Index of the voxel nearest to coordinate `x` on an axis of `n` voxels: clamped, rounded half up. */
const nearestIndex = (x: number, n: number): number => Math.floor(clamp(x, n - 1) + 0.5);

/**
 * Nearest-neighbour sampling (Binary volumes). Samples are stored as they are into `f32`, or
 * into `u8` as the window shows 0 (a zero voxel) and 1 (any other).
 */
function nearestInto(
  v: VoxelGrid,
  layout: ObliqueLayout,
  f32: Float32Array | null,
  u8: Uint8Array | null,
  w: WindowSpec | null,
  rows: RowPlacement,
): void {
  const { n, stride, k, p, q } = axesOf(v, layout);
  const d = v.data;
  const rc = layout.rotatedCount;
  // Offset of the nearest voxel on axes p, q per rotated index.
  const base = new Int32Array(rc);
  for (let i = 0; i < rc; i++) {
    const ip = nearestIndex(layout.start[p] + i * layout.rotatedStep[p], n[p]);
    const iq = nearestIndex(layout.start[q] + i * layout.rotatedStep[q], n[q]);
    base[i] = ip * stride[p] + iq * stride[q];
  }
  const off = w ? windowValue(0, w) : 0;
  const on = w ? windowValue(1, w) : 0;
  const columns = layout.rotated === 'columns';
  const rowStride = u8 ? rows.stride : layout.width;
  const offset = u8 ? rows.offset : 0;
  const step = columns ? 1 : rowStride;
  for (let j = 0; j < layout.fixedCount; j++) {
    const kOff = nearestIndex(j * layout.fixedStep, n[k]) * stride[k];
    const rowStart = offset + (columns ? j * rowStride : j);
    for (let i = 0, o = rowStart; i < rc; i++, o += step) {
      const value = d[base[i] + kOff];
      if (u8) u8[o] = value ? on : off;
      else f32![o] = value;
    }
  }
}

/** Trilinear sampling (every format but Binary), windowed as windowValue computes it when `u8` is given. */
function trilinearInto(
  v: VoxelGrid,
  layout: ObliqueLayout,
  f32: Float32Array | null,
  u8: Uint8Array | null,
  w: WindowSpec | null,
  rows: RowPlacement,
): void {
  const { n, stride, k, p, q } = axesOf(v, layout);
  const d = v.data;

  // Per rotated index: offset of the lower corner on axes p, q, the steps to the upper corner
  // (0 on the last index), and the fractions.
  const rc = layout.rotatedCount;
  const base = new Int32Array(rc);
  const dp = new Int32Array(rc);
  const dq = new Int32Array(rc);
  const fp = new Float64Array(rc);
  const fq = new Float64Array(rc);
  for (let i = 0; i < rc; i++) {
    const xp = clamp(layout.start[p] + i * layout.rotatedStep[p], n[p] - 1);
    const xq = clamp(layout.start[q] + i * layout.rotatedStep[q], n[q] - 1);
    const ip = Math.min(Math.floor(xp), n[p] - 1);
    const iq = Math.min(Math.floor(xq), n[q] - 1);
    base[i] = ip * stride[p] + iq * stride[q];
    dp[i] = ip < n[p] - 1 ? stride[p] : 0;
    dq[i] = iq < n[q] - 1 ? stride[q] : 0;
    fp[i] = xp - ip;
    fq[i] = xq - iq;
  }

  // Windowing, as windowValue computes it.
  const toBytes = u8 !== null;
  const level = w ? w.level : 0;
  const half = w ? w.width / 2 : 0;
  const width = w ? w.width : 1;
  const invert = w ? w.invert : false;

  const fc = layout.fixedCount;
  const columns = layout.rotated === 'columns';
  // Output index of (rotated i, fixed j) = rowStart(j) + i * step.
  const rowStride = toBytes ? rows.stride : layout.width;
  const offset = toBytes ? rows.offset : 0;
  const step = columns ? 1 : rowStride;
  // Per fixed index: offset of the lower corner on axis k, the step to the upper one, the fraction.
  const kOff = new Int32Array(fc);
  const dk = new Int32Array(fc);
  const fk = new Float64Array(fc);
  for (let j = 0; j < fc; j++) {
    const xk = clamp(j * layout.fixedStep, n[k] - 1);
    const ik = Math.min(Math.floor(xk), n[k] - 1);
    kOff[j] = ik * stride[k];
    dk[j] = ik < n[k] - 1 ? stride[k] : 0;
    fk[j] = xk - ik;
  }
  // Samples far apart in memory cost a cache miss each: BLOCK lines of the fixed axis are
  // sampled in one pass over the rotated index, so that their independent loads overlap.
  const BLOCK = 16;
  for (let j0 = 0; j0 < fc; j0 += BLOCK) {
    const j1 = Math.min(fc, j0 + BLOCK);
    for (let i = 0; i < rc; i++) {
      const b0 = base[i];
      const a = fp[i];
      const bq = fq[i];
      const sp = dp[i];
      const sq = dq[i];
      for (let j = j0; j < j1; j++) {
        const o0 = b0 + kOff[j];
        const v00 = d[o0] + a * (d[o0 + sp] - d[o0]);
        const v01 = d[o0 + sq] + a * (d[o0 + sq + sp] - d[o0 + sq]);
        let value = v00 + bq * (v01 - v00);
        const f = fk[j];
        if (f !== 0) {
          const o1 = o0 + dk[j];
          const v10 = d[o1] + a * (d[o1 + sp] - d[o1]);
          const v11 = d[o1 + sq] + a * (d[o1 + sq + sp] - d[o1 + sq]);
          const upper = v10 + bq * (v11 - v10);
          value += f * (upper - value);
        }
        const o = offset + (columns ? j * rowStride : j) + i * step;
        if (toBytes) {
          // As windowValue computes it.
          let x = ((value - level + half) * 255) / width;
          x = x > 0 ? (x < 255 ? x : 255) : 0;
          const byte = (x + 0.5) | 0;
          u8![o] = invert ? 255 - byte : byte;
        } else {
          f32![o] = value;
        }
      }
    }
  }
}
