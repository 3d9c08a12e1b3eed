/**
 * A baseline JPEG writer for rendered frames (PS3.18's default rendered media type): libjpeg-turbo's
 * encoder, from the WebAssembly build of @cornerstonejs/codec-libjpeg-turbo-8bit the server
 * already decodes with. Grey (1 component) or RGB (3, with 4:4:4 sampling so thin coloured
 * lines keep their colour). The module is compiled on first use and kept; encoding runs on the
 * calling thread (a 512 x 512 frame takes about a millisecond).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { instantiateEmscripten } from '../dicom/codecs/wasm.js';

const require = createRequire(import.meta.url);

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

interface Encoder {
  getDecodedBuffer(info: FrameInfo): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  encode(): void;
  setQuality(quality: number): void;
  setSubSampling?(subSampling: number): void;
  delete(): void;
}

type EncoderClass = new () => Encoder;

let encoderClass: EncoderClass | null = null;

function loadEncoder(): EncoderClass {
  if (encoderClass) return encoderClass;
  const compiled = new WebAssembly.Module(readFileSync(require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/wasm')));
  const module = instantiateEmscripten('@cornerstonejs/codec-libjpeg-turbo-8bit/wasmjs', compiled);
  if (typeof module.JPEGEncoder !== 'function') throw new Error('libjpeg-turbo did not provide its JPEG encoder');
  encoderClass = module.JPEGEncoder as EncoderClass;
  return encoderClass;
}

/** The JPEG of an 8-bit grey (channels 1) or RGB (3) image at `quality` 1..100. */
export function encodeJpeg(pixels: Uint8Array, width: number, height: number, channels: 1 | 3, quality = 90): Buffer {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 && width <= 65535 && height <= 65535)) {
    throw new RangeError(`JPEG size ${width}x${height} is not valid`);
  }
  if (pixels.length < width * height * channels) throw new RangeError(`expected ${width * height * channels} samples, got ${pixels.length}`);
  const Encoder = loadEncoder();
  const encoder = new Encoder();
  try {
    encoder
      .getDecodedBuffer({ width, height, bitsPerSample: 8, componentCount: channels, isSigned: false })
      .set(pixels.subarray(0, width * height * channels));
    encoder.setQuality(Math.min(100, Math.max(1, Math.round(quality))));
    // 4:4:4 (libjpeg-turbo's TJSAMP_444 is 0).
    if (channels === 3) encoder.setSubSampling?.(0);
    encoder.encode();
    return Buffer.from(encoder.getEncodedBuffer());
  } finally {
    encoder.delete();
  }
}
