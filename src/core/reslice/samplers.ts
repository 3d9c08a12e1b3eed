/**
 * The reslice core's samplers, one per shape of plane (see reslice.ts for the policy). Each
 * fills a block of rows; none allocates per pixel.
 *
 * - aligned: steps +1 along two volume axes from an integer origin, the plane inside the
 *   volume. A sample is a voxel as it is (nearest and trilinear agree there). Rows along x are
 *   runs of the volume, handed on in place; other rows are gathered, eight a pass, because each
 *   of their voxels sits in its own cache line and independent loads overlap.
 * - separable: one step along a single axis k, the other with no component on k. A sample's
 *   coordinate on k then depends on one image index and its other two on the other index, so
 *   the bilinear part is computed once per index of the second and the linear part once per
 *   index of the first. Eight lines of the k index are sampled a pass, so that loads of slices
 *   far apart in memory overlap (eight, not more: the block of samples, eight lines of doubles,
 *   then stays in the first-level cache for the output stage). Trilinear interpolates along p,
 *   then q, then k, and skips k where its fraction is 0; nearest takes floor(clamped + 0.5) on
 *   every axis (a sample halfway between two voxels takes the higher index). Trilinear into a
 *   windowed output windows each sample as it is computed (windowByte) and writes the output
 *   itself, handing on no block: the samples never go through memory.
 * - general: every pixel interpolated on its own, x then y then z, with the slices of a
 *   partial volume as z.
 */
import { windowByte } from '../mpr/window.js';
import type { VoxelArray, VoxelGrid } from '../volume/volume.js';
import type { ReslicePlane, ResliceOptions, ResliceOutput, ResliceSource, SampledRows, Sampler } from './types.js';

/** Lines of the fixed index sampled in one pass by separable samplers, and rows a pass of general ones. */
const BLOCK = 8;

const clamp = (x: number, max: number): number => (x < 0 ? 0 : x > max ? max : x);

/** Index of the voxel nearest to coordinate `x` on an axis of `n` voxels: clamped, rounded half up. */
const nearestIndex = (x: number, n: number): number => Math.floor(clamp(x, n - 1) + 0.5);

type VoxelArrayConstructor = new (length: number) => VoxelArray;
const voxelArrayOf = (grid: VoxelGrid, length: number): VoxelArray => new (grid.data.constructor as VoxelArrayConstructor)(length);

/**
 * The buffer gathered planes go to, one per voxel type, reused from image to image (and by the
 * planes of a slab, each of which is combined before the next is gathered): a plane's values are
 * read by the output stage of the same reslice call and never kept.
 */
const gathered = new Map<VoxelArrayConstructor, VoxelArray>();
function gatherBuffer(grid: VoxelGrid, length: number): VoxelArray {
  const ctor = grid.data.constructor as VoxelArrayConstructor;
  let buffer = gathered.get(ctor);
  if (!buffer || buffer.length < length) {
    buffer = new ctor(length);
    gathered.set(ctor, buffer);
  }
  return buffer.length === length ? buffer : (buffer.subarray(0, length) as VoxelArray);
}

/** The axis a step moves along when it moves along exactly one by +1, else -1. */
function unitAxis(step: readonly number[]): number {
  let axis = -1;
  for (let d = 0; d < 3; d++) {
    if (step[d] === 0) continue;
    if (step[d] !== 1 || axis >= 0) return -1;
    axis = d;
  }
  return axis;
}

/** The axis a step moves along when it moves along exactly one, else -1. */
function singleAxis(step: readonly number[]): number {
  let axis = -1;
  for (let d = 0; d < 3; d++) {
    if (step[d] === 0) continue;
    if (axis >= 0) return -1;
    axis = d;
  }
  return axis;
}

export function samplerFor(source: ResliceSource, plane: ReslicePlane, options: ResliceOptions, output: ResliceOutput): Sampler {
  const { grid, slices } = source;
  if (options.edges === 'clamp' && slices === undefined) {
    const aligned = alignedSampler(grid, plane, output);
    if (aligned) return aligned;
    const separable = separableSampler(grid, plane, options, output);
    if (separable) return separable;
  }
  return generalSampler(source, plane, options);
}

