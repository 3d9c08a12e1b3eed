/**
 * Builds one Volume from the instances of a series (files, buffers: see sources/source.ts).
 *
 * 1. Headers of every instance are read (first kilobytes only); instances that are not DICOM,
 *    are truncated, or belong to another series are skipped with a logged reason. A multi-frame
 *    instance gives one slice per frame.
 * 2. Every slice is checked (pixel data, monochrome, a decodable transfer syntax, 8 or 16 bits,
 *    consistent with the first) and the slices are ordered (core/volume).
 * 3. The voxel bytes are reserved with the caller (cache budget) before anything is allocated,
 *    then each slice's pixel data is read straight into its place in one buffer of the stored
 *    type: no second copy for uncompressed little-endian data.
 * 4. Stored bits are normalised (BitsStored < BitsAllocated), modality values computed in place
 *    where the format allows it, and the narrowest exact pixel format chosen.
 *
 * Work on the main thread is cut into short steps so the event loop keeps answering.
 */
import { CircusError, tooLarge, unprocessable } from '../core/errors.js';
import { chooseFormat, modalityRange, rescaleInto, rescalesToIntegers, storedRange, type StoredRange } from '../core/volume/modality.js';
import { orderSlices } from '../core/volume/sliceOrdering.js';
import { allocateVoxels, BYTES_PER_VOXEL, FORMAT_RANGE, PixelFormat, type Volume, type VoxelArray, type Window } from '../core/volume/volume.js';
import type { Instance } from '../sources/source.js';
import { DEFAULT_READ_LIMITS, readHeader, readPixelBytes, type ReadLimits } from './fileReader.js';
import { canDecode } from './codecs.js';
import type { DecodePool } from './decodePool.js';
import { isBigEndian, isNative, type SliceHeader } from './sliceHeader.js';
import { describeTransferSyntax } from './tags.js';

export interface LoadOptions {
  /** Only instances of this series are used (others in the same folder are skipped). */
  seriesInstanceUid?: string;
  /** Largest number of voxels a volume may have (413 beyond). */
  maxVoxels: number;
  /** Largest decoded size of one frame in bytes (413 beyond); 256 MiB by default. */
  maxFrameBytes?: number;
  /** Called with the bytes the volume needs before they are allocated (again if they grow); throws to refuse. */
  reserve?: (bytes: number) => Promise<void>;
  readLimits?: ReadLimits;
  log?: (message: string) => void;
  /** Instances read at once. */
  concurrency?: number;
  /** Decodes compressed frames; without it a compressed series is refused (422). */
  pool?: DecodePool;
}

/** One image plane: a single-frame instance, or one frame of a multi-frame instance. */
interface Slice {
  instance: Instance;
  label: string;
  /** The file's header with this frame's geometry and values put in. */
  header: SliceHeader;
  /** Frame index in the instance (0 for single-frame instances). */
  frame: number;
}

/** The slices of one instance: one, or one per frame with the frame's own geometry. */
function slicesOf(instance: Instance, h: SliceHeader): Slice[] {
  if (!h.frames) return [{ instance, label: instance.name, header: h, frame: 0 }];
  return h.frames.map((f, i) => ({
    instance,
    label: `${instance.name} frame ${i + 1}`,
    frame: i,
    header: {
      ...h,
      imagePositionPatient: f.imagePositionPatient ?? h.imagePositionPatient,
      imageOrientationPatient: f.imageOrientationPatient ?? h.imageOrientationPatient,
      pixelSpacing: f.pixelSpacing ?? h.pixelSpacing,
      sliceThickness: f.sliceThickness ?? h.sliceThickness,
      spacingBetweenSlices: f.spacingBetweenSlices ?? h.spacingBetweenSlices,
      rescaleSlope: f.rescaleSlope !== undefined && f.rescaleSlope !== 0 ? f.rescaleSlope : h.rescaleSlope,
      rescaleIntercept: f.rescaleIntercept ?? h.rescaleIntercept,
      windowCenter: f.windowCenter ?? h.windowCenter,
      windowWidth: f.windowWidth ?? h.windowWidth,
      // Frames order like instances: by file InstanceNumber, then frame number.
      instanceNumber: (h.instanceNumber ?? 0) * 1e6 + f.frameNumber,
    },
  }));
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order.
 * After a failure no new item starts, the calls in flight are waited for, then the first
 * failure is thrown: nothing keeps working in the background for a load that has failed.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === null) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
  return out;
}

