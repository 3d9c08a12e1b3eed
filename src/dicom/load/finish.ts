/**
 * Step 4 of loading a volume, the finish (volumeLoader.ts says what each step does): once every
 * slice is in place, stored values become modality values in the narrowest exact pixel format,
 * and the complete Volume is made of them and the plan's header. Masks keep their 0 and 1.
 */
import { chooseFormat, modalityRange, rescaleInto, rescalesToIntegers, type StoredRange } from '../../core/volume/modality.js';
import { allocateVoxels, BYTES_PER_VOXEL, FORMAT_RANGE, PixelFormat, type Volume, type VoxelArray } from '../../core/volume/volume.js';
import type { SliceHeader } from '../sliceHeader.js';
import type { LoadOptions } from '../volumeLoader.js';
import type { Slice } from './headerPass.js';
import type { VolumePlan } from './plan.js';

/** What finishing needs besides the plan: the budget to reserve a wider format with, and a pause that lets the event loop run. */
export interface FinishContext {
  reserve?: LoadOptions['reserve'];
  pause: () => Promise<void>;
}

/**
 * The complete, frozen Volume of `plan` from its stored values `raw` (every slice in place) and
 * each slice's stored range. Rejects with what `reserve` throws when a wider format needs room.
 */
export async function finishVolume(plan: VolumePlan, raw: VoxelArray, ranges: readonly StoredRange[], ctx: FinishContext): Promise<Volume> {
  const { storedFormat: stored, sliceRescale, ...header } = plan.header;
  const { format, data, min, max } =
    stored === PixelFormat.Binary
      ? binaryValues(raw, ranges)
      : await modalityValues(plan.ordered, raw, ranges, { stored, perSlice: header.dims[0] * header.dims[1], ...ctx });
  const volume: Volume = { ...header, pixelFormat: format, data, minValue: min, maxValue: max };
  return Object.freeze(volume);
}

/** What modalityValues needs to turn stored values into modality values. */
interface ModalityContext extends FinishContext {
  stored: PixelFormat;
  /** Voxels a slice. */
  perSlice: number;
}

/** The values of a volume: its data, format and value range. */
interface Values {
  format: PixelFormat;
  data: VoxelArray;
  min: number;
  max: number;
}

/**
 * Stored values (`raw`, slices in z order, `ranges` of each) to modality values: per-slice
 * Rescale Slope/Intercept and padding, in the narrowest exact format (in place when its voxels
 * are as wide as the stored ones, else in a new array reserved first).
 */
async function modalityValues(ordered: readonly Slice[], raw: VoxelArray, ranges: readonly StoredRange[], ctx: ModalityContext): Promise<Values> {
  const { stored, perSlice, reserve, pause } = ctx;
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  for (let z = 0; z < ordered.length; z++) {
    const h = ordered[z].header;
    const p = { slope: h.rescaleSlope, intercept: h.rescaleIntercept, padding: h.padding };
    if (!Number.isNaN(ranges[z].min)) {
      const [lo, hi] = modalityRange(ranges[z], p);
      if (lo < min) min = lo;
      if (hi > max) max = hi;
    }
    if (integers && !rescalesToIntegers(raw, z * perSlice, perSlice, p)) integers = false;
    await pause();
  }
  if (!(min <= max)) {
    min = 0; // every voxel is padding
    max = 0;
  }
  const format = chooseFormat(stored, min, max, integers);
  const paddingValues = ordered.map(({ header: h }) => paddingValueFor(h, min, format, integers));
  // Nothing to do when values are stored as they are and padding keeps its own value.
  const identity =
    format === stored &&
    ordered.every(({ header: h }, z) => {
      if (h.rescaleSlope !== 1 || h.rescaleIntercept !== 0) return false;
      if (ranges[z].paddingCount === 0) return true;
      return h.padding![0] === h.padding![1] && h.padding![0] === paddingValues[z];
    });
  let data: VoxelArray = raw;
  if (!identity) {
    if (BYTES_PER_VOXEL[format] === BYTES_PER_VOXEL[stored]) {
      data = viewAs(format, raw);
    } else {
      await reserve?.(raw.length * BYTES_PER_VOXEL[format] + raw.byteLength);
      data = allocateVoxels(format, raw.length);
    }
    for (let z = 0; z < ordered.length; z++) {
      const h = ordered[z].header;
      const p = { slope: h.rescaleSlope, intercept: h.rescaleIntercept, padding: h.padding };
      rescaleInto(raw, z * perSlice, data, z * perSlice, perSlice, p, paddingValues[z]);
      await pause();
    }
    if (data.byteLength !== raw.byteLength) await reserve?.(data.byteLength);
  }
  if (format === PixelFormat.Float32) {
    // Stored values are float32 roundings, and rounding keeps order.
    min = Math.fround(min);
    max = Math.fround(max);
  }
  return { format, data, min, max };
}

/**
 * The values of a mask (BitsAllocated 1): the unpacked 0/1 bytes as they are, Binary, with the
 * range of the values present (0 to 1 when both occur).
 */
function binaryValues(raw: VoxelArray, ranges: readonly StoredRange[]): Values {
  let min = Infinity;
  let max = -Infinity;
  for (const r of ranges) {
    if (r.min < min) min = r.min;
    if (r.max > max) max = r.max;
  }
  return min <= max ? { format: PixelFormat.Binary, data: raw, min, max } : { format: PixelFormat.Binary, data: raw, min: 0, max: 0 };
}

/**
 * What padding voxels of a slice become: their own modality value when it is no greater than
 * the smallest real value (padding darker than everything, the usual case: nothing changes),
 * else the smallest real value (padding stored above the real values, as some scanners do with
 * 0xFFFF), so padding never shows brighter than tissue.
 */
function paddingValueFor(h: SliceHeader, min: number, format: PixelFormat, integers: boolean): number {
  if (!h.padding) return min;
  const own = h.padding[0] * h.rescaleSlope + h.rescaleIntercept;
  const value = integers ? Math.round(Math.min(own, min)) : Math.min(own, min);
  const range = FORMAT_RANGE[format];
  return range === undefined || (value >= range[0] && value <= range[1]) ? value : min;
}

function viewAs(format: PixelFormat, a: VoxelArray): VoxelArray {
  switch (format) {
    case PixelFormat.UInt8:
      return new Uint8Array(a.buffer, a.byteOffset, a.length);
    case PixelFormat.Int8:
      return new Int8Array(a.buffer, a.byteOffset, a.length);
    case PixelFormat.UInt16:
      return new Uint16Array(a.buffer, a.byteOffset, a.length);
    case PixelFormat.Int16:
      return new Int16Array(a.buffer, a.byteOffset, a.length);
    default:
      return new Float32Array(a.buffer, a.byteOffset, a.length);
  }
}
