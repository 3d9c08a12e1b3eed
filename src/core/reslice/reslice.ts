/**
 * One reslice core for every plane the server samples: orthogonal (/mpr), oblique (/oblique)
 * and the current API's /scan. A plane is an origin and two steps in voxel index coordinates
 * (pixel (i, j) samples origin + j * row + i * col); what is read there (the interpolation, and
 * what the volume's edges mean) and what is made of each sample (windowed into 8 bits, or the
 * value itself) are chosen once per image. The image is then marched a block of rows at a time:
 * a sampler fills the block's values, and the output stage windows or stores them. A slab goes
 * between the two: the plane is sampled at each of its offsets along the normal and the samples
 * of a pixel combined (max, min, mean) before the output stage.
 *
 * Policy:
 * - Samplers are picked by the plane's shape, fastest first; each keeps the arithmetic of the
 *   sampling it replaces, so images stay the same to the byte (see samplers.ts):
 *   - axis-aligned planes through voxel centres (orthogonal planes) read voxels as they are:
 *     runs of the volume in place where rows are contiguous, gathered otherwise;
 *   - planes with one step along a single volume axis and the other across it (oblique planes)
 *     precompute their interpolation per column and per row;
 *   - any other plane (scan) interpolates every pixel on its own.
 * - Edges: 'clamp' (voxel centres at integer coordinates; a coordinate is clamped into the
 *   volume, so edge voxels extend beyond it) or 'zero' (the scan convention: voxel i covers
 *   [i, i + 1); a sample outside the volume is 0 in the output, whatever the output is).
 * - Output: 'window' writes 8-bit pixels through the window (a lookup table for voxels of an
 *   integer format, the formula for interpolated or Float32 values); 'values' stores the
 *   samples in the output's own type (interpolated ones rounded half up when `round` is set).
 */
import { checkWindow, formulaLines, tableLines, windowTable } from '../mpr/window.js';
import type { Vec3 } from '../geometry/vec3.js';
import type { SlabSpec } from '../mpr/types.js';
import { PixelFormat, type VoxelGrid } from '../volume/volume.js';
import { samplerFor } from './samplers.js';
import type { ReslicePlane, ResliceOptions, ResliceOutput, ResliceSource, SampledRows } from './types.js';

export type { Edges, Interpolation, Placement, ReslicePlane, ResliceOptions, ResliceOutput, ResliceSource, SampledRows, Sampler } from './types.js';

/** How a slab's samples are combined into one value a pixel. */
export type Projection = SlabSpec['projection'];
export const PROJECTIONS: readonly Projection[] = ['mip', 'minip', 'average'];

/**
 * A slab: the plane sampled again at origin + k * step for every k from `from` to `to` (from <= 0
 * <= to; step along the plane's normal, voxel index units), the samples of each pixel combined:
 * their largest (mip), smallest (minip) or mean (average; rounded half up, floor(mean + 0.5), for
 * volumes of an integer format, so that it windows as a voxel value would).
 */
export interface Slab {
  readonly step: Vec3;
  readonly from: number;
  readonly to: number;
  readonly projection: Projection;
}

/** Samples `plane` of `source` into `output`, a block of rows at a time (a slab of planes combined, when `slab` is given). */
export function reslice(source: ResliceSource, plane: ReslicePlane, options: ResliceOptions, output: ResliceOutput, slab?: Slab): void {
  if (slab && slab.to > slab.from) {
    resliceSlab(source, plane, options, output, slab);
    return;
  }
  const sampler = samplerFor(source, plane, options, output);
  const emit = outputStage(source.grid, plane.width, output);
  for (let j0 = 0; j0 < plane.height; j0 += sampler.block) {
    const count = Math.min(sampler.block, plane.height - j0);
    const rows = sampler.sample(j0, count);
    if (!rows.written) emit(rows, j0, count);
  }
}

/** Rows combined at a time in a slab. */
const SLAB_ROWS = 16;