/** Volume sizes and memory strides by axis. */
const axesOf = (grid: VoxelGrid): { n: number[]; stride: number[] } => {
  const [nx, ny, nz] = grid.dims;
  return { n: [nx, ny, nz], stride: [1, nx, nx * ny] };
};

function alignedSampler(grid: VoxelGrid, plane: ReslicePlane, output: ResliceOutput): Sampler | null {
  const a = unitAxis(plane.col);
  const b = unitAxis(plane.row);
  if (a < 0 || b < 0 || a === b) return null;
  const { n, stride } = axesOf(grid);
  const { origin, width, height } = plane;
  for (let d = 0; d < 3; d++) if (!Number.isInteger(origin[d]) || origin[d] < 0 || origin[d] > n[d] - 1) return null;
  if (origin[a] + width > n[a] || origin[b] + height > n[b]) return null;
  const base = origin[0] * stride[0] + origin[1] * stride[1] + origin[2] * stride[2];
  const d = grid.data;
  if (a === 0) {
    // Rows are runs of the volume: handed on in place.
    const rows: SampledRows = { values: d, raw: true, start: base, stride: stride[b], spans: null };
    return { kind: 'aligned', block: height, sample: (j0) => ({ ...rows, start: base + j0 * stride[b] }) };
  }
  // Gathered, the whole plane at once, straight into a values output of the volume's type when there is one.
  const inPlace = output.kind === 'values' && output.out.constructor === d.constructor && output.out.length >= width * height;
  const values = inPlace ? (output.out as VoxelArray) : gatherBuffer(grid, width * height);
  const step = stride[a];
  const rowStep = stride[b];
  return {
    kind: 'aligned',
    block: height,
    // Rows j0 .. j0 + count - 1 gathered to their place in `values` (the whole plane in one call
    // when sampled alone; a slab asks for fewer rows at a time).
    sample: (j0, count) => {
      gather(d, values.subarray(j0 * width, (j0 + count) * width) as VoxelArray, base + j0 * rowStep, width, count, step, rowStep);
      return { values, raw: true, start: j0 * width, stride: width, spans: null };
    },
  };
}

/**
 * values[j * width + i] = d[base + j * rowStep + i * step]. Each voxel sits in its own cache
 * line when `step` is not 1, so the gather is bound by memory latency: eight rows are gathered
 * in one pass, eight independent loads per step keeping more misses in flight.
 */
function gather(d: VoxelArray, values: VoxelArray, base: number, width: number, height: number, step: number, rowStep: number): void {
  let j = 0;
  for (; j + 8 <= height; j += 8) {
    let src = base + rowStep * j;
    const o = width * j;
    for (let i = 0; i < width; i++, src += step) {
      values[o + i] = d[src];
      values[o + width + i] = d[src + rowStep];
      values[o + 2 * width + i] = d[src + 2 * rowStep];
      values[o + 3 * width + i] = d[src + 3 * rowStep];
      values[o + 4 * width + i] = d[src + 4 * rowStep];
      values[o + 5 * width + i] = d[src + 5 * rowStep];
      values[o + 6 * width + i] = d[src + 6 * rowStep];
      values[o + 7 * width + i] = d[src + 7 * rowStep];
    }
  }
  for (; j < height; j++) {
    let src = base + rowStep * j;
    const o = width * j;
    for (let i = 0; i < width; i++, src += step) values[o + i] = d[src];
  }
}

/**
 * Separable planes: `fixed` is the step along the single axis k, `moving` the step with no
 * component on k. Index i counts moving steps, j fixed ones.
 */
