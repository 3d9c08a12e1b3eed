/**
 * Builds one Volume from the instances of a series (files, buffers: see sources/source.ts),
 * slice by slice, so that a slice can be shown before the whole volume is there.
 *
 * 1. Header pass: headers of every instance are read (first kilobytes only); instances that are
 *    not DICOM, are truncated, or belong to another series are skipped with a logged reason. A
 *    multi-frame instance gives one slice per frame. Every slice is checked (pixel data,
 *    monochrome, a decodable transfer syntax, 1, 8 or 16 bits, consistent with the first) and
 *    the slices are ordered (core/volume): size, geometry, stored format and each slice's
 *    rescale and window are then fixed. With `allowStack`, slices that are not one volume for
 *    a reason of geometry alone (orientations, positions, PixelSpacing: a SliceGeometryError)
 *    are ordered as a stack of images instead (`stackSlices`: InstanceNumber, then source
 *    order; slice spacing 1), and the load and its volume say `stack: true`; everything else
 *    (checks, limits, loading, values) is the same.
 * 2. The voxel bytes are reserved with the caller (cache budget) before anything is allocated,
 *    then one buffer of the stored type is allocated in shared memory, and `openVolume` returns
 *    a ProgressiveVolume (progressiveVolume.ts) that fills it.
 * 3. Slices are read or decoded in the order its queue decides (slices waited for first, see
 *    sliceQueue.ts): uncompressed pixel data is read straight into its place (no second copy
 *    for little-endian data); compressed frames are decoded by the worker pool straight into
 *    their place in the shared buffer. Each slice's stored bits are normalised (BitsStored <
 *    BitsAllocated) and its value range measured as soon as it is in place (by the worker for
 *    compressed frames).
 * 4. Once every slice is in place, modality values are computed (in place where the format
 *    allows it) and the narrowest exact pixel format chosen: `complete` resolves to the Volume.
 *
 * Before completion a slice's values are known exactly when the header pass tells them (see
 * `earlyValues`): its Rescale Slope and Intercept are integers (so its modality values are
 * integers, held exactly by whatever format the volume gets, Float32 included, as long as they
 * stay within 2^24), and its padding voxels, if any, are proven to keep their own value (which
 * depends on the smallest value of the whole series otherwise).
 *
 * BitsAllocated 1 (masks, label maps; PS3.5 8.1.1 and 8.2): pixels are packed 8 a byte, the
 * first in the least significant bit, and the frames of a multi-frame file follow each other
 * bit by bit, so frame f is bits [f n, (f + 1) n) of the pixel data (n = rows * columns; a frame
 * need not start on a byte boundary). Only native data is read (compressed masks are refused,
 * 422); the bytes holding a frame are read and unpacked to one byte (0 or 1) a voxel, and the
 * volume is Binary with values 0 and 1 as they are: Rescale Slope/Intercept, padding and window
 * attributes do not apply. Under Explicit VR Big Endian, OW pixel data is in 16-bit words
 * written big-endian, so the bytes are swapped in pairs (counted from the value's start) first.
 *
 * A source that cannot give an instance's bytes (a PACS that is down or too slow: 502, 504,
 * `isSourceFailure`) fails the load with its own error wherever that happens, in the header
 * pass or later: such an instance is never skipped like an unreadable file nor taken for a bad
 * slice (422).
 *
 * Work on the main thread is cut into short steps so the event loop keeps answering.
 */
