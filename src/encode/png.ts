/**
 * An 8-bit PNG writer (greyscale, colour type 0, and RGB, colour type 2) on node:zlib, per the PNG
 * specification: signature, IHDR, one IDAT, IEND, each chunk with its CRC-32.
 *
 * Rows are filtered with one filter for the whole image (Up by default) and deflated with the
 * RLE strategy at level 1 by default; bench/render.ts compares the choices on CT. `encodePng`
 * deflates on the libuv thread pool (off the event loop), `encodePngSync` on the calling thread.
 */
import { constants, crc32, deflate, deflateSync, type ZlibOptions } from 'node:zlib';

export type PngFilter = 'none' | 'sub' | 'up';

export interface PngOptions {
  filter?: PngFilter;
  level?: number;
  strategy?: number;
}

export const DEFAULT_PNG_OPTIONS: Required<PngOptions> = { filter: 'up', level: 1, strategy: constants.Z_RLE };

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const FILTER_TYPE: Record<PngFilter, number> = { none: 0, sub: 1, up: 2 };

/** Scanlines with their filter byte: (1 + width) * height bytes. */
export function filterRows(pixels: Uint8Array, width: number, height: number, filter: PngFilter): Buffer {
  if (pixels.length < width * height) throw new RangeError(`expected ${width * height} pixels, got ${pixels.length}`);
  const stride = width + 1;
  const out = Buffer.allocUnsafe(stride * height);
  const type = FILTER_TYPE[filter];
  for (let y = 0; y < height; y++) {
    const o = y * stride;
    const s = y * width;
    out[o] = type;
    if (filter === 'none' || (filter === 'up' && y === 0)) {
      out.set(pixels.subarray(s, s + width), o + 1);
    } else if (filter === 'up') {
      for (let x = 0; x < width; x++) out[o + 1 + x] = pixels[s + x] - pixels[s - width + x];
    } else {
      out[o + 1] = pixels[s];
      for (let x = 1; x < width; x++) out[o + 1 + x] = pixels[s + x] - pixels[s + x - 1];
    }
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.allocUnsafe(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4, 8))), 0);
  return Buffer.concat([head, data, crc]);
}

/** PNG colour types written here: 0 greyscale, 2 RGB (truecolour). */
type ColourType = 0 | 2;

function assemble(width: number, height: number, idat: Uint8Array, colourType: ColourType = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = colourType;
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);
}

function zlibOptions(o: PngOptions): ZlibOptions {
  return { level: o.level ?? DEFAULT_PNG_OPTIONS.level, strategy: o.strategy ?? DEFAULT_PNG_OPTIONS.strategy };
}

/** Deflates filtered scanlines on the thread pool and wraps them into a PNG. */
function deflateToPng(rows: Buffer, width: number, height: number, options: PngOptions, colourType: ColourType = 0): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflate(rows, zlibOptions(options), (err, idat) => (err ? reject(err) : resolve(assemble(width, height, idat, colourType)))),
  );
}

function checkSize(width: number, height: number): void {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`PNG size ${width}x${height} is not valid`);
  }
}

/**
 * A buffer for scanlines: (width + 1) * height bytes; put pixel (x, y) at 1 + y * (width + 1) + x
 * (row placement stride width + 1, offset 1), then encode with `encodeScanlines`.
 */
export const scanlineBuffer = (width: number, height: number): Buffer => Buffer.allocUnsafe((width + 1) * height);

/**
 * Applies the Up filter in place to scanlines holding raw pixels, from the last row up (each
 * row minus the raw row above it), and sets every filter byte.
 */
export function upFilterInPlace(rows: Uint8Array, width: number, height: number): void {
  const stride = width + 1;
  const view = new DataView(rows.buffer, rows.byteOffset, rows.byteLength);
  for (let y = height - 1; y > 0; y--) {
    const o = y * stride + 1;
    const above = o - stride;
    rows[o - 1] = FILTER_TYPE.up;
    // Eight bytes a step, as two 32-bit words each holding four byte lanes (about 3x faster
    // than byte by byte; rows start at odd offsets, hence DataView rather than a Uint32Array).
    let x = 0;
    for (; x + 8 <= width; x += 8) {
      const p = o + x;
      const q = above + x;
      view.setUint32(p, subtractBytes(view.getUint32(p, true), view.getUint32(q, true)), true);
      view.setUint32(p + 4, subtractBytes(view.getUint32(p + 4, true), view.getUint32(q + 4, true)), true);
    }
    for (; x < width; x++) rows[o + x] -= rows[above + x];
  }
  rows[0] = FILTER_TYPE.up;
}

/**
 * a - b in each of four byte lanes, modulo 256, with no borrow between lanes: each lane of a is
 * given its top bit and each lane of b loses its own, so no lane can borrow from the next; the
 * top bits are then put right (a's top bit xor b's, xor the borrow the lane took from it).
 */
const subtractBytes = (a: number, b: number): number => (((a | 0x80808080) - (b & 0x7f7f7f7f)) ^ ((a ^ ~b) & 0x80808080)) >>> 0;

/** Encodes scanlines filled as `scanlineBuffer` says (Up filter, deflate off the event loop). */
export function encodeScanlines(rows: Buffer, width: number, height: number, options: Omit<PngOptions, 'filter'> = {}): Promise<Buffer> {
  checkSize(width, height);
  upFilterInPlace(rows, width, height);
  return deflateToPng(rows, width, height, options);
}

/** `encodeScanlines` on the calling thread (for worker threads, where blocking is the point). */
export function encodeScanlinesSync(rows: Buffer, width: number, height: number, options: Omit<PngOptions, 'filter'> = {}): Buffer {
  checkSize(width, height);
  upFilterInPlace(rows, width, height);
  return assemble(width, height, deflateSync(rows, zlibOptions(options)));
}

export function encodePngSync(pixels: Uint8Array, width: number, height: number, options: PngOptions = {}): Buffer {
  checkSize(width, height);
  const rows = filterRows(pixels, width, height, options.filter ?? DEFAULT_PNG_OPTIONS.filter);
  return assemble(width, height, deflateSync(rows, zlibOptions(options)));
}

export function encodePng(pixels: Uint8Array, width: number, height: number, options: PngOptions = {}): Promise<Buffer> {
  checkSize(width, height);
  const rows = filterRows(pixels, width, height, options.filter ?? DEFAULT_PNG_OPTIONS.filter);
  return deflateToPng(rows, width, height, options);
}

/**
 * An 8-bit RGB PNG (colour type 2) of `pixels` (R, G, B a pixel, row by row). The Up filter works
 * byte by byte, so an RGB row is filtered as a grey row three times as wide.
 */
export function encodeRgbPng(pixels: Uint8Array, width: number, height: number, options: Omit<PngOptions, 'filter'> = {}): Promise<Buffer> {
  checkSize(width, height);
  const rows = filterRows(pixels, width * 3, height, 'up');
  return deflateToPng(rows, width, height, options, 2);
}

/** `encodeRgbPng` on the calling thread (for worker threads). */
export function encodeRgbPngSync(pixels: Uint8Array, width: number, height: number, options: Omit<PngOptions, 'filter'> = {}): Buffer {
  checkSize(width, height);
  return assemble(width, height, deflateSync(filterRows(pixels, width * 3, height, 'up'), zlibOptions(options)), 2);
}