function separableSampler(grid: VoxelGrid, plane: ReslicePlane, options: ResliceOptions, output: ResliceOutput): Sampler | null {
  let fixedIsRow: boolean;
  let k = singleAxis(plane.row);
  if (k >= 0 && plane.col[k] === 0) fixedIsRow = true;
  else {
    k = singleAxis(plane.col);
    if (k < 0 || plane.row[k] !== 0) return null;
    fixedIsRow = false;
  }
  const { n, stride } = axesOf(grid);
  const p = k === 0 ? 1 : 0;
  const q = k === 2 ? 1 : 2;
  const { origin, width, height } = plane;
  const moving = fixedIsRow ? plane.col : plane.row;
  const fixedStep = fixedIsRow ? plane.row[k] : plane.col[k];
  const movingCount = fixedIsRow ? width : height;
  const fixedCount = fixedIsRow ? height : width;
  const d = grid.data;
  const nearest = options.interpolation === 'nearest';

  // Per moving index: offset of the lower corner on axes p, q (the nearest voxel's, for
  // nearest), the steps to the upper corner (0 on the last index), and the fractions.
  const base = new Int32Array(movingCount);
  const dp = new Int32Array(movingCount);
  const dq = new Int32Array(movingCount);
  const fp = new Float64Array(movingCount);
  const fq = new Float64Array(movingCount);
  for (let i = 0; i < movingCount; i++) {
    const xp = origin[p] + i * moving[p];
    const xq = origin[q] + i * moving[q];
    if (nearest) {
      base[i] = nearestIndex(xp, n[p]) * stride[p] + nearestIndex(xq, n[q]) * stride[q];
      continue;
    }
    const cp = clamp(xp, n[p] - 1);
    const cq = clamp(xq, n[q] - 1);
    const ip = Math.min(Math.floor(cp), n[p] - 1);
    const iq = Math.min(Math.floor(cq), n[q] - 1);
    base[i] = ip * stride[p] + iq * stride[q];
    dp[i] = ip < n[p] - 1 ? stride[p] : 0;
    dq[i] = iq < n[q] - 1 ? stride[q] : 0;
    fp[i] = cp - ip;
    fq[i] = cq - iq;
  }
  // Per fixed index: offset of the lower corner on axis k, the step to the upper one, the fraction.
  const kOff = new Int32Array(fixedCount);
  const dk = new Int32Array(fixedCount);
  const fk = new Float64Array(fixedCount);
  for (let j = 0; j < fixedCount; j++) {
    const xk = origin[k] + j * fixedStep;
    if (nearest) {
      kOff[j] = nearestIndex(xk, n[k]) * stride[k];
      continue;
    }
    const ck = clamp(xk, n[k] - 1);
    const ik = Math.min(Math.floor(ck), n[k] - 1);
    kOff[j] = ik * stride[k];
    dk[j] = ik < n[k] - 1 ? stride[k] : 0;
    fk[j] = ck - ik;
  }

  if (!nearest && output.kind === 'window') {
    const fused = fusedSeparable(d, output, width, fixedIsRow, movingCount, fixedCount, base, dp, dq, fp, fq, kOff, dk, fk);
    if (fused) return fused;
  }
  const values = nearest ? voxelArrayOf(grid, BLOCK * width) : new Float64Array(BLOCK * width);
  const rows: SampledRows = { values, raw: nearest, start: 0, stride: width, spans: null };
  // Sample (i, j) of a block goes to values[(i - i0) * iMul + (j - jBase) * jMul].
  const sampleBlock = (i0: number, i1: number, j0: number, j1: number, iMul: number, jMul: number, jBase: number): void => {
    if (nearest) {
      for (let i = i0; i < i1; i++) {
        const b0 = base[i];
        let o = (i - i0) * iMul + (j0 - jBase) * jMul;
        for (let j = j0; j < j1; j++, o += jMul) values[o] = d[b0 + kOff[j]];
      }
      return;
    }
    for (let i = i0; i < i1; i++) {
      const b0 = base[i];
      const a = fp[i];
      const bq = fq[i];
      const sp = dp[i];
      const sq = dq[i];
      let o = (i - i0) * iMul + (j0 - jBase) * jMul;
      for (let j = j0; j < j1; j++, o += jMul) {
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
        values[o] = value;
      }
    }
  };
  return {
    kind: 'separable',
    block: BLOCK,
    sample: fixedIsRow
      ? (j0, count) => {
          // Rows are fixed indices: every moving index (column) of BLOCK rows in one pass.
          sampleBlock(0, movingCount, j0, j0 + count, 1, width, j0);
          return rows;
        }
      : (i0, count) => {
          // Rows are moving indices, columns fixed ones (runs along k): BLOCK columns at a time,
          // so that the lines of k a pass reads stay in the first-level cache from row to row.
          for (let j0 = 0; j0 < fixedCount; j0 += BLOCK) sampleBlock(i0, i0 + count, j0, Math.min(fixedCount, j0 + BLOCK), width, 1, 0);
          return rows;
        },
  };
}

