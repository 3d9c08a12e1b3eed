/**
 * Decoders of the compressed transfer syntaxes, behind one function: dcmjs-codecs (one
 * WebAssembly module holding libjpeg-turbo, CharLS, OpenJPEG, OpenJPH and an RLE codec).
 *
 * HTJ2K and signed samples: OpenJPH as built there returns 32767 for every negative signed
 * 16-bit sample. Decoded as unsigned instead (the decoder context says PixelRepresentation 0),
 * the 16-bit words it returns are the samples' two's complement, which the loader then reads as
 * signed with BitsStored (sign extension included). Tests prove it on HTJ2K made by OpenJPH's
 * own encoder (test/conformance/codecs.test.ts).
 */
import { createRequire } from 'node:module';
import codecs from 'dcmjs-codecs';
import { DicomParseError } from './parser.js';
import { describeTransferSyntax } from './tags.js';

type Method = 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeRle';

const METHODS: Record<string, Method> = {
  '1.2.840.10008.1.2.4.50': 'decodeJpeg',
  '1.2.840.10008.1.2.4.51': 'decodeJpeg',
  '1.2.840.10008.1.2.4.57': 'decodeJpeg',
  '1.2.840.10008.1.2.4.70': 'decodeJpeg',
  '1.2.840.10008.1.2.4.80': 'decodeJpegLs',
  '1.2.840.10008.1.2.4.81': 'decodeJpegLs',
  '1.2.840.10008.1.2.4.90': 'decodeJpeg2000',
  '1.2.840.10008.1.2.4.91': 'decodeJpeg2000',
  '1.2.840.10008.1.2.4.201': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.4.202': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.4.203': 'decodeHtJpeg2000',
  '1.2.840.10008.1.2.5': 'decodeRle',
};

export const canDecode = (transferSyntaxUid: string): boolean => transferSyntaxUid in METHODS;

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

let ready: Promise<void> | null = null;

/** Loads the WebAssembly module once per thread. */
export function initCodecs(): Promise<void> {
  if (!ready) {
    const wasm = createRequire(import.meta.url).resolve('dcmjs-codecs/build/dcmjs-native-codecs.wasm');
    ready = codecs.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: wasm, logCodecsInfo: false, logCodecsTrace: false });
    codecs.log.setLevel('silent');
  }
  return ready;
}

/**
 * Decodes one frame to little-endian samples of `bitsAllocated` bits
 * (rows * columns * samplesPerPixel samples). `initCodecs` must have completed.
 * Throws DicomParseError for an unknown syntax, a failure, or an output of the wrong size.
 */
export function decodeFrame(transferSyntaxUid: string, encoded: Uint8Array, info: FrameInfo): Uint8Array {
  const method = METHODS[transferSyntaxUid];
  if (!method) throw new DicomParseError(`transfer syntax ${describeTransferSyntax(transferSyntaxUid)} has no decoder`);
  const context = new codecs.Context({
    width: info.columns,
    height: info.rows,
    bitsAllocated: info.bitsAllocated,
    bitsStored: info.bitsStored,
    samplesPerPixel: info.samplesPerPixel,
    pixelRepresentation: method === 'decodeHtJpeg2000' ? 0 : info.pixelRepresentation,
    planarConfiguration: info.planarConfiguration,
    photometricInterpretation: info.photometricInterpretation,
    encodedBuffer: encoded,
  });
  let decoded: Uint8Array | undefined;
  try {
    decoded = codecs.NativeCodecs[method](context).getDecodedBuffer();
  } catch (err) {
    throw new DicomParseError(`${describeTransferSyntax(transferSyntaxUid)} frame cannot be decoded: ${(err as Error).message ?? err}`);
  }
  const expected = info.rows * info.columns * info.samplesPerPixel * Math.ceil(info.bitsAllocated / 8);
  if (!decoded || decoded.length < expected) {
    throw new DicomParseError(
      `${describeTransferSyntax(transferSyntaxUid)} frame decoded to ${decoded?.length ?? 0} bytes, ${info.rows}x${info.columns} needs ${expected}`,
    );
  }
  return decoded.length === expected ? decoded : decoded.subarray(0, expected);
}
