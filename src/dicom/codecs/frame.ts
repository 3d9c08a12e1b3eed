/**
 * What the decoders of codecs.ts share: the description of a frame to decode, the bytes it
 * decodes to, the errors of a failed frame, and the repair of signed 16-bit samples that an
 * encoder wrote out of range (see "Signed HTJ2K" in codecs.ts).
 */
import { DicomParseError } from '../parser.js';
import { describeTransferSyntax } from '../tags.js';

export interface FrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  planarConfiguration: number;
}

/** The FrameInfo of a monochrome image of one sample a pixel (benchmarks and tests describe frames with it). */
export const monochromeFrameInfo = (rows: number, columns: number, s: { bitsAllocated: number; bitsStored: number; signed: boolean }): FrameInfo => ({
  rows,
  columns,
  bitsAllocated: s.bitsAllocated,
  bitsStored: s.bitsStored,
  pixelRepresentation: s.signed ? 1 : 0,
  samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2',
  planarConfiguration: 0,
});

/** Bytes of a decoded frame: rows * columns * samplesPerPixel samples of bitsAllocated bits. */
export const decodedFrameBytes = (info: FrameInfo): number => info.rows * info.columns * info.samplesPerPixel * Math.ceil(info.bitsAllocated / 8);

/** The error of a frame that cannot be decoded, naming its transfer syntax. */
export const frameFailure = (ts: string, message: string): DicomParseError =>
  new DicomParseError(`${describeTransferSyntax(ts)} frame cannot be decoded: ${message}`);

/** A decoder declined the frame (another shape than the header's, or an error): dcmjs-codecs is asked. */
export class Declined extends Error {}

/** Whether 16-bit samples include 32767 (the signed maximum, where larger values are clamped). */
export function hasSignedMaximum(target: Uint8Array): boolean {
  if (target.byteOffset % 2 === 0) return new Int16Array(target.buffer, target.byteOffset, target.length >> 1).indexOf(32767) >= 0;
  for (let i = 0; i + 1 < target.length; i += 2) if (target[i] === 0xff && target[i + 1] === 0x7f) return true;
  return false;
}

/**
 * Samples decoded signed (clamped to -32768 .. 32767) that are 32767 take the word of the same
 * frame decoded unsigned (clamped to 0 .. 65535): values an encoder wrote out of the signed range
 * become the 16-bit words it was given.
 */
export function restoreWords(target: Uint8Array, unsigned: Uint8Array): void {
  for (let i = 0; i + 1 < target.length; i += 2) {
    if (target[i] === 0xff && target[i + 1] === 0x7f) {
      target[i] = unsigned[i];
      target[i + 1] = unsigned[i + 1];
    }
  }
}