interface FusedTables {
  d: VoxelArray;
  out: Uint8Array;
  base: Int32Array;
  dp: Int32Array;
  dq: Int32Array;
  fp: Float64Array;
  fq: Float64Array;
  kOff: Int32Array;
  dk: Int32Array;
  fk: Float64Array;
}

/** Samples (i, j) for i in [i0, i1), j in [j0, j1), windowed into out (a function of its own: every input a local in the loop). */
function windowedBlock(
  d: VoxelArray,
  out: Uint8Array,
  base: Int32Array,
  dp: Int32Array,
  dq: Int32Array,
  fp: Float64Array,
  fq: Float64Array,
  kOff: Int32Array,
  dk: Int32Array,
  fk: Float64Array,
  i0: number,
  i1: number,
  j0: number,
  j1: number,
  offset: number,
  iMul: number,
  jMul: number,
  level: number,
  half: number,
  ww: number,
  invert: boolean,
): void {
  for (let i = i0; i < i1; i++) {
    const b0 = base[i];
    const a = fp[i];
    const bq = fq[i];
    const sp = dp[i];
    const sq = dq[i];
    let o = offset + i * iMul + j0 * jMul;
    for (let j = j0; j < j1; j++, o += jMul) {
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
      out[o] = windowByte(value, level, half, ww, invert);
    }
  }
}

/**
 * The separable trilinear sampler windowing each sample straight into the 8-bit output (through
 * windowByte, the window's one expression), for a windowed output with nothing between sampler
 * and output: no block of samples is written and read back. Rows of fixed indices are sampled
 * BLOCK at a time over every column; rows of moving indices BLOCK columns at a time, as the
 * unfused sampler does. The interpolation is the unfused sampler's, operation for operation.
 */
function fusedSeparable(
  d: VoxelArray,
  output: Extract<ResliceOutput, { kind: 'window' }>,
  width: number,
  fixedIsRow: boolean,
  movingCount: number,
  fixedCount: number,
  base: Int32Array,
  dp: Int32Array,
  dq: Int32Array,
  fp: Float64Array,
  fq: Float64Array,
  kOff: Int32Array,
  dk: Int32Array,
  fk: Float64Array,
): Sampler | null {
  const { out, window } = output;
  if (!(window.width > 0) || !Number.isFinite(window.level)) return null; // the output stage refuses it
  const stride = output.stride ?? width;
  const offset = output.offset ?? 0;
  const level = window.level;
  const ww = window.width;
  const half = ww / 2;
  const invert = window.invert === true;
  // Pixel (i moving, j fixed) goes to out[offset + i * iMul + j * jMul].
  const iMul = fixedIsRow ? 1 : stride;
  const jMul = fixedIsRow ? stride : 1;
  const t: FusedTables = { d, out, base, dp, dq, fp, fq, kOff, dk, fk };
  const block = (i0: number, i1: number, j0: number, j1: number): void =>
    windowedBlock(t.d, t.out, t.base, t.dp, t.dq, t.fp, t.fq, t.kOff, t.dk, t.fk, i0, i1, j0, j1, offset, iMul, jMul, level, half, ww, invert);
  const done: SampledRows = { values: out, raw: false, start: 0, stride, spans: null, written: true };
  return {
    kind: 'separable',
    block: BLOCK,
    sample: fixedIsRow
      ? (j0, count) => {
          block(0, movingCount, j0, j0 + count);
          return done;
        }
      : (i0, count) => {
          for (let j0 = 0; j0 < fixedCount; j0 += BLOCK) block(i0, i0 + count, j0, Math.min(fixedCount, j0 + BLOCK));
          return done;
        },
  };
}

/**
 * Any plane: each pixel on its own. Edges 'zero' (scan): coordinates in the corner convention,
 * nearest = the voxel floor(p), trilinear at p - 0.5 with edge voxels repeated, and a sample
 * outside (nearest: floor(p) outside the volume on an axis; trilinear: p < 0 or p > n) left out
 * of its row's span. Edges 'clamp': voxel centres at integer coordinates, nearest as
 * nearestIndex, trilinear with edge voxels repeated; every sample inside.
 */
