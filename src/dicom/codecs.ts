/**
 * Decoders of the compressed transfer syntaxes, behind one function. Each syntax goes to the
 * decoder that was fastest on 512 x 512 CT frames while passing the conformance suites
 * (`npm run bench:decoders` measures them side by side, one thread):
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
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import codecs from 'dcmjs-codecs';
import { DicomParseError } from './parser.js';
import { describeTransferSyntax } from './tags.js';

const require = createRequire(import.meta.url);

export type DecoderName = 'dcmjs-codecs' | 'openjph' | 'openjpeg' | 'charls' | 'libjpeg-turbo';

export const DECODER_NAMES: readonly DecoderName[] = ['dcmjs-codecs', 'openjph', 'openjpeg', 'charls', 'libjpeg-turbo'];

type DcmjsMethod = 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeRle';

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

// ---------------------------------------------------------------------------------------------
// The Emscripten modules of @cornerstonejs/codec-*: what is used of them (they ship no types)

interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  /** Not reported by CharLS (JPEG-LS has no signed samples). */
  isSigned?: boolean;
}

interface WasmDecoder {
  /** A view of `length` bytes of the module's memory, where the codestream is to be copied. */
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  /** The samples: a view of the module's memory (OpenJPH, OpenJPEG) or a copy. */
  getDecodedBuffer(): Uint8Array;
  /** Frees the decoder's memory in the module. */
  delete(): void;
}

type WasmDecoderClass = new () => WasmDecoder;

interface EmscriptenModuleArgument {
  print: (text: string) => void;
  printErr: (text: string) => void;
  instantiateWasm: (imports: WasmImports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) => unknown;
  [name: string]: unknown;
}

type WasmImports = ConstructorParameters<typeof WebAssembly.Instance>[1];

/** WebAssembly.compile, which the type declarations in use here leave out. */
const compileAsync = (bytes: Uint8Array): Promise<WebAssembly.Module> =>
  (WebAssembly as unknown as { compile(bytes: Uint8Array): Promise<WebAssembly.Module> }).compile(bytes);

type EmscriptenFactory = (module: EmscriptenModuleArgument) => Promise<unknown>;

type WasmDecoderName = Exclude<DecoderName, 'dcmjs-codecs'>;

interface WasmCodec {
  /** The Emscripten glue (CommonJS) and the WebAssembly file it instantiates. */
  glue: string;
  wasm: string;
  className: string;
  compiled: WebAssembly.Module | null;
  compiling: Promise<void> | null;
  /** The decoder of the current instance; null before the first frame and after an exception. */
  decoderClass: WasmDecoderClass | null;
  /** Instances made in this thread (one, plus one after each exception). */
  instances: number;
  /** The last line the module printed (OpenJPEG and OpenJPH print their errors). */
  lastMessage: string;
}

const wasmCodec = (glue: string, wasm: string, className: string): WasmCodec => ({
  glue,
  wasm,
  className,
  compiled: null,
  compiling: null,
  decoderClass: null,
  instances: 0,
  lastMessage: '',
});

const WASM: Record<WasmDecoderName, WasmCodec> = {
  openjph: wasmCodec('@cornerstonejs/codec-openjph', '@cornerstonejs/codec-openjph/wasm', 'HTJ2KDecoder'),
  // The decode-only builds: smaller modules, the same decoders. OpenJPEG decodes no syntax here
  // (dcmjs-codecs' OpenJPEG is as fast); bench:decoders compares it.
  openjpeg: wasmCodec('@cornerstonejs/codec-openjpeg/decodewasmjs', '@cornerstonejs/codec-openjpeg/decodewasm', 'J2KDecoder'),
  charls: wasmCodec('@cornerstonejs/codec-charls/decodewasmjs', '@cornerstonejs/codec-charls/decodewasm', 'JpegLSDecoder'),
  'libjpeg-turbo': wasmCodec(
    '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
    '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm',
    'JPEGDecoder',
  ),
};

/** Instantiates a module now, in this thread (synchronously), from its compiled code. */
function wasmDecoderClass(codec: WasmCodec): WasmDecoderClass {
  if (codec.decoderClass) return codec.decoderClass;
  codec.compiled ??= new WebAssembly.Module(readFileSync(require.resolve(codec.wasm)));
  const compiled = codec.compiled;
  const factory = require(codec.glue) as EmscriptenFactory;
  const module: EmscriptenModuleArgument = {
    print: (text) => {
      codec.lastMessage = text;
    },
    printErr: (text) => {
      codec.lastMessage = text;
    },
    // Instantiated synchronously, so the module is complete when the factory returns.
    instantiateWasm: (imports, receive) => {
      const instance = new WebAssembly.Instance(compiled, imports);
      receive(instance, compiled);
      return instance.exports;
    },
  };
  factory(module).catch(() => {});
  const decoderClass = module[codec.className];
  if (typeof decoderClass !== 'function') throw new Error(`${codec.glue} did not provide ${codec.className}`);
  codec.decoderClass = decoderClass as WasmDecoderClass;
  codec.instances++;
  return codec.decoderClass;
}

