/**
 * A series as the current CIRCUS API sees it: a list of images (all slices in z order, or those a
 * partial volume descriptor names), each sent as its voxels in one integer pixel format. Shared
 * by /series/:sid/metadata, /volume, /scan and the /ws/volume transfers.
 *
 * Policy:
 * - Image k (1-based in descriptors, 0-based in `image(k)`) of the full series is slice z = k - 1
 *   in the contract's slice order. A descriptor {start, end, delta} names images start,
 *   start + delta, ..., end.
 * - The pixel format is fixed by the headers alone whenever they bound the values (integer
 *   rescales: see Volume.valueBounds): the stored format when it holds the bounds, else Int16,
 *   else UInt16. So metadata and the first images are known before the volume is complete, and
 *   a series always gets the same format. When the headers do not bound the values, the
 *   complete volume's format is used if it is an integer one; a volume of non-integer values
 *   (Float32) cannot be carried by this API: 422.
 * - `image(k)` resolves as soon as that slice's values are known exactly (the slice alone when
 *   the header pass tells its values, else the complete volume), and puts the slice first in
 *   the load meanwhile. Its bytes are packed as encode/imageBytes.ts says (Binary images 8
 *   voxels a byte, most significant bit first, each image from a byte boundary).
 * - Value ranges (`valueRange`, `imagesRange`: the estimated windows) leave padding out, as the
 *   volume's minValue and maxValue do. Padding voxels hold a value no greater than the series'
 *   smallest real value (the loader's rule): their own modality value when it is below every
 *   real value, else the smallest real value itself. So in the complete volume an image's
 *   padding is every voxel below minValue (a padding voxel that holds minValue itself cannot be
 *   told from a real one, and takes no part either way in the series' range); in a slice known
 *   before completion, where padding voxels keep their own value, it is every voxel holding
 *   that value (the rescale maps no real stored value onto it). Both give the same range for
 *   the same image. An image that is padding only has the range 0 .. 0, as an all-padding
 *   volume has.
 */
import { badParameter, unprocessable } from '../core/errors.js';
import { FORMAT_RANGE, PixelFormat, type Volume, type VoxelArray } from '../core/volume/volume.js';
import type { VolumeLoad } from '../dicom/progressiveVolume.js';
import { imageByteLength, pixelFormatName, writeImage } from '../encode/imageBytes.js';

/** Images start, start + delta, ..., end (1-based). */
export interface PartialVolumeDescriptor {
  readonly start: number;
  readonly end: number;
  readonly delta: number;
}

/**
 * The slices (z, 0-based) a descriptor names in a series of `n` images, in its order; every
 * slice when there is none. 400 when it breaks a rule (the message names it).
 */
export function descriptorSlices(d: PartialVolumeDescriptor | undefined, n: number): number[] {
  if (!d) return Array.from({ length: n }, (_, z) => z);
  const { start, end, delta } = d;
  const bad = (rule: string) => badParameter(`Volume descriptor is invalid: ${rule}`);
  if (start < 1 || start > n || end < 1 || end > n) throw bad(`start and end must be between 1 and ${n}`);
  if (delta === 0) throw bad('delta must not be 0');
  if (end !== start && Math.sign(end - start) !== Math.sign(delta)) throw bad('delta must have the sign of end - start');
  if ((end - start) % delta !== 0) throw bad('(end - start) / delta must be a whole number');
  if (start === end && delta === -1) throw bad('start = end needs a positive delta');
  const slices: number[] = [];
  for (let k = start; delta > 0 ? k <= end : k >= end; k += delta) slices.push(k - 1);
  return slices;
}

/**
 * The format of the series' images when the headers fix it (see the policy above); null when
 * only the complete volume can tell.
 */
export function headerFormat(load: Pick<VolumeLoad, 'storedFormat' | 'valueBounds'>): PixelFormat | null {
  const b = load.valueBounds;
  if (!b) return null;
  const holds = (f: PixelFormat): boolean => {
    const r = FORMAT_RANGE[f];
    return r !== undefined && b[0] >= r[0] && b[1] <= r[1];
  };
  if (load.storedFormat === PixelFormat.Binary) return PixelFormat.Binary;
  return [load.storedFormat, PixelFormat.Int16, PixelFormat.UInt16].find(holds) ?? null;
}

/** The format for a complete volume whose headers did not fix one: its own, when this API can carry it (else 422). */
function volumeFormat(v: Volume): PixelFormat {
  if (pixelFormatName(v.pixelFormat) === undefined) {
    throw unprocessable(
      'the series has values that are not integers (a non-integer Rescale Slope or Intercept); this API carries integer formats only',
    );
  }
  return v.pixelFormat;
}

/** A range of modality values. */
export interface ValueRange {
  readonly minValue: number;
  readonly maxValue: number;
}

/**
 * Widens `into` by the values of `data[start .. start + count)` that are not padding: padding is
 * every value below `below`, and every value equal to `own` (each when given).
 */