function generalSampler(source: ResliceSource, plane: ReslicePlane, options: ResliceOptions): Sampler {
  const { grid } = source;
  const d = grid.data;
  const [nx, ny] = grid.dims;
  const slices = source.slices;
  const nz = slices ? slices.length : grid.dims[2];
  const zOffsets = new Float64Array(nz);
  for (let z = 0; z < nz; z++) zOffsets[z] = (slices ? slices[z] : z) * nx * ny;
  const { origin, col, row, width } = plane;
  const [cx, cy, cz] = col;
  const [rx, ry, rz] = row;
  const zero = options.edges === 'zero';
  const nearest = options.interpolation === 'nearest';
  const values = nearest ? voxelArrayOf(grid, BLOCK * width) : new Float64Array(BLOCK * width);
  const lo = new Int32Array(BLOCK);
  const hi = new Int32Array(BLOCK);
  const rows: SampledRows = { values, raw: nearest, start: 0, stride: width, spans: zero ? { lo, hi } : null };
  const mx = nx - 1;
  const my = ny - 1;
  const mz = nz - 1;
  const shift = zero ? 0.5 : 0;

  const sampleRow = (j: number, r: number): void => {
    const o = r * width;
    const x0 = origin[0] + j * rx;
    const y0 = origin[1] + j * ry;
    const z0 = origin[2] + j * rz;
    let first = width;
    let last = -1;
    for (let i = 0; i < width; i++) {
      const px = x0 + i * cx;
      const py = y0 + i * cy;
      const pz = z0 + i * cz;
      if (nearest) {
        let fx: number;
        let fy: number;
        let fz: number;
        if (zero) {
          fx = Math.floor(px);
          fy = Math.floor(py);
          fz = Math.floor(pz);
          if (fx < 0 || fx >= nx || fy < 0 || fy >= ny || fz < 0 || fz >= nz) continue;
        } else {
          fx = nearestIndex(px, nx);
          fy = nearestIndex(py, ny);
          fz = nearestIndex(pz, nz);
        }
        values[o + i] = d[fx + fy * nx + zOffsets[fz]];
      } else {
        if (zero && (px < 0 || px > nx || py < 0 || py > ny || pz < 0 || pz > nz)) continue;
        // Lower corner and fraction; indices clamped (edge voxels repeated).
        const qx = px - shift;
        const qy = py - shift;
        const qz = pz - shift;
        const ix = Math.floor(qx);
        const iy = Math.floor(qy);
        const iz = Math.floor(qz);
        const tx = qx - ix;
        const ty = qy - iy;
        const tz = qz - iz;
        const xa = ix < 0 ? 0 : ix > mx ? mx : ix;
        const xb = ix + 1 > mx ? mx : ix + 1 < 0 ? 0 : ix + 1;
        const ya = (iy < 0 ? 0 : iy > my ? my : iy) * nx;
        const yb = (iy + 1 > my ? my : iy + 1 < 0 ? 0 : iy + 1) * nx;
        const za = zOffsets[iz < 0 ? 0 : iz > mz ? mz : iz];
        const zb = zOffsets[iz + 1 > mz ? mz : iz + 1 < 0 ? 0 : iz + 1];
        const c00 = d[xa + ya + za] + tx * (d[xb + ya + za] - d[xa + ya + za]);
        const c10 = d[xa + yb + za] + tx * (d[xb + yb + za] - d[xa + yb + za]);
        const c01 = d[xa + ya + zb] + tx * (d[xb + ya + zb] - d[xa + ya + zb]);
        const c11 = d[xa + yb + zb] + tx * (d[xb + yb + zb] - d[xa + yb + zb]);
        const c0 = c00 + ty * (c10 - c00);
        const c1 = c01 + ty * (c11 - c01);
        values[o + i] = c0 + tz * (c1 - c0);
      }
      if (i < first) first = i;
      last = i;
    }
    lo[r] = first;
    hi[r] = last + 1;
  };
  return {
    kind: 'general',
    block: BLOCK,
    sample: (j0, count) => {
      for (let r = 0; r < count; r++) sampleRow(j0 + r, r);
      return rows;
    },
  };
}
