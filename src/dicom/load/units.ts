/**
 * Step 3 of loading a volume, the load units (volumeLoader.ts says what each step does): the
 * units of work that put slices in place, which the ProgressiveVolume runs in the order its
 * queues decide. A native slice is one unit in the reading lane, read straight into its place in
 * the stored voxels; compressed frames are grouped into decoding tasks (one per instance and
 * group of frames), each one unit in the decoding lane. A mask slice (BitsAllocated 1) is read as
 * the bytes holding its bits and unpacked to one byte (0 or 1) a voxel.
 */
import { CircusError, isSourceFailure, unprocessable } from '../../core/errors.js';
import type { StoredRange } from '../../core/volume/modality.js';
import { BYTES_PER_VOXEL, PixelFormat, type VoxelArray } from '../../core/volume/volume.js';
import type { Instance } from '../instance.js';
import { DecodeError } from '../decodePool.js';
import { DEFAULT_READ_LIMITS, type ReadLimits, readPixelBytes } from '../fileReader.js';
import type { LoadPlan, LoadUnit } from '../progressiveVolume.js';
import { isBigEndian } from '../sliceHeader.js';
import { finishStoredSlice, voxelView } from '../storedValues.js';
import type { LoadOptions } from '../volumeLoader.js';
import type { Slice } from './headerPass.js';
import type { VolumePlan } from './plan.js';

/** Lanes of a volume's loading work: reading native pixel data, decoding compressed frames. */
const READING = 0;
const DECODING = 1;

/** The work that fills a volume's stored voxels: its units and how many of each lane may be under way at once. */
export type LoadWork = Pick<LoadPlan, 'lanes' | 'units'>;

/**
 * The units that put each slice of `plan` in place in `raw` (the stored voxels, in shared memory).
 * A unit rejects with 422 naming the slice when it cannot be read or decoded, or with a source's
 * own failure. Throws UNSUPPORTED_TRANSFER_SYNTAX for compressed slices without a decoding pool.
 */
export function loadUnits(
  { ordered, header }: VolumePlan,
  raw: VoxelArray,
  options: Pick<LoadOptions, 'readLimits' | 'pool' | 'concurrency'>,
): LoadWork {
  const limits = options.readLimits ?? DEFAULT_READ_LIMITS;
  const pool = options.pool;
  const stored = header.storedFormat;
  const binary = stored === PixelFormat.Binary;
  const perSlice = header.dims[0] * header.dims[1];
  const sliceBytes = perSlice * BYTES_PER_VOXEL[stored];
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
  // Decoding tasks under way: one a worker, and one more ready for the first that is done;
  // a slice asked for later waits for at most those.
  return { lanes: [options.concurrency ?? 8, (pool?.size ?? 1) + 1], units };
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
