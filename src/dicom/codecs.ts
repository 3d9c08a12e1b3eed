/**
 * Decoders of the compressed transfer syntaxes, behind one function. This file holds the choice
 * (which decoder each syntax goes to, and the fall-back); each family's adapter is under codecs/:
 * dcmjs.ts (dcmjs-codecs), wasm.ts (the @cornerstonejs modules), frame.ts (what they share).
 *
 * Each syntax goes to the decoder that was fastest on 512 x 512 CT frames while passing the
 * conformance suites (`npm run bench:decoders` measures them side by side, one thread):
 *
 * - HTJ2K (.201, .202, .203): OpenJPH, @cornerstonejs/codec-openjph (1.6 to 1.9 times dcmjs-codecs);
 * - JPEG-LS (.80, .81): CharLS, @cornerstonejs/codec-charls (about twice as fast);
 * - JPEG Baseline 8-bit (.50): libjpeg-turbo, @cornerstonejs/codec-libjpeg-turbo-8bit (about 1.15 times);
 * - JPEG 2000 (.90, .91), JPEG Extended 12-bit (.51), JPEG Lossless (.57, .70) and RLE (.5):
 *   dcmjs-codecs (one WebAssembly module holding libjpeg-turbo, CharLS, OpenJPEG, OpenJPH and an
 *   RLE codec). @cornerstonejs/codec-openjpeg decodes JPEG 2000 no faster (the same OpenJPEG),
 *   and libjpeg-turbo's 8-bit build refuses 12-bit and lossless JPEG.
 *
 * dcmjs-codecs also stands behind the other decoders: a frame another decoder refuses, or decodes
 * to another shape than the header's (size, samples, bytes per sample), is decoded again by
 * dcmjs-codecs, so choosing a faster decoder never refuses a frame that was read before.
 *
 * Loading, once per thread: `initCodecs` loads dcmjs-codecs and compiles the other modules (V8
 * compiles WebAssembly functions lazily, so this is cheap); each is instantiated on the first
 * frame of its syntax (synchronously, 10 to 30 ms) and kept. None of these modules catches C++
 * exceptions: one thrown on a corrupt frame unwinds the WebAssembly stack without restoring its
 * stack pointer, and after a few of them a module corrupts its own memory (wrong results, then
 * endless loops). So a @cornerstonejs module that has thrown is replaced by a fresh instance for
 * the next frame, and dcmjs-codecs' stack pointer is put back after each failure.
 *
 * Signed HTJ2K (and JPEG 2000): the codestream says whether samples are signed, and the decoders
 * clamp decoded values to that range. OpenJPH's encoder, given raw 16-bit input
 * (`ojph_compress -i x.yuv -signed true`), reads the words as unsigned: its codestreams hold
 * 0 .. 65535 under a signed 16-bit header, so every negative sample decodes as 32767, with either
 * decoder. Frames holding 32767 are therefore decoded a second time clamped to 0 .. 65535
 * (dcmjs-codecs told the samples are unsigned), and the samples that were 32767 take the words of
 * that decoding: the two's complement the encoder was given. Conformant codestreams decode
 * directly (a real 32767 is 32767 both ways). Tests cover both (test/conformance/codecs.test.ts).
 */
import { type DcmjsMethod, dcmjsInstances, dcmjsInto, initDcmjs } from './codecs/dcmjs.js';
import { Declined, decodedFrameBytes, type FrameInfo, frameFailure } from './codecs/frame.js';
import { compileDecoder, loadWasmDecoder, type WasmDecoderName, wasmInstances, wasmInto } from './codecs/wasm.js';
import { DicomParseError } from './parser.js';
import { describeTransferSyntax } from './tags.js';

export { decodedFrameBytes, type FrameInfo, monochromeFrameInfo } from './codecs/frame.js';
export { declaredFrameSize } from './codecs/wasm.js';

export type DecoderName = 'dcmjs-codecs' | WasmDecoderName;