/** Lets the event loop run when the current stretch of work has lasted more than `budgetMs`. */
export function cooperative(budgetMs = 8): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < budgetMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

function storedFormat(h: SliceHeader): PixelFormat {
  if (h.bitsAllocated === 8) return h.pixelRepresentation === 1 ? PixelFormat.Int8 : PixelFormat.UInt8;
  return h.pixelRepresentation === 1 ? PixelFormat.Int16 : PixelFormat.UInt16;
}

function checkSlice(s: Slice, first: Slice, decoding: boolean, maxFrameBytes: number): void {
  const h = s.header;
  const name = `slice ${s.label}`;
  if (!h.pixelData) throw unprocessable(`${name}: no pixel data`);
  const frameBytes = h.rows * h.columns * Math.max(1, h.samplesPerPixel) * Math.ceil(Math.max(8, h.bitsAllocated) / 8);
  if (frameBytes > maxFrameBytes) {
    throw tooLarge(`${name}: a ${h.rows}x${h.columns} frame needs ${frameBytes} bytes, more than maxFrameBytes (${maxFrameBytes})`);
  }
  const native = isNative(h.transferSyntaxUid) && !h.pixelData.encapsulated;
  if (!native && !(decoding && canDecode(h.transferSyntaxUid) && h.pixelData.encapsulated)) {
    throw new CircusError('UNSUPPORTED_TRANSFER_SYNTAX', `${name}: transfer syntax ${describeTransferSyntax(h.transferSyntaxUid)} cannot be decoded`);
  }
  if (h.samplesPerPixel !== 1 || (h.photometricInterpretation !== 'MONOCHROME1' && h.photometricInterpretation !== 'MONOCHROME2')) {
    throw unprocessable(
      `${name}: colour image (PhotometricInterpretation ${h.photometricInterpretation}, SamplesPerPixel ${h.samplesPerPixel}) where a monochrome one is needed`,
    );
  }
  if (h.bitsAllocated !== 8 && h.bitsAllocated !== 16) {
    throw unprocessable(`${name}: BitsAllocated ${h.bitsAllocated} is not supported (8 or 16)`);
  }
  if (!(h.bitsStored >= 1 && h.bitsStored <= h.bitsAllocated && h.highBit >= h.bitsStored - 1 && h.highBit < h.bitsAllocated)) {
    throw unprocessable(`${name}: BitsStored ${h.bitsStored} and HighBit ${h.highBit} do not fit BitsAllocated ${h.bitsAllocated}`);
  }
  if (h.pixelRepresentation !== 0 && h.pixelRepresentation !== 1) {
    throw unprocessable(`${name}: PixelRepresentation ${h.pixelRepresentation} is not 0 or 1`);
  }
  const f = first.header;
  for (const key of ['bitsAllocated', 'pixelRepresentation', 'photometricInterpretation'] as const) {
    if (h[key] !== f[key]) {
      throw unprocessable(`${name}: ${key} ${h[key]} differs from ${f[key]} of slice ${first.label}`);
    }
  }
  const needed = h.rows * h.columns * (h.bitsAllocated / 8) * h.numberOfFrames;
  if (native && h.pixelData.length < needed) {
    const frames = h.numberOfFrames > 1 ? ` x ${h.numberOfFrames} frames` : '';
    throw unprocessable(`${name}: pixel data holds ${h.pixelData.length} bytes, ${h.rows}x${h.columns}${frames} needs ${needed}`);
  }
}

/** Stored words to values: shifts out bits below the stored ones, masks, extends the sign. */
function normalizeStoredBits(raw: VoxelArray, start: number, count: number, h: SliceHeader): void {
  const { bitsAllocated, bitsStored, highBit } = h;
  const shift = highBit + 1 - bitsStored;
  if (bitsStored === bitsAllocated && shift === 0) return;
  const words =
    bitsAllocated === 16 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length) : new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
  const mask = bitsStored >= 31 ? 0xffffffff : (1 << bitsStored) - 1;
  const signBit = 1 << (bitsStored - 1);
  const span = 1 << bitsStored;
  const signed = h.pixelRepresentation === 1;
  const end = start + count;
  for (let i = start; i < end; i++) {
    let v = (words[i] >> shift) & mask;
    if (signed && v & signBit) v -= span;
    raw[i] = v;
  }
}

