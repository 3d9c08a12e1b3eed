/**
 * The adapter of the Emscripten modules of @cornerstonejs/codec-* (OpenJPH, OpenJPEG, CharLS,
 * libjpeg-turbo's 8-bit build; see codecs.ts): each compiled once per thread, instantiated on
 * its first frame, and replaced by a fresh instance after an exception. A frame whose stream
 * header does not agree with the image, or that the module cannot decode, is declined (Declined)
 * so that codecs.ts asks dcmjs-codecs.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type DcmjsMethod, dcmjsDecode } from './dcmjs.js';
import { Declined, type FrameInfo, hasSignedMaximum, restoreWords } from './frame.js';

const require = createRequire(import.meta.url);

export type WasmDecoderName = 'openjph' | 'openjpeg' | 'charls' | 'libjpeg-turbo';

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

/**
 * Runs an Emscripten glue module (CommonJS) on `compiled` code, instantiated synchronously so the
 * module is complete when this returns; what it prints goes to `print`. Returns the module
 * object with its embind classes.
 */
export function instantiateEmscripten(glue: string, compiled: WebAssembly.Module, print: (text: string) => void = () => {}): Record<string, unknown> {
  const factory = require(glue) as EmscriptenFactory;
  const module: EmscriptenModuleArgument = {
    print,
    printErr: print,
    instantiateWasm: (imports, receive) => {
      const instance = new WebAssembly.Instance(compiled, imports);
      receive(instance, compiled);
      return instance.exports;
    },
  };
  factory(module).catch(() => {});
  return module;
}

/** Instantiates a module now, in this thread (synchronously), from its compiled code. */
function wasmDecoderClass(codec: WasmCodec): WasmDecoderClass {
  if (codec.decoderClass) return codec.decoderClass;
  codec.compiled ??= new WebAssembly.Module(readFileSync(require.resolve(codec.wasm)));
  const module = instantiateEmscripten(codec.glue, codec.compiled, (text) => {
    codec.lastMessage = text;
  });
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

/** Compiles module `name`'s code in this thread, once (see compileWasm). */
export const compileDecoder = (name: WasmDecoderName): Promise<void> => compileWasm(WASM[name]);

/** Instantiates module `name` in this thread now rather than on its first frame. */
export function loadWasmDecoder(name: WasmDecoderName): void {
  wasmDecoderClass(WASM[name]);
}

/** Instances of each module made in this thread: one, and one more after each exception out of it. */
export const wasmInstances = (): Record<WasmDecoderName, number> =>
  Object.fromEntries(Object.entries(WASM).map(([name, codec]) => [name, codec.instances])) as Record<WasmDecoderName, number>;

// ---------------------------------------------------------------------------------------------
// Decoding

/** Whether a JPEG or JPEG-LS stream ends with EOI (FF D9), before at most two bytes of zero padding. */
function endsWithEoi(encoded: Uint8Array): boolean {
  let end = encoded.length;
  while (end > 0 && end > encoded.length - 2 && encoded[end - 1] === 0) end--;
  return end >= 2 && encoded[end - 2] === 0xff && encoded[end - 1] === 0xd9;
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

/**
 * Decodes a frame with module `name` into `target`; throws Declined when the module cannot or will
 * not (the frame's shape, a truncated JPEG-LS stream, a stream header that disagrees with the
 * image, an exception). Signed samples out of range are restored with dcmjs-codecs' `method`
 * unless `restore` is false.
 */
export function wasmInto(
  ts: string,
  method: DcmjsMethod,
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
  if (restore && signed && bytesPerSample === 2 && hasSignedMaximum(target)) restoreWords(target, dcmjsDecode(ts, method, encoded, info, 0));
}
