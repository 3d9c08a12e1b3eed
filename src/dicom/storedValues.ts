/**
 * Stored values of one slice in the volume's shared memory, shared by the loader (main thread)
 * and the decoding workers, which put decoded frames in place and finish them there: BitsStored
 * normalisation (shift, mask, sign), then the slice's value range.
 */
import { storedRange, type StoredRange } from '../core/volume/modality.js';
import { PixelFormat, type VoxelArray } from '../core/volume/volume.js';

/** The attributes that say how stored words hold values. */
export interface StoredBits {
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 1: two's complement (signed), 0: unsigned. */
  pixelRepresentation: number;
}

/**
 * Stored words to values in place, for `count` voxels of `raw` from `start`: shifts out the bits
 * below the stored ones, masks, extends the sign. Nothing to do when every bit is stored.
 */
export function normalizeStoredBits(raw: VoxelArray, start: number, count: number, h: StoredBits): void {
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

/**
 * The smallest and largest value a slice can hold once normalised: the range of BitsStored bits,
 * signed or not. (BitsStored 16 and 8 give the range of the stored type itself.)
 */
export function storedBounds(h: StoredBits): [number, number] {
  const bits = Math.max(1, Math.min(h.bitsStored, 32));
  return h.pixelRepresentation === 1 ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/**
 * A view of `count` voxels of `format` over `buffer` from `byteOffset` (stored formats only:
 * UInt8, Int8, UInt16, Int16, and Binary as bytes). Throws RangeError for any other format.
 */
export function voxelView(format: PixelFormat, buffer: ArrayBufferLike, byteOffset: number, count: number): VoxelArray {
  switch (format) {
    case PixelFormat.UInt8:
    case PixelFormat.Binary:
      return new Uint8Array(buffer, byteOffset, count);
    case PixelFormat.Int8:
      return new Int8Array(buffer, byteOffset, count);
    case PixelFormat.UInt16:
      return new Uint16Array(buffer, byteOffset, count);
    case PixelFormat.Int16:
      return new Int16Array(buffer, byteOffset, count);
    default:
      throw new RangeError(`pixel format ${format} is not a stored format`);
  }
}

/**
 * Finishes a slice whose stored words are in place: normalises them (`bits`) and returns the range
 * of the values that are not padding (`padding`, inclusive, in normalised values).
 */
export function finishStoredSlice(slice: VoxelArray, bits: StoredBits, padding: readonly [number, number] | undefined): StoredRange {
  normalizeStoredBits(slice, 0, slice.length, bits);
  return storedRange(slice, 0, slice.length, padding);
}