export async function loadVolume(instances: readonly Instance[], options: LoadOptions): Promise<Volume> {
  const log = options.log ?? (() => {});
  const limits = options.readLimits ?? DEFAULT_READ_LIMITS;
  const concurrency = options.concurrency ?? 8;
  const pause = cooperative();

  // 1. Headers.
  const read = await mapLimit(instances, concurrency, async (instance): Promise<Slice[] | null> => {
    try {
      const header = await readHeader(instance, limits);
      if (options.seriesInstanceUid !== undefined && header.seriesInstanceUid !== options.seriesInstanceUid) {
        log(`skipped ${instance.name}: SeriesInstanceUID ${header.seriesInstanceUid ?? '(none)'} is not the series asked for`);
        return null;
      }
      if (!header.pixelData && header.rows === 0) {
        log(`skipped ${instance.name}: not an image (no Rows and no pixel data)`);
        return null;
      }
      return slicesOf(instance, header);
    } catch (err) {
      log(`skipped ${instance.name}: ${(err as Error).message}`);
      return null;
    }
  });
  const slices = read.filter((s): s is Slice[] => s !== null).flat();
  if (slices.length === 0) throw unprocessable(`the series has no readable DICOM image (${instances.length} files looked at)`);

  // 2. Checks and order.
  for (const s of slices) checkSlice(s, slices[0], options.pool !== undefined, options.maxFrameBytes ?? 256 * 1024 * 1024);
  const ordering = orderSlices(
    slices.map((s) => ({
      label: s.label,
      rows: s.header.rows,
      columns: s.header.columns,
      pixelSpacing: s.header.pixelSpacing,
      imagePositionPatient: s.header.imagePositionPatient,
      imageOrientationPatient: s.header.imageOrientationPatient,
      instanceNumber: s.header.instanceNumber,
      sliceThickness: s.header.sliceThickness,
      spacingBetweenSlices: s.header.spacingBetweenSlices,
    })),
  );
  const ordered = ordering.order.map((i) => slices[i]);
  const first = ordered[0].header;
  const nx = first.columns;
  const ny = first.rows;
  const nz = ordered.length;
  const perSlice = nx * ny;
  const voxels = perSlice * nz;
  if (voxels > options.maxVoxels) {
    throw tooLarge(`the series has ${nx}x${ny}x${nz} = ${voxels} voxels, more than the limit maxVoxels (${options.maxVoxels})`);
  }
  const stored = storedFormat(first);
  await options.reserve?.(voxels * BYTES_PER_VOXEL[stored]);

  // 3. Pixel data into place.
  const raw = allocateVoxels(stored, voxels);
  const sliceBytes = perSlice * BYTES_PER_VOXEL[stored];
  const ranges: StoredRange[] = new Array(nz);
  const place = (s: Slice, z: number): void => {
    normalizeStoredBits(raw, z * perSlice, perSlice, s.header);
    ranges[z] = storedRange(raw, z * perSlice, perSlice, s.header.padding);
  };
  const target = (z: number): Buffer => Buffer.from(raw.buffer, raw.byteOffset + z * sliceBytes, sliceBytes);
  const native = ordered.map((s, z) => ({ s, z })).filter(({ s }) => !s.header.pixelData!.encapsulated);
  const encoded = ordered.map((s, z) => ({ s, z })).filter(({ s }) => s.header.pixelData!.encapsulated);
  const decoding = decodeInPool(encoded, options.pool, limits, (z, bytes) => {
    const t = target(z);
    if (bytes.byteLength < sliceBytes) throw unprocessable(`slice ${ordered[z].label}: decoded frame is ${bytes.byteLength} bytes, ${sliceBytes} are needed`);
    t.set(new Uint8Array(bytes, 0, sliceBytes));
    place(ordered[z], z);
  });
  const reading = mapLimit(native, concurrency, async ({ s, z }) => {
    const t = target(z);
    try {
      await readPixelBytes(s.instance, s.header, t, s.frame * sliceBytes, limits);
    } catch (err) {
      throw unprocessable(`slice ${s.label}: ${(err as Error).message}`);
    }
    const wordsSwapped = stored === PixelFormat.UInt16 || stored === PixelFormat.Int16 || s.header.pixelData!.vr === 'OW';
    if (isBigEndian(s.header.transferSyntaxUid) && wordsSwapped && sliceBytes % 2 === 0) {
      t.swap16();
    }
    place(s, z);
  });
  // Both finish (or stop at their first failure) before anything is thrown.
  const [readPixels, decoded] = await Promise.allSettled([reading, decoding]);
  if (readPixels.status === 'rejected') throw readPixels.reason;
  if (decoded.status === 'rejected') throw decoded.reason;

  // 4. Modality values and format.
  let min = Infinity;
  let max = -Infinity;
  let integers = true;
  for (let z = 0; z < nz; z++) {
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
      await options.reserve?.(voxels * BYTES_PER_VOXEL[format] + raw.byteLength);
      data = allocateVoxels(format, voxels);
    }
    for (let z = 0; z < nz; z++) {
      const h = ordered[z].header;
      const p = { slope: h.rescaleSlope, intercept: h.rescaleIntercept, padding: h.padding };
      rescaleInto(raw, z * perSlice, data, z * perSlice, perSlice, p, paddingValues[z]);
      await pause();
    }
    if (data.byteLength !== raw.byteLength) await options.reserve?.(data.byteLength);
  }
  if (format === PixelFormat.Float32) {
    // Stored values are float32 roundings, and rounding keeps order.
    min = Math.fround(min);
    max = Math.fround(max);
  }

  const windows: (Window | null)[] = ordered.map(({ header: h }) =>
    // DICOM requires WindowWidth >= 1; a 0 (some MR scanners write 0\\0) means no window.
    h.windowCenter !== undefined && h.windowWidth !== undefined && h.windowWidth >= 1 ? { level: h.windowCenter, width: h.windowWidth } : null,
  );
  const volume: Volume = {
    dims: [nx, ny, nz],
    voxelSize: ordering.voxelSize,
    pixelFormat: format,
    data,
    geometry: ordering.geometry,
    uniformSpacing: ordering.uniformSpacing,
    minValue: min,
    maxValue: max,
    monochrome1: first.photometricInterpretation === 'MONOCHROME1',
    sliceWindows: windows,
    attributes: {
      modality: first.modality ?? null,
      photometricInterpretation: first.photometricInterpretation,
      seriesInstanceUid: first.seriesInstanceUid ?? null,
      studyInstanceUid: first.studyInstanceUid ?? null,
      seriesDescription: first.seriesDescription ?? null,
    },
  };
  return Object.freeze(volume);
}