export const DECODER_NAMES: readonly DecoderName[] = ['dcmjs-codecs', 'openjph', 'openjpeg', 'charls', 'libjpeg-turbo'];

interface SyntaxEntry {
  /** dcmjs-codecs' method for the syntax. */
  dcmjs: DcmjsMethod;
  /** The decoder used (dcmjs-codecs unless another was faster and conformant). */
  chosen: DecoderName;
  /** Decoders that read the syntax, the chosen one included (compared by bench/decoders.ts). */
  candidates: readonly DecoderName[];
}

const jpeg = (chosen: DecoderName = 'dcmjs-codecs'): SyntaxEntry => ({ dcmjs: 'decodeJpeg', chosen, candidates: ['dcmjs-codecs', 'libjpeg-turbo'] });
const jpegLs: SyntaxEntry = { dcmjs: 'decodeJpegLs', chosen: 'charls', candidates: ['dcmjs-codecs', 'charls'] };
const j2k: SyntaxEntry = { dcmjs: 'decodeJpeg2000', chosen: 'dcmjs-codecs', candidates: ['dcmjs-codecs', 'openjpeg'] };
const htj2k: SyntaxEntry = { dcmjs: 'decodeHtJpeg2000', chosen: 'openjph', candidates: ['dcmjs-codecs', 'openjph', 'openjpeg'] };

const SYNTAXES: Record<string, SyntaxEntry> = {
  '1.2.840.10008.1.2.4.50': jpeg('libjpeg-turbo'),
  // libjpeg-turbo's 8-bit build refuses 12-bit and lossless JPEG.
  '1.2.840.10008.1.2.4.51': jpeg(),
  '1.2.840.10008.1.2.4.57': jpeg(),
  '1.2.840.10008.1.2.4.70': jpeg(),
  '1.2.840.10008.1.2.4.80': jpegLs,
  '1.2.840.10008.1.2.4.81': jpegLs,
  '1.2.840.10008.1.2.4.90': j2k,
  '1.2.840.10008.1.2.4.91': j2k,
  '1.2.840.10008.1.2.4.201': htj2k,
  '1.2.840.10008.1.2.4.202': htj2k,
  '1.2.840.10008.1.2.4.203': htj2k,
  '1.2.840.10008.1.2.5': { dcmjs: 'decodeRle', chosen: 'dcmjs-codecs', candidates: ['dcmjs-codecs'] },
};

export const canDecode = (transferSyntaxUid: string): boolean => transferSyntaxUid in SYNTAXES;

/** The decoder frames of this syntax go to (before any fall-back to dcmjs-codecs). */
export const decoderFor = (transferSyntaxUid: string): DecoderName | undefined => SYNTAXES[transferSyntaxUid]?.chosen;

/** Every decoder that reads this syntax (the chosen one included). */
export const candidateDecoders = (transferSyntaxUid: string): readonly DecoderName[] => SYNTAXES[transferSyntaxUid]?.candidates ?? [];

let ready: Promise<void> | null = null;

/**
 * Loads dcmjs-codecs and compiles the modules of the other decoders in use, once per thread;
 * each of those is instantiated on the first frame that needs it. (OpenJPEG, compared by
 * bench:decoders but used for no syntax, is a development dependency, loaded only when asked for.)
 */
export function initCodecs(): Promise<void> {
  if (!ready) {
    ready = Promise.all([
      initDcmjs(),
      ...[...new Set(Object.values(SYNTAXES).map((e) => e.chosen))]
        .filter((n) => n !== 'dcmjs-codecs')
        .map((n) => compileDecoder(n as WasmDecoderName)),
    ]).then(() => {});
  }
  return ready;
}

/**
 * Instantiates a decoder's module in this thread now rather than on its first frame (for
 * benchmarks and tests); nothing for dcmjs-codecs, which `initCodecs` loads.
 */
export function loadDecoder(name: DecoderName): void {
  if (name !== 'dcmjs-codecs') loadWasmDecoder(name);
}

// ---------------------------------------------------------------------------------------------
// Decoding