function widen(into: { min: number; max: number }, data: VoxelArray, start: number, count: number, below?: number, own?: number): void {
  let { min, max } = into;
  const end = start + count;
  const lo = below ?? -Infinity;
  for (let i = start; i < end; i++) {
    const v = data[i];
    if (v < lo || v === own) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  into.min = min;
  into.max = max;
}

/** The range found, or 0 .. 0 when every voxel was padding (as for an all-padding volume). */
const rangeOf = (r: { min: number; max: number }): ValueRange =>
  r.min <= r.max ? { minValue: r.min, maxValue: r.max } : { minValue: 0, maxValue: 0 };

/** The images of one series (or of a partial volume of it) in the current API's format. */
export class SeriesImages {
  /** The slice (z) of each image, in order. */
  readonly slices: readonly number[];
  readonly columns: number;
  readonly rows: number;
  /** Bytes of one image. */
  readonly imageBytes: number;

  private constructor(
    readonly load: VolumeLoad,
    readonly format: PixelFormat,
    slices: number[],
  ) {
    this.slices = slices;
    this.columns = load.dims[0];
    this.rows = load.dims[1];
    this.imageBytes = imageByteLength(format, this.columns * this.rows);
  }

  /**
   * The images of `load` a descriptor names (400 when it is invalid), once their format is known:
   * at once when the headers fix it, else when the volume is complete (422 when this API cannot
   * carry it; rejects with the load's failure).
   */
  static async of(load: VolumeLoad, descriptor?: PartialVolumeDescriptor): Promise<SeriesImages> {
    const slices = descriptorSlices(descriptor, load.dims[2]);
    const format = headerFormat(load) ?? volumeFormat(await load.complete);
    return new SeriesImages(load, format, slices);
  }

  get count(): number {
    return this.slices.length;
  }

  /**
   * Image `k` (0-based) as bytes, as soon as its values are known exactly; its slice is loaded
   * first meanwhile. Rejects with the load's failure, with `signal.reason` when it fires first,
   * with RangeError for a `k` outside 0 .. count - 1.
   */
  async image(k: number, signal?: AbortSignal): Promise<Buffer> {
    const values = await this.values(k, signal);
    const out = Buffer.allocUnsafe(this.imageBytes);
    writeImage(values, this.format, out);
    return out;
  }

  /**
   * Image `k`'s modality values (columns * rows, x fastest), as `image(k)` sends them, resolving
   * and rejecting as `image` does. A view into the volume, or the slice's own copy: read it, never
   * write it.
   */
  async values(k: number, signal?: AbortSignal): Promise<VoxelArray> {
    const z = this.slices[k];
    if (!Number.isInteger(k) || z === undefined) throw new RangeError(`image ${k} is not in 0 .. ${this.count - 1}`);
    const perImage = this.columns * this.rows;
    if (this.load.volume === null) {
      await this.load.slice(z, signal);
      const early = this.load.axialSlice(z);
      if (early) return early.data;
    }
    const volume = this.load.volume ?? (await this.volume(signal));
    return slab(volume.data, z * perImage, perImage);
  }

  /**
   * The range of image `k`'s values without its padding (see the policy), as soon as they are
   * known exactly; resolving and rejecting as `values` does.
   */
  async valueRange(k: number, signal?: AbortSignal): Promise<ValueRange> {
    const z = this.slices[k];
    if (!Number.isInteger(k) || z === undefined) throw new RangeError(`image ${k} is not in 0 .. ${this.count - 1}`);
    const perImage = this.columns * this.rows;
    const found = { min: Infinity, max: -Infinity };
    if (this.load.volume === null) {
      await this.load.slice(z, signal);
      const early = this.load.axialSlice(z);
      if (early) {
        // Known before completion: padding voxels hold their own value, which no real voxel has.
        const r = this.load.sliceRescale[z];
        const own = r.padding ? r.padding[0] * r.slope + r.intercept : undefined;
        widen(found, early.data, 0, perImage, undefined, own);
        return rangeOf(found);
      }
    }
    const volume = this.load.volume ?? (await this.volume(signal));
    widen(found, volume.data, z * perImage, perImage, volume.minValue);
    return rangeOf(found);
  }

  /**
   * The range of the values of every image (every image of the partial volume, no other), without
   * padding, from the complete volume; rejects as `volume` does.
   */
  async imagesRange(signal?: AbortSignal): Promise<ValueRange> {
    const volume = await this.volume(signal);
    const nz = this.load.dims[2];
    if (this.count === nz && new Set(this.slices).size === nz) return { minValue: volume.minValue, maxValue: volume.maxValue };
    const perImage = this.columns * this.rows;
    const found = { min: Infinity, max: -Infinity };
    for (const z of this.slices) widen(found, volume.data, z * perImage, perImage, volume.minValue);
    return rangeOf(found);
  }

  /** The complete volume (for resampling), rejecting with the load's failure, or with `signal.reason` when it fires first. */
  volume(signal?: AbortSignal): Promise<Volume> {
    return untilAborted(this.load.complete, signal);
  }
}

/** `promise`, or a rejection with `signal.reason` when the signal fires first (the work goes on for others). */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** `count` voxels of `data` from `start`, without a copy. */
function slab(data: VoxelArray, start: number, count: number): VoxelArray {
  return data.subarray(start, start + count);
}