/**
 * Compiles a module's code (asynchronously, off the event loop), once per thread. A module that
 * cannot be compiled leaves its frames to dcmjs-codecs (the first one says why), so it does not
 * fail initCodecs.
 */
function compileWasm(codec: WasmCodec): Promise<void> {
  codec.compiling ??= Promise.resolve()
    .then(() => compileAsync(readFileSync(require.resolve(codec.wasm))))
    .then(
      (m) => {
        codec.compiled ??= m;
      },
      () => {},
    );
  return codec.compiling;
}

let ready: Promise<void> | null = null;

/**
 * Loads dcmjs-codecs and compiles the modules of the other decoders in use, once per thread;
 * each of those is instantiated on the first frame that needs it. (OpenJPEG, compared by
 * bench:decoders but used for no syntax, is a development dependency, loaded only when asked for.)
 */
export function initCodecs(): Promise<void> {
  if (!ready) {
    const wasm = require.resolve('dcmjs-codecs/build/dcmjs-native-codecs.wasm');
    codecs.log.setLevel('silent');
    ready = Promise.all([
      codecs.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: wasm, logCodecsInfo: false, logCodecsTrace: false }),
      ...[...new Set(Object.values(SYNTAXES).map((e) => e.chosen))]
        .filter((n) => n !== 'dcmjs-codecs')
        .map((n) => compileWasm(WASM[n as WasmDecoderName])),
    ]).then(() => {});
  }
  return ready;
}

/**
 * Instantiates a decoder's module in this thread now rather than on its first frame (for
 * benchmarks and tests); nothing for dcmjs-codecs, which `initCodecs` loads.
 */
export function loadDecoder(name: DecoderName): void {
  if (name !== 'dcmjs-codecs') wasmDecoderClass(WASM[name]);
}

// ---------------------------------------------------------------------------------------------
// Decoding

const usage: Record<DecoderName, number> = { 'dcmjs-codecs': 0, openjph: 0, openjpeg: 0, charls: 0, 'libjpeg-turbo': 0 };

/** Frames decoded in this thread by each decoder (a fall-back counts for dcmjs-codecs). */
export const decoderUsage = (): Readonly<Record<DecoderName, number>> => ({ ...usage });

/** Instances of each module made in this thread: one, and one more after each exception out of it. */
export const decoderInstances = (): Readonly<Record<DecoderName, number>> => ({
  'dcmjs-codecs': codecs.NativeCodecs.isInitialized() ? 1 : 0,
  ...(Object.fromEntries(Object.entries(WASM).map(([name, codec]) => [name, codec.instances])) as Record<WasmDecoderName, number>),
});

/** Bytes of a decoded frame: rows * columns * samplesPerPixel samples of bitsAllocated bits. */
export const decodedFrameBytes = (info: FrameInfo): number => info.rows * info.columns * info.samplesPerPixel * Math.ceil(info.bitsAllocated / 8);

const failure = (ts: string, message: string): DicomParseError =>
  new DicomParseError(`${describeTransferSyntax(ts)} frame cannot be decoded: ${message}`);

/** A decoder declined the frame (another shape than the header's, or an error): dcmjs-codecs is asked. */
class Declined extends Error {}

/** What dcmjs-codecs keeps of its module's exports: the stack pointer's (names as exported). */
interface DcmjsStack {
  wasmemscripten_stack_get_current?: () => number;
  wasm_emscripten_stack_restore?: (pointer: number) => void;
}

/** dcmjs-codecs' decoding of a frame, `pixelRepresentation` as given (HTJ2K: clamping range). */
function dcmjsDecode(ts: string, method: DcmjsMethod, encoded: Uint8Array, info: FrameInfo, pixelRepresentation: number): Uint8Array {
  const context = new codecs.Context({
    width: info.columns,
    height: info.rows,
    bitsAllocated: info.bitsAllocated,
    bitsStored: info.bitsStored,
    samplesPerPixel: info.samplesPerPixel,
    pixelRepresentation,
    planarConfiguration: info.planarConfiguration,
    photometricInterpretation: info.photometricInterpretation,
    encodedBuffer: encoded,
  });
  // dcmjs-codecs reports a codec's failure by throwing through its WebAssembly code, which leaves
  // the module's stack pointer behind; put back, it does not run into the module's memory after
  // a few failures. (What the codec had allocated stays allocated.)
  const api = (codecs.NativeCodecs as unknown as { wasmApi?: DcmjsStack }).wasmApi;
  const stack = api?.wasmemscripten_stack_get_current?.();
  let decoded: Uint8Array | undefined;
  try {
    decoded = codecs.NativeCodecs[method](context).getDecodedBuffer();
  } catch (err) {
    if (stack !== undefined) api?.wasm_emscripten_stack_restore?.(stack);
    throw failure(ts, String((err as Error)?.message ?? err));
  }
  const expected = decodedFrameBytes(info);
  if (!decoded || decoded.length < expected) {
    throw new DicomParseError(
      `${describeTransferSyntax(ts)} frame decoded to ${decoded?.length ?? 0} bytes, ${info.rows}x${info.columns} needs ${expected}`,
    );
  }
  return decoded;
}

