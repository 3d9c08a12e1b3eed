/**
 * From stored values to modality values: Rescale Slope/Intercept per slice, padding, and the
 * narrowest exact pixel format for the result (the contract's pixelFormat rule).
 *
 * Padding voxels (stored values inside the slice's padding range) take no part in the value
 * range, the estimated window or the format choice. What they are stored as is the loader's
 * choice (src/dicom/volumeLoader.ts: their own value when it is below every real value, else
 * the smallest real value).
 */
import { add16InPlace, range16 } from '../kernels/voxelKernels.js';
import { FORMAT_RANGE, PixelFormat, type VoxelArray } from './volume.js';

export interface StoredRange {
  /** Smallest and largest stored value that is not padding; NaN when every value is padding. */
  min: number;
  max: number;
  paddingCount: number;
}

export interface RescaleParameters {
  readonly slope: number;
  readonly intercept: number;
  /** Inclusive range of stored values that are padding. */
  readonly padding?: readonly [number, number];
}

const isPadding = (v: number, padding: readonly [number, number] | undefined): boolean => padding !== undefined && v >= padding[0] && v <= padding[1];

/** Range of the stored values `data[start .. start + count)` that are not padding. */
export function storedRange(data: VoxelArray, start: number, count: number, padding?: readonly [number, number]): StoredRange {
  if (data instanceof Int16Array || data instanceof Uint16Array) {
    const fast = range16(data, start, count, padding);
    if (fast) return fast;
  }
  return storedRangeScalar(data, start, count, padding);
}

/** The scalar reference of `storedRange`, for any voxel type. */
export function storedRangeScalar(data: VoxelArray, start: number, count: number, padding?: readonly [number, number]): StoredRange {
  let min = Infinity;
  let max = -Infinity;
  let paddingCount = 0;
  const end = start + count;
  if (padding === undefined) {
    for (let i = start; i < end; i++) {
      const v = data[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
  } else {
    const lo = padding[0];
    const hi = padding[1];
    for (let i = start; i < end; i++) {
      const v = data[i];
      if (v >= lo && v <= hi) {
        paddingCount++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return min <= max ? { min, max, paddingCount } : { min: NaN, max: NaN, paddingCount };
}

/** Modality value range [lo, hi] of a slice with the given stored range. */
export function modalityRange(r: StoredRange, p: RescaleParameters): [number, number] {
  const a = r.min * p.slope + p.intercept;
  const b = r.max * p.slope + p.intercept;
  return a <= b ? [a, b] : [b, a];
}

const isWhole = (v: number): boolean => Math.abs(v - Math.round(v)) <= 1e-6 * Math.max(1, Math.abs(v));

/** Whether every non-padding value of the slice becomes an integer after rescaling. */
export function rescalesToIntegers(data: VoxelArray, start: number, count: number, p: RescaleParameters): boolean {
  if (Number.isInteger(p.slope) && Number.isInteger(p.intercept)) return true;
  const end = start + count;
  for (let i = start; i < end; i++) {
    const v = data[i];
    if (isPadding(v, p.padding)) continue;
    if (!isWhole(v * p.slope + p.intercept)) return false;
  }
  return true;
}

/**
 * The stored format when every modality value is an integer inside its range; otherwise Int16
 * when they are integers that fit Int16; otherwise Float32.
 */
export function chooseFormat(stored: PixelFormat, min: number, max: number, integers: boolean): PixelFormat {
  if (!integers) return PixelFormat.Float32;
  const inside = (f: PixelFormat): boolean => {
    const r = FORMAT_RANGE[f];
    return r !== undefined && (Number.isNaN(min) || (min >= r[0] && max <= r[1]));
  };
  if (inside(stored)) return stored;
  if (inside(PixelFormat.Int16)) return PixelFormat.Int16;
  return PixelFormat.Float32;
}

/**
 * Writes `dst[dstStart + i] = src[srcStart + i] * slope + intercept` for `count` voxels, padding
 * voxels becoming `paddingValue`. `src` and `dst` may share memory when the indices coincide and
 * the element sizes match (conversion in place). Integer formats get rounded values.
 */
export function rescaleInto(
  src: VoxelArray,
  srcStart: number,
  dst: VoxelArray,
  dstStart: number,
  count: number,
  p: RescaleParameters,
  paddingValue: number,
): void {
  const { slope, intercept, padding } = p;
  const round = !(dst instanceof Float32Array);
  const identity = slope === 1 && intercept === 0;
  if (identity && padding === undefined) {
    if (src !== dst || srcStart !== dstStart) {
      for (let i = 0; i < count; i++) dst[dstStart + i] = src[srcStart + i];
    }
    return;
  }
  const lo = padding ? padding[0] : Infinity;
  const hi = padding ? padding[1] : -Infinity;
  const sameWords =
    src.buffer === dst.buffer &&
    src.byteOffset === dst.byteOffset &&
    srcStart === dstStart &&
    src.BYTES_PER_ELEMENT === 2 &&
    dst.BYTES_PER_ELEMENT === 2;
  if (sameWords && slope === 1 && Number.isInteger(intercept) && !(dst instanceof Float32Array)) {
    // In place on 16-bit words: the chosen format holds every result, so wrapping adds are exact.
    if (add16InPlace(src as Int16Array | Uint16Array, srcStart, count, intercept, src instanceof Uint16Array, padding, paddingValue)) return;
  }
  if (slope === 1 && Number.isInteger(intercept)) {
    for (let i = 0; i < count; i++) {
      const v = src[srcStart + i];
      dst[dstStart + i] = v >= lo && v <= hi ? paddingValue : v + intercept;
    }
    return;
  }
  for (let i = 0; i < count; i++) {
    const v = src[srcStart + i];
    const m = v * slope + intercept;
    dst[dstStart + i] = v >= lo && v <= hi ? paddingValue : round ? Math.round(m) : m;
  }
}
