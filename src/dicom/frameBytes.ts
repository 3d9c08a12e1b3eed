/**
 * The bytes of one frame of an instance, as DICOMweb sends them: compressed frames as stored
 * (split by frames.ts), uncompressed frames in little endian whatever the stored byte order.
 */
import { encapsulatedFrames as splitFrames } from './frames.js';
import { DicomParseError, type ParsedDicom } from './parser.js';
import { isBigEndian, type SliceHeader } from './sliceHeader.js';

/** The compressed bytes of every frame of an instance (parsed whole: fragments included). */
export function encapsulatedFrames(parsed: ParsedDicom, header: SliceHeader): Uint8Array[] {
  const px = parsed.pixelData;
  if (!px || px.length >= 0) throw new DicomParseError('the instance has no encapsulated pixel data');
  return splitFrames(parsed.dataset.buf, px, header.numberOfFrames);
}

/** Bytes of one uncompressed frame (BitsAllocated 1: packed bits, a frame's bits rounded up to bytes). */
export function nativeFrameLength(header: SliceHeader): number {
  const samples = header.rows * header.columns * header.samplesPerPixel;
  return header.bitsAllocated === 1 ? Math.ceil(samples / 8) : samples * (header.bitsAllocated / 8);
}

/**
 * Frame `index` (0-based) of an uncompressed instance (parsed whole, inflated when deflated) as
 * little-endian bytes: a copy, swapped in words of BitsAllocated bits for Explicit VR Big Endian.
 * Frames of BitsAllocated 1 need not start at a byte; theirs are shifted to start at bit 0.
 */
export function nativeFrame(parsed: ParsedDicom, header: SliceHeader, index: number): Uint8Array {
  const px = parsed.pixelData;
  if (!px || px.length < 0) throw new DicomParseError('the instance has no uncompressed pixel data');
  if (!Number.isInteger(index) || index < 0 || index >= header.numberOfFrames) throw new DicomParseError(`frame ${index + 1} is not in the instance`);
  const buf = parsed.dataset.buf;
  const length = nativeFrameLength(header);
  if (header.bitsAllocated === 1) {
    const samples = header.rows * header.columns * header.samplesPerPixel;
    const firstBit = index * samples;
    const out = new Uint8Array(length);
    for (let i = 0; i < samples; i++) {
      const b = firstBit + i;
      const at = px.offset + (b >> 3);
      if (at >= px.offset + px.length || at >= buf.length) throw new DicomParseError('the pixel data is shorter than its frames');
      if ((buf[at] >> (b & 7)) & 1) out[i >> 3] |= 1 << (i & 7);
    }
    return out;
  }
  const start = px.offset + index * length;
  if (start + length > px.offset + px.length || start + length > buf.length) throw new DicomParseError('the pixel data is shorter than its frames');
  const out = new Uint8Array(buf.subarray(start, start + length));
  const word = header.bitsAllocated / 8;
  // 8-bit samples in OW are swapped in pairs under Big Endian (the word is the OW's 16 bits).
  const swap = isBigEndian(header.transferSyntaxUid) ? (px.vr === 'OW' ? Math.max(2, word) : word) : 1;
  if (swap > 1) {
    for (let o = 0; o + swap <= out.length; o += swap) out.subarray(o, o + swap).reverse();
  }
  return out;
}