/** Whether a JPEG 2000 codestream (not a JP2 file) declares its first component signed; null when it cannot tell. */
function codestreamSigned(encoded: Uint8Array): boolean | null {
  // SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz, then Ssiz of component 0.
  if (encoded.length < 43 || encoded[0] !== 0xff || encoded[1] !== 0x4f || encoded[2] !== 0xff || encoded[3] !== 0x51) return null;
  return (encoded[42] & 0x80) !== 0;
}

/**
 * What is wrong with an RLE frame's header (PS3.5 G.5: the number of segments, then their
 * offsets, 64 bytes in all), or null. dcmjs-codecs decodes any bytes, an empty frame included,
 * to zeros; a frame whose header is not that of the image is refused here instead.
 */
function rleHeaderProblem(encoded: Uint8Array, info: FrameInfo): string | null {
  if (encoded.length < 64) return `${encoded.length} bytes, fewer than the 64 of the RLE header`;
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  const segments = view.getUint32(0, true);
  const expected = Math.ceil(info.bitsAllocated / 8) * info.samplesPerPixel;
  if (segments !== expected) return `the RLE header announces ${segments} segments, ${expected} are needed`;
  let previous = 63;
  for (let i = 0; i < segments; i++) {
    const offset = view.getUint32(4 + 4 * i, true);
    if (offset <= previous || offset >= encoded.length || (i === 0 && offset !== 64)) {
      return `segment ${i + 1} of the RLE header starts at ${offset}, outside the frame's ${encoded.length} bytes or out of order`;
    }
    previous = offset;
  }
  return null;
}

/** Whether a JPEG or JPEG-LS stream ends with EOI (FF D9), before at most two bytes of zero padding. */
function endsWithEoi(encoded: Uint8Array): boolean {
  let end = encoded.length;
  while (end > 0 && end > encoded.length - 2 && encoded[end - 1] === 0) end--;
  return end >= 2 && encoded[end - 2] === 0xff && encoded[end - 1] === 0xd9;
}

/** Whether 16-bit samples include 32767 (the signed maximum, where larger values are clamped). */
function hasSignedMaximum(target: Uint8Array): boolean {
  if (target.byteOffset % 2 === 0) return new Int16Array(target.buffer, target.byteOffset, target.length >> 1).indexOf(32767) >= 0;
  for (let i = 0; i + 1 < target.length; i += 2) if (target[i] === 0xff && target[i + 1] === 0x7f) return true;
  return false;
}

/**
 * Samples decoded signed (clamped to -32768 .. 32767) that are 32767 take the word of the same
 * frame decoded unsigned (clamped to 0 .. 65535): values an encoder wrote out of the signed range
 * become the 16-bit words it was given.
 */
function restoreWords(target: Uint8Array, unsigned: Uint8Array): void {
  for (let i = 0; i + 1 < target.length; i += 2) {
    if (target[i] === 0xff && target[i + 1] === 0x7f) {
      target[i] = unsigned[i];
      target[i + 1] = unsigned[i + 1];
    }
  }
}

function dcmjsInto(ts: string, entry: SyntaxEntry, encoded: Uint8Array, info: FrameInfo, target: Uint8Array, restore = true): void {
  if (entry.dcmjs === 'decodeRle') {
    const problem = rleHeaderProblem(encoded, info);
    if (problem) throw failure(ts, problem);
  }
  if (entry.dcmjs !== 'decodeHtJpeg2000') {
    target.set(dcmjsDecode(ts, entry.dcmjs, encoded, info, info.pixelRepresentation).subarray(0, target.length));
    return;
  }
  // dcmjs-codecs clamps HTJ2K samples to the range of the pixel representation it is given.
  const signed = codestreamSigned(encoded) ?? info.pixelRepresentation === 1;
  target.set(dcmjsDecode(ts, entry.dcmjs, encoded, info, signed ? 1 : 0).subarray(0, target.length));
  if (restore && signed && info.bitsAllocated === 16 && hasSignedMaximum(target))
    restoreWords(target, dcmjsDecode(ts, entry.dcmjs, encoded, info, 0));
}