/**
 * Decodes encapsulated frames in the pool: one task per instance and group of frames (a long
 * multi-frame instance is cut so every worker gets a share), `put` called as each frame arrives.
 */
async function decodeInPool(
  items: { s: Slice; z: number }[],
  pool: DecodePool | undefined,
  limits: ReadLimits,
  put: (z: number, bytes: ArrayBuffer) => void,
): Promise<void> {
  if (items.length === 0) return;
  if (!pool) throw new CircusError('UNSUPPORTED_TRANSFER_SYNTAX', 'compressed pixel data needs the decoding pool');
  const byInstance = new Map<Instance, { s: Slice; z: number }[]>();
  for (const it of items) {
    const list = byInstance.get(it.s.instance);
    if (list) list.push(it);
    else byInstance.set(it.s.instance, [it]);
  }
  const tasks: { s: Slice; z: number }[][] = [];
  for (const list of byInstance.values()) {
    const size = Math.max(1, Math.ceil(list.length / (pool.size * 2)));
    for (let i = 0; i < list.length; i += size) tasks.push(list.slice(i, i + size));
  }
  await mapLimit(tasks, pool.size * 2, async (task) => {
      let frames: ArrayBuffer[];
      try {
        frames = await pool.decode(await task[0].s.instance.forWorker(), task.map((t) => t.s.frame), limits.maxInflatedBytes);
      } catch (err) {
        throw unprocessable(`slice ${task[0].s.label}: ${(err as Error).message}`);
      }
      task.forEach((t, i) => put(t.z, frames[i]));
  });
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
