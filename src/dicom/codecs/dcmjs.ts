/**
 * The dcmjs-codecs adapter (see codecs.ts): one WebAssembly module holding libjpeg-turbo, CharLS,
 * OpenJPEG, OpenJPH and an RLE codec, loaded once per thread, which decodes every syntax and
 * stands behind the other decoders. Its stack pointer is put back after each failure.
 */
import { createRequire } from 'node:module';
import codecs from 'dcmjs-codecs';
import { DicomParseError } from '../parser.js';
import { describeTransferSyntax } from '../tags.js';
import { decodedFrameBytes, type FrameInfo, frameFailure, hasSignedMaximum, restoreWords } from './frame.js';

const require = createRequire(import.meta.url);

export type DcmjsMethod = 'decodeJpeg' | 'decodeJpegLs' | 'decodeJpeg2000' | 'decodeHtJpeg2000' | 'decodeRle';

/** Loads dcmjs-codecs' module in this thread (initCodecs does, once). */
export function initDcmjs(): Promise<void> {
  const wasm = require.resolve('dcmjs-codecs/build/dcmjs-native-codecs.wasm');
  codecs.log.setLevel('silent');
  return codecs.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: wasm, logCodecsInfo: false, logCodecsTrace: false });
}

/** Instances of dcmjs-codecs' module in this thread: 1 once it is loaded. */
export const dcmjsInstances = (): number => (codecs.NativeCodecs.isInitialized() ? 1 : 0);

/** What dcmjs-codecs keeps of its module's exports: the stack pointer's (names as exported). */
interface DcmjsStack {
  wasmemscripten_stack_get_current?: () => number;
  wasm_emscripten_stack_restore?: (pointer: number) => void;
}

/** dcmjs-codecs' decoding of a frame, `pixelRepresentation` as given (HTJ2K: clamping range). */
export function dcmjsDecode(ts: string, method: DcmjsMethod, encoded: Uint8Array, info: FrameInfo, pixelRepresentation: number): Uint8Array {
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
    throw frameFailure(ts, String((err as Error)?.message ?? err));
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

/**
 * Decodes a frame with dcmjs-codecs' `method` into `target` (RLE headers checked first; HTJ2K
 * decoded in the range its codestream declares, out-of-range signed samples restored unless
 * `restore` is false). Throws DicomParseError.
 */
export function dcmjsInto(ts: string, method: DcmjsMethod, encoded: Uint8Array, info: FrameInfo, target: Uint8Array, restore = true): void {
  if (method === 'decodeRle') {
    const problem = rleHeaderProblem(encoded, info);
    if (problem) throw frameFailure(ts, problem);
  }
  if (method !== 'decodeHtJpeg2000') {
    target.set(dcmjsDecode(ts, method, encoded, info, info.pixelRepresentation).subarray(0, target.length));
    return;
  }
  // dcmjs-codecs clamps HTJ2K samples to the range of the pixel representation it is given.
  const signed = codestreamSigned(encoded) ?? info.pixelRepresentation === 1;
  target.set(dcmjsDecode(ts, method, encoded, info, signed ? 1 : 0).subarray(0, target.length));
  if (restore && signed && info.bitsAllocated === 16 && hasSignedMaximum(target)) restoreWords(target, dcmjsDecode(ts, method, encoded, info, 0));
}