/**
 * The size a codestream declares, read from its header without decoding it: the SIZ segment of a
 * JPEG 2000 / HTJ2K codestream (width Xsiz - XOsiz, height Ysiz - YOsiz, Csiz components), or the
 * SOF segment of a JPEG or JPEG-LS stream (X, Y, Nf). Null when the header cannot be read.
 */
export function declaredFrameSize(encoded: Uint8Array): { width: number; height: number; components: number } | null {
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  if (encoded.length >= 42 && view.getUint16(0) === 0xff4f && view.getUint16(2) === 0xff51) {
    return {
      width: view.getUint32(8) - view.getUint32(16),
      height: view.getUint32(12) - view.getUint32(20),
      components: view.getUint16(40),
    };
  }
  if (encoded.length < 4 || view.getUint16(0) !== 0xffd8) return null;
  // Segments after SOI until a start-of-frame marker (SOF0-15 but DHT, JPG, DAC; SOF55 for JPEG-LS).
  for (let at = 2; at + 4 <= encoded.length; ) {
    if (encoded[at] !== 0xff) return null;
    const marker = encoded[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = view.getUint16(at + 2);
    const sof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (sof) {
      if (at + 10 > encoded.length) return null;
      return { height: view.getUint16(at + 5), width: view.getUint16(at + 7), components: encoded[at + 9] };
    }
    if (length < 2) return null;
    at += 2 + length;
  }
  return null;
}

function wasmInto(
  ts: string,
  entry: SyntaxEntry,
  name: WasmDecoderName,
  encoded: Uint8Array,
  info: FrameInfo,
  target: Uint8Array,
  restore = true,
): void {
  const codec = WASM[name];
  const bytesPerSample = info.bitsAllocated / 8;
  if (info.samplesPerPixel !== 1 || (bytesPerSample !== 1 && bytesPerSample !== 2)) throw new Declined('not one sample of 8 or 16 bits');
  // This CharLS build spends seconds (20 s for a 512 x 512 frame) decoding to the end of a
  // truncated stream before it fails; dcmjs-codecs' fails at once.
  if (name === 'charls' && !endsWithEoi(encoded)) throw new Declined('the stream has no end-of-image marker (truncated)');
  // A decoder allocates what the stream's header declares before anything checks it, and
  // WebAssembly memory never shrinks: a tiny frame claiming 16000 x 16000 would pin half a
  // gigabyte in the worker for good. Decline unless the header agrees with the image.
  const declared = declaredFrameSize(encoded);
  if (!declared || declared.width !== info.columns || declared.height !== info.rows || declared.components !== 1) {
    const what = declared ? `${declared.width}x${declared.height}, ${declared.components} components` : 'no readable header';
    throw new Declined(`the stream declares ${what}; the image is ${info.columns}x${info.rows}, 1 component`);
  }
  let decoder: WasmDecoder | null = null;
  let signed = false;
  try {
    decoder = new (wasmDecoderClass(codec))();
    codec.lastMessage = '';
    decoder.getEncodedBuffer(encoded.length).set(encoded);
    decoder.decode();
    const frame = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    if (
      frame.width !== info.columns ||
      frame.height !== info.rows ||
      frame.componentCount !== 1 ||
      (frame.bitsPerSample > 8 ? 2 : 1) !== bytesPerSample ||
      decoded.length !== target.length
    ) {
      const why = codec.lastMessage || `${frame.width}x${frame.height}, ${frame.componentCount} components of ${frame.bitsPerSample} bits`;
      throw new Declined(why);
    }
    target.set(decoded);
    signed = frame.isSigned === true;
  } catch (err) {
    if (err instanceof Declined) throw err;
    // An exception (a C++ one arrives as a number, a pointer into the module) left the module's
    // stack pointer where the throw happened, so a few more would corrupt its memory: the next
    // frame gets a fresh instance.
    codec.decoderClass = null;
    decoder = null;
    throw new Declined(err instanceof Error ? err.message : codec.lastMessage || 'the decoder failed');
  } finally {
    decoder?.delete();
  }
  if (restore && signed && bytesPerSample === 2 && hasSignedMaximum(target)) restoreWords(target, dcmjsDecode(ts, entry.dcmjs, encoded, info, 0));
}

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
    dcmjsInto(transferSyntaxUid, entry, encoded, info, target, restore);
    return;
  }
  try {
    wasmInto(transferSyntaxUid, entry, name, encoded, info, target, restore);
  } catch (err) {
    throw err instanceof Declined ? failure(transferSyntaxUid, `${name}: ${err.message}`) : err;
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
      wasmInto(transferSyntaxUid, entry, entry.chosen, encoded, info, target);
      usage[entry.chosen]++;
      return;
    } catch (err) {
      if (!(err instanceof Declined)) throw err;
    }
  }
  dcmjsInto(transferSyntaxUid, entry, encoded, info, target);
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