import { CircusError, isSourceFailure, tooLarge, unprocessable } from '../core/errors.js';
import { chooseFormat, modalityRange, rescaleInto, rescalesToIntegers, type StoredRange } from '../core/volume/modality.js';
import { orderSlices, SliceGeometryError, type SliceGeometryInput, type SliceOrdering, stackSlices } from '../core/volume/sliceOrdering.js';
import { allocateVoxels, BYTES_PER_VOXEL, FORMAT_RANGE, PixelFormat, type Volume, type VoxelArray, type Window } from '../core/volume/volume.js';
import type { Instance } from '../sources/source.js';
import { DEFAULT_READ_LIMITS, readHeader, readPixelBytes, type ReadLimits } from './fileReader.js';
import { canDecode } from './codecs.js';
import { DecodeError, type DecodePool } from './decodePool.js';
import { type EarlyValues, type LoadHeader, type LoadUnit, ProgressiveVolume } from './progressiveVolume.js';
import { isBigEndian, isNative, type SliceHeader } from './sliceHeader.js';
import { finishStoredSlice, storedBounds, voxelView } from './storedValues.js';
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
  /** Called with the complete volume just before `complete` resolves (to tie ids to it). */
  onComplete?: (volume: Volume) => void;
  /**
   * Slices that are not one volume by their geometry (SliceGeometryError) are opened as a stack
   * of images (see the module comment) instead of refused; a series that is a volume loads as one.
   */
  allowStack?: boolean;
}

/** One image plane: a single-frame instance, or one frame of a multi-frame instance. */
interface Slice {
  instance: Instance;
  label: string;
  /** The file's header with this frame's geometry and values put in. */
  header: SliceHeader;
  /** Frame index in the instance (0 for single-frame instances). */
  frame: number;
  /**
   * Its place in InstanceNumber order, frames within their instance: InstanceNumber x 10^6 plus
   * the frame number (1 for a single-frame instance), so single- and multi-frame instances of one
   * series compare on one scale; undefined for an instance without InstanceNumber (a stack keeps
   * those in the order given, after the numbered ones, each instance's frames together).
   */
  stackNumber: number | undefined;
  /** The number the geometry's ordering breaks ties and picks its direction by: stackNumber, but frames of an unnumbered instance count as instance 0. */
  geometryNumber: number | undefined;
}

const orderNumber = (instanceNumber: number | undefined, frameNumber: number): number | undefined =>
  instanceNumber === undefined ? undefined : instanceNumber * 1e6 + frameNumber;