const usage: Record<DecoderName, number> = { 'dcmjs-codecs': 0, openjph: 0, openjpeg: 0, charls: 0, 'libjpeg-turbo': 0 };

/** Frames decoded in this thread by each decoder (a fall-back counts for dcmjs-codecs). */
export const decoderUsage = (): Readonly<Record<DecoderName, number>> => ({ ...usage });

/** Instances of each module made in this thread: one, and one more after each exception out of it. */
export const decoderInstances = (): Readonly<Record<DecoderName, number>> => ({
  'dcmjs-codecs': dcmjsInstances(),
  ...wasmInstances(),
});

export interface DecodeWithOptions {
  /** Out-of-range signed samples (decoded as 32767) get their 16-bit words back; true by default, as decodeFrame does. */
  restoreOutOfRange?: boolean;
}

/**
 * Decodes one frame with a given decoder into `target` (exactly `decodedFrameBytes(info)` bytes),
 * without falling back to another: for benchmarks and tests. Throws DicomParseError on failure.
 */
export function decodeFrameWith(
  name: DecoderName,
  transferSyntaxUid: string,
  encoded: Uint8Array,
  info: FrameInfo,
  target: Uint8Array,
  options: DecodeWithOptions = {},
): void {
  const restore = options.restoreOutOfRange ?? true;
  const entry = SYNTAXES[transferSyntaxUid];
  if (!entry) throw new DicomParseError(`transfer syntax ${describeTransferSyntax(transferSyntaxUid)} has no decoder`);
  if (target.length !== decodedFrameBytes(info)) {
    throw new DicomParseError(`a ${info.rows}x${info.columns} frame needs ${decodedFrameBytes(info)} bytes, the target has ${target.length}`);
  }
  if (name === 'dcmjs-codecs') {
    dcmjsInto(transferSyntaxUid, entry.dcmjs, encoded, info, target, restore);
    return;
  }
  try {
    wasmInto(transferSyntaxUid, entry.dcmjs, name, encoded, info, target, restore);
  } catch (err) {
    throw err instanceof Declined ? frameFailure(transferSyntaxUid, `${name}: ${err.message}`) : err;
  }
}

/**
 * Decodes one frame into `target`, which must be exactly `decodedFrameBytes(info)` bytes: little-
 * endian samples of `bitsAllocated` bits, rows * columns * samplesPerPixel of them. `initCodecs`
 * must have completed. Throws DicomParseError for an unknown syntax, a failure, or a target of
 * the wrong size.
 */
export function decodeFrameInto(transferSyntaxUid: string, encoded: Uint8Array, info: FrameInfo, target: Uint8Array): void {
  const entry = SYNTAXES[transferSyntaxUid];
  if (!entry) throw new DicomParseError(`transfer syntax ${describeTransferSyntax(transferSyntaxUid)} has no decoder`);
  if (target.length !== decodedFrameBytes(info)) {
    throw new DicomParseError(`a ${info.rows}x${info.columns} frame needs ${decodedFrameBytes(info)} bytes, the target has ${target.length}`);
  }
  if (entry.chosen !== 'dcmjs-codecs') {
    try {
      wasmInto(transferSyntaxUid, entry.dcmjs, entry.chosen, encoded, info, target);
      usage[entry.chosen]++;
      return;
    } catch (err) {
      if (!(err instanceof Declined)) throw err;
    }
  }
  dcmjsInto(transferSyntaxUid, entry.dcmjs, encoded, info, target);
  usage['dcmjs-codecs']++;
}

/**
 * Decodes one frame to a new array of little-endian samples of `bitsAllocated` bits
 * (rows * columns * samplesPerPixel samples). `initCodecs` must have completed.
 * Throws DicomParseError for an unknown syntax, a failure, or an output of the wrong size.
 */
export function decodeFrame(transferSyntaxUid: string, encoded: Uint8Array, info: FrameInfo): Uint8Array {
  const target = new Uint8Array(decodedFrameBytes(info));
  decodeFrameInto(transferSyntaxUid, encoded, info, target);
  return target;
}