/** The slab's planes sampled block by block, combined (the compositing step), then given to the output stage. */
function resliceSlab(source: ResliceSource, plane: ReslicePlane, options: ResliceOptions, output: ResliceOutput, slab: Slab): void {
  // Samplers that hand their samples on (no windowing as they sample, no sampling in place).
  const handOn: ResliceOutput = { kind: 'values', out: new Float32Array(0) };
  const samplers = [];
  for (let k = slab.from; k <= slab.to; k++) {
    const origin: Vec3 = [plane.origin[0] + k * slab.step[0], plane.origin[1] + k * slab.step[1], plane.origin[2] + k * slab.step[2]];
    samplers.push(samplerFor(source, { ...plane, origin }, options, handOn));
  }
  // The planes have one shape, so one kind of sampler and one block size; at most SLAB_ROWS rows
  // a block, so that the combined block stays in cache while every plane is added to it.
  const block = Math.min(samplers[0].block, SLAB_ROWS);
  const { width } = plane;
  const acc = new Float64Array(block * width);
  const n = samplers.length;
  const round = slab.projection === 'average' && source.grid.pixelFormat !== PixelFormat.Float32;
  const emit = outputStage(source.grid, width, output);
  for (let j0 = 0; j0 < plane.height; j0 += block) {
    const count = Math.min(block, plane.height - j0);
    let raw = true;
    for (let s = 0; s < n; s++) {
      const rows = samplers[s].sample(j0, count);
      if (rows.spans !== null) throw new RangeError('slabs of planes partly outside the volume are not sampled');
      combine(acc, rows, width, count, s === 0, slab.projection);
      raw &&= rows.raw;
    }
    if (slab.projection === 'average') {
      const len = count * width;
      if (round) for (let i = 0; i < len; i++) acc[i] = Math.floor(acc[i] / n + 0.5);
      else for (let i = 0; i < len; i++) acc[i] = acc[i] / n;
    }
    // Maxima, minima and rounded means of voxels are voxel values: the output stage may use its table.
    emit({ values: acc, raw: raw && (slab.projection !== 'average' || round), start: 0, stride: width, spans: null }, j0, count);
  }
}

/** acc[r * width + i] combined with sample i of row r (the first plane's samples copied). */
function combine(acc: Float64Array, rows: SampledRows, width: number, count: number, first: boolean, projection: Projection): void {
  const { values, start, stride } = rows;
  for (let r = 0; r < count; r++) {
    const s = start + r * stride;
    const o = r * width;
    if (first) for (let i = 0; i < width; i++) acc[o + i] = values[s + i];
    else if (projection === 'mip') {
      for (let i = 0; i < width; i++) {
        const v = values[s + i];
        if (v > acc[o + i]) acc[o + i] = v;
      }
    } else if (projection === 'minip') {
      for (let i = 0; i < width; i++) {
        const v = values[s + i];
        if (v < acc[o + i]) acc[o + i] = v;
      }
    } else for (let i = 0; i < width; i++) acc[o + i] += values[s + i];
  }
}

type Emit = (rows: SampledRows, j0: number, count: number) => void;

function outputStage(grid: VoxelGrid, width: number, output: ResliceOutput): Emit {
  if (output.kind === 'values') {
    const { out } = output;
    const round = output.round === true;
    return (rows, j0, count) => {
      const { values, start, stride, spans } = rows;
      if (values === out && start === j0 * width && stride === width && spans === null) return; // sampled in place
      const rounding = round && !rows.raw;
      if (!rounding && spans === null && stride === width && values.constructor === out.constructor) {
        out.set(values.subarray(start, start + count * width) as typeof out, j0 * width); // a copy of memory
        return;
      }
      for (let r = 0; r < count; r++) {
        const o = (j0 + r) * width;
        const s = start + r * stride;
        const lo = spans ? spans.lo[r] : 0;
        const hi = spans ? spans.hi[r] : width;
        if (lo > 0) out.fill(0, o, o + lo);
        if (hi < width) out.fill(0, o + Math.max(hi, lo), o + width);
        if (rounding) for (let i = lo; i < hi; i++) out[o + i] = Math.floor(values[s + i] + 0.5);
        else for (let i = lo; i < hi; i++) out[o + i] = values[s + i];
      }
    };
  }
  const { out, window } = output;
  const stride = output.stride ?? width;
  const offset = output.offset ?? 0;
  checkWindow(window);
  const lut = windowTable(grid.pixelFormat, window);
  return (rows, j0, count) => {
    const { values, start, spans } = rows;
    const useTable = rows.raw && lut !== null;
    if (spans === null) {
      if (useTable) tableLines(lut, values, out, width, count, start, rows.stride, offset + j0 * stride, stride);
      else formulaLines(window, values, out, width, count, start, rows.stride, offset + j0 * stride, stride);
      return;
    }
    for (let r = 0; r < count; r++) {
      const o = offset + (j0 + r) * stride;
      const lo = spans.lo[r];
      const hi = spans.hi[r];
      if (hi <= lo) {
        out.fill(0, o, o + width);
        continue;
      }
      if (lo > 0) out.fill(0, o, o + lo);
      if (hi < width) out.fill(0, o + hi, o + width);
      const s = start + r * rows.stride + lo;
      if (useTable) tableLines(lut, values, out, hi - lo, 1, s, 0, o + lo, 0);
      else formulaLines(window, values, out, hi - lo, 1, s, 0, o + lo, 0);
    }
  };
}