/** The slices of one instance: one, or one per frame with the frame's own geometry. */
function slicesOf(instance: Instance, h: SliceHeader): Slice[] {
  if (!h.frames) {
    const n = orderNumber(h.instanceNumber, 1);
    return [{ instance, label: instance.name, header: h, frame: 0, stackNumber: n, geometryNumber: n }];
  }
  return h.frames.map((f, i) => ({
    instance,
    label: `${instance.name} frame ${i + 1}`,
    frame: i,
    stackNumber: orderNumber(h.instanceNumber, f.frameNumber),
    geometryNumber: orderNumber(h.instanceNumber ?? 0, f.frameNumber),
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
  if (h.bitsAllocated === 1) return PixelFormat.Binary;
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
  const binary = h.bitsAllocated === 1;
  if (binary && h.pixelData.encapsulated) {
    throw unprocessable(
      `${name}: BitsAllocated 1 pixel data is compressed (${describeTransferSyntax(h.transferSyntaxUid)}); only uncompressed masks are read`,
    );
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
  if (h.bitsAllocated !== 1 && h.bitsAllocated !== 8 && h.bitsAllocated !== 16) {
    throw unprocessable(`${name}: BitsAllocated ${h.bitsAllocated} is not supported (1, 8 or 16)`);
  }
  if (binary && (h.bitsStored !== 1 || h.highBit !== 0 || h.pixelRepresentation !== 0)) {
    throw unprocessable(
      `${name}: BitsAllocated 1 needs BitsStored 1, HighBit 0 and PixelRepresentation 0, got BitsStored ${h.bitsStored}, HighBit ${h.highBit}, PixelRepresentation ${h.pixelRepresentation}`,
    );
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
  const needed = pixelDataBytes(h);
  if (native && h.pixelData.length < needed) {
    const frames = h.numberOfFrames > 1 ? ` x ${h.numberOfFrames} frames` : '';
    const packing = binary ? ' at 1 bit a pixel' : '';
    throw unprocessable(`${name}: pixel data holds ${h.pixelData.length} bytes, ${h.rows}x${h.columns}${frames}${packing} needs ${needed}`);
  }
}

/** Bytes the native pixel data of every frame of an instance takes (before padding to even length). */
function pixelDataBytes(h: SliceHeader): number {
  const pixels = h.rows * h.columns * h.numberOfFrames;
  return h.bitsAllocated === 1 ? Math.ceil(pixels / 8) : pixels * (h.bitsAllocated / 8);
}

/**
 * Unpacks `count` pixels of BitsAllocated 1 data into `out` from `outStart`, one byte (0 or 1)
 * a pixel: pixel i is bit (bitOffset + i) % 8 (0 the least significant) of byte
 * floor((bitOffset + i) / 8) of `packed`. Throws RangeError when `packed` is too short.
 */
export function unpackBitsLsbFirst(packed: Uint8Array, bitOffset: number, count: number, out: Uint8Array, outStart: number): void {
  if (Math.ceil((bitOffset + count) / 8) > packed.length) {
    throw new RangeError(`${packed.length} bytes cannot hold ${count} pixels from bit ${bitOffset}`);
  }
  const bit = (i: number): number => {
    const b = bitOffset + i;
    return (packed[b >>> 3] >>> (b & 7)) & 1;
  };
  // Bit by bit up to a byte boundary, then whole bytes, then the bits left.
  let i = 0;
  for (; i < count && (bitOffset + i) % 8 !== 0; i++) out[outStart + i] = bit(i);
  for (; i + 8 <= count; i += 8) {
    const byte = packed[(bitOffset + i) >>> 3];
    const o = outStart + i;
    for (let k = 0; k < 8; k++) out[o + k] = (byte >>> k) & 1;
  }
  for (; i < count; i++) out[outStart + i] = bit(i);
}

/**
 * Reads slice `s` of a BitsAllocated 1 instance into `out` (one byte a voxel, `count` voxels
 * from `outStart`): the bytes holding bits [frame * count, (frame + 1) * count) of the pixel
 * data, swapped in pairs first for OW under Explicit VR Big Endian. Throws DicomParseError
 * when the file is shorter than its pixel data says.
 */
async function readBinarySlice(s: Slice, out: Uint8Array, outStart: number, count: number, limits: ReadLimits): Promise<void> {
  const px = s.header.pixelData!;
  const firstBit = s.frame * count;
  const swapped = isBigEndian(s.header.transferSyntaxUid) && px.vr === 'OW';
  let start = Math.floor(firstBit / 8);
  let end = Math.ceil((firstBit + count) / 8);
  if (swapped) {
    start -= start % 2;
    end = Math.min(end + (end % 2), px.length);
  }
  const packed = Buffer.alloc(end - start + ((end - start) % 2));
  await readPixelBytes(s.instance, s.header, packed, start, limits, 0, end - start);
  if (swapped) packed.swap16();
  unpackBitsLsbFirst(packed, firstBit - start * 8, count, out, outStart);
}

/** Loads the whole volume: `openVolume`, then its `complete` volume. Rejects as both do. */
export async function loadVolume(instances: readonly Instance[], options: LoadOptions): Promise<Volume> {
  return (await openVolume(instances, options)).complete;
}

/** Lanes of a volume's loading work: reading native pixel data, decoding compressed frames. */
const READING = 0;
const DECODING = 1;

/**
 * The header pass of a series, then its volume as it loads: resolves once the slices are read,
 * checked and ordered and the voxel bytes are reserved and allocated; the ProgressiveVolume then
 * fills them (see the module comment). Rejects, for failures of the header pass, with 422 (no
 * readable image; a slice that cannot be part of the volume, named), 413 (maxVoxels,
 * maxFrameBytes) or what `reserve` throws (413, 503). A slice that cannot be read or decoded
 * later rejects the volume's waiters and `complete` instead (422 naming the slice).
 */
export async function openVolume(instances: readonly Instance[], options: LoadOptions): Promise<ProgressiveVolume> {
  const log = options.log ?? (() => {});
  const limits = options.readLimits ?? DEFAULT_READ_LIMITS;
  const concurrency = options.concurrency ?? 8;
  const pause = cooperative();

  // 1. Headers.
  const read = await mapLimit(instances, concurrency, async (instance): Promise<Slice[] | null> => {
    try {
      const header = (await instance.knownHeader?.()) ?? (await readHeader(instance, limits));
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
      if (isSourceFailure(err)) throw err;
      log(`skipped ${instance.name}: ${(err as Error).message}`);
      return null;
    }
  });
  const slices = read.filter((s): s is Slice[] => s !== null).flat();
  if (slices.length === 0) throw unprocessable(`the series has no readable DICOM image (${instances.length} files looked at)`);

  // Checks and order.
  const pool = options.pool;
  for (const s of slices) checkSlice(s, slices[0], pool !== undefined, options.maxFrameBytes ?? 256 * 1024 * 1024);
  const geometry: SliceGeometryInput[] = slices.map((s) => ({
    label: s.label,
    rows: s.header.rows,
    columns: s.header.columns,
    pixelSpacing: s.header.pixelSpacing,
    imagePositionPatient: s.header.imagePositionPatient,
    imageOrientationPatient: s.header.imageOrientationPatient,
    instanceNumber: s.geometryNumber,
    sliceThickness: s.header.sliceThickness,
    spacingBetweenSlices: s.header.spacingBetweenSlices,
  }));
  let stack = false;
  let ordering: SliceOrdering;
  try {
    ordering = orderSlices(geometry);
  } catch (err) {
    if (!options.allowStack || !(err instanceof SliceGeometryError)) throw err;
    log(`opened as a stack of images: ${err.message}`);
    ordering = stackSlices(geometry.map((g, i) => ({ ...g, instanceNumber: slices[i].stackNumber })));
    stack = true;
  }
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
  const binary = stored === PixelFormat.Binary;

  // 2. Room, then memory.
  await options.reserve?.(voxels * BYTES_PER_VOXEL[stored]);
  const raw = allocateVoxels(stored, voxels);
  const sliceBytes = perSlice * BYTES_PER_VOXEL[stored];

  const windows: (Window | null)[] = ordered.map(({ header: h }) =>
    // DICOM requires WindowWidth >= 1; a 0 (some MR scanners write 0\\0) means no window.
    // A mask's window attributes do not apply to its values (0 and 1).
    !binary && h.windowCenter !== undefined && h.windowWidth !== undefined && h.windowWidth >= 1
      ? { level: h.windowCenter, width: h.windowWidth }
      : null,
  );
  const header: LoadHeader = {
    dims: [nx, ny, nz],
    voxelSize: ordering.voxelSize,
    geometry: ordering.geometry,
    uniformSpacing: ordering.uniformSpacing,
    ...(stack ? { stack: true } : {}),
    monochrome1: first.photometricInterpretation === 'MONOCHROME1',
    storedFormat: stored,
    sliceRescale: ordered.map(({ header: h }) =>
      binary ? { slope: 1, intercept: 0 } : { slope: h.rescaleSlope, intercept: h.rescaleIntercept, padding: h.padding },
    ),
    sliceWindows: windows,
    valueBounds: binary ? [0, 1] : valueBounds(ordered.map((s) => s.header)),
    attributes: {
      modality: first.modality ?? null,
      photometricInterpretation: first.photometricInterpretation,
      seriesInstanceUid: first.seriesInstanceUid ?? null,
      studyInstanceUid: first.studyInstanceUid ?? null,
      seriesDescription: first.seriesDescription ?? null,
    },
  };

  // 3. The units that put slices in place: one a native slice, one a group of compressed frames.
  const sliceView = (z: number): VoxelArray => voxelView(stored, raw.buffer, raw.byteOffset + z * sliceBytes, perSlice);
  const readSlice = async (s: Slice, z: number): Promise<StoredRange> => {
    const t = Buffer.from(raw.buffer, raw.byteOffset + z * sliceBytes, sliceBytes);
    try {
      if (binary) await readBinarySlice(s, raw as Uint8Array, z * perSlice, perSlice, limits);
      else await readPixelBytes(s.instance, s.header, t, s.frame * sliceBytes, limits);
    } catch (err) {
      if (isSourceFailure(err)) throw err;
      throw unprocessable(`slice ${s.label}: ${(err as Error).message}`);
    }
    const wordsSwapped = stored === PixelFormat.UInt16 || stored === PixelFormat.Int16 || s.header.pixelData!.vr === 'OW';
    if (!binary && isBigEndian(s.header.transferSyntaxUid) && wordsSwapped && sliceBytes % 2 === 0) {
      t.swap16();
    }
    return finishStoredSlice(sliceView(z), s.header, binary ? undefined : s.header.padding);
  };
  const units: LoadUnit[] = [];
  for (const [z, s] of ordered.entries()) {
    if (s.header.pixelData!.encapsulated) continue;
    units.push({ lane: READING, slices: [z], run: async () => [await readSlice(s, z)] });
  }
  const encoded = ordered.map((s, z) => ({ s, z })).filter(({ s }) => s.header.pixelData!.encapsulated);
  if (encoded.length > 0) {
    if (!pool) throw new CircusError('UNSUPPORTED_TRANSFER_SYNTAX', 'compressed pixel data needs the decoding pool');
    for (const task of decodeTasks(encoded, pool.size)) {
      const h = task[0].s.header;
      units.push({
        lane: DECODING,
        slices: task.map((t) => t.z),
        run: async () => {
          try {
            return await pool.decode(
              await task[0].s.instance.forWorker(),
              task.map((t) => t.s.frame),
              limits.maxInflatedBytes,
              {
                buffer: raw.buffer as SharedArrayBuffer,
                format: stored,
                byteOffsets: task.map((t) => raw.byteOffset + t.z * sliceBytes),
                voxels: perSlice,
                bits: { bitsAllocated: h.bitsAllocated, bitsStored: h.bitsStored, highBit: h.highBit, pixelRepresentation: h.pixelRepresentation },
                padding: h.padding,
              },
            );
          } catch (err) {
            if (isSourceFailure(err)) throw err;
            const at = err instanceof DecodeError && err.at !== undefined ? err.at : 0;
            throw unprocessable(`slice ${task[at].s.label}: ${(err as Error).message}`);
          }
        },
      });
    }
  }

  // 4. Modality values and format (masks keep their 0 and 1), once every slice is in place.
  const finish = async (ranges: readonly StoredRange[]): Promise<Volume> => {
    const { format, data, min, max } = binary
      ? binaryValues(raw, ranges)
      : await modalityValues(ordered, raw, ranges, { stored, perSlice, reserve: options.reserve, pause });
    const { storedFormat, sliceRescale, ...volumeHeader } = header;
    const volume: Volume = { ...volumeHeader, pixelFormat: format, data, minValue: min, maxValue: max };
    return Object.freeze(volume);
  };

  return new ProgressiveVolume(
    {
      header,
      stored: raw,
      // Decoding tasks under way: one a worker, and one more ready for the first that is done;
      // a slice asked for later waits for at most those.
      lanes: [concurrency, (pool?.size ?? 1) + 1],
      units,
      early: earlyValues(
        ordered.map((s) => s.header),
        stored,
      ),
      finish,
    },
    options.onComplete,
  );
}

/**
 * What each slice's values will be in the complete volume, where the header pass tells them
 * (null where it does not). A slice's real (not padding) voxels are known when its Rescale
 * Slope and Intercept are integers and its values stay within 2^24: their modality values are
 * then integers that every format the volume may get (the stored one, Int16, or Float32) holds
 * exactly, as does the grid `axialSlice` makes (the narrowest of Int16, UInt16 and Float32 that
 * holds them all; a lookup table and the window expression give the same bytes). Its padding
 * voxels keep their own value `padding[0] * slope + intercept` when that is an integer no
 * greater than any value a real voxel of any slice can have (from BitsStored and each slice's
 * rescale), no greater than 0 (the minimum when every voxel is padding), and held by the stored
 * format and Int16 alike; otherwise they may become the series' minimum (`paddingValueFor`),
 * which only the complete volume knows. Masks are always known (0 and 1).
 */
export function earlyValues(headers: readonly SliceHeader[], stored: PixelFormat): (EarlyValues | null)[] {
  if (stored === PixelFormat.Binary) return headers.map(() => ({ slope: 1, intercept: 0, paddingValue: null, format: PixelFormat.Binary }));
  const EXACT = 2 ** 24;
  let lowest = Infinity;
  for (const h of headers) {
    const real = realStoredBounds(h);
    if (!real) continue;
    lowest = Math.min(lowest, real[0] * h.rescaleSlope + h.rescaleIntercept, real[1] * h.rescaleSlope + h.rescaleIntercept);
  }
  const within = (v: number, f: PixelFormat): boolean => {
    const r = FORMAT_RANGE[f];
    return r !== undefined && v >= r[0] && v <= r[1];
  };
  return headers.map((h) => {
    const { rescaleSlope: slope, rescaleIntercept: intercept, padding } = h;
    if (!Number.isInteger(slope) || !Number.isInteger(intercept)) return null;
    const [lo, hi] = storedBounds(h);
    const ends = [lo * slope + intercept, hi * slope + intercept];
    if (Math.max(Math.abs(ends[0]), Math.abs(ends[1])) > EXACT) return null;
    // The narrowest of Int16, UInt16 and Float32 that holds every value the slice can have.
    const holding = (values: number[]): PixelFormat =>
      [PixelFormat.Int16, PixelFormat.UInt16].find((f) => values.every((v) => within(v, f))) ?? PixelFormat.Float32;
    if (!padding) return { slope, intercept, paddingValue: null, format: holding(ends) };
    const own = padding[0] * slope + intercept;
    const keepsOwn =
      Number.isInteger(own) && Math.abs(own) <= EXACT && own <= lowest && own <= 0 && within(own, stored) && within(own, PixelFormat.Int16);
    return { slope, intercept, padding, paddingValue: keepsOwn ? own : null, format: holding(keepsOwn ? [...ends, own] : ends) };
  });
}

/**
 * Bounds on every modality value of the series from its headers alone: each slice's BitsStored
 * range through its (integer) Rescale Slope and Intercept, and each padding value as stored;
 * null when a slice's rescale is not integer (its values need not be integers).
 */
export function valueBounds(headers: readonly SliceHeader[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of headers) {
    const { rescaleSlope: slope, rescaleIntercept: intercept, padding } = h;
    if (!Number.isInteger(slope) || !Number.isInteger(intercept)) return null;
    const [a, b] = storedBounds(h);
    const values = [a * slope + intercept, b * slope + intercept];
    if (padding) values.push(padding[0] * slope + intercept);
    lo = Math.min(lo, ...values);
    hi = Math.max(hi, ...values);
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * The smallest and largest stored value a real (not padding) voxel of a slice can have: the
 * BitsStored range with the padding range cut from its ends; null when padding covers it all.
 */
function realStoredBounds(h: SliceHeader): [number, number] | null {
  let [lo, hi] = storedBounds(h);
  const p = h.padding;
  if (p) {
    if (p[0] <= lo && p[1] >= lo) lo = p[1] + 1;
    if (p[0] <= hi && p[1] >= hi) hi = p[0] - 1;
  }
  return lo <= hi ? [lo, hi] : null;
}

/** What loadVolume needs to turn stored values into modality values. */
interface ModalityContext {
  stored: PixelFormat;
  /** Voxels a slice. */
  perSlice: number;
  reserve?: (bytes: number) => Promise<void>;
  pause: () => Promise<void>;
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
 * Encapsulated slices as decoding tasks: one per instance and group of frames (a long
 * multi-frame instance is cut so every worker gets a share; each task reads and parses its
 * instance once), frames in z order.
 */
function decodeTasks(items: { s: Slice; z: number }[], poolSize: number): { s: Slice; z: number }[][] {
  const byInstance = new Map<Instance, { s: Slice; z: number }[]>();
  for (const it of items) {
    const list = byInstance.get(it.s.instance);
    if (list) list.push(it);
    else byInstance.set(it.s.instance, [it]);
  }
  const tasks: { s: Slice; z: number }[][] = [];
  for (const list of byInstance.values()) {
    const size = Math.max(1, Math.ceil(list.length / (poolSize * 2)));
    for (let i = 0; i < list.length; i += size) tasks.push(list.slice(i, i + size));
  }
  return tasks;
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
