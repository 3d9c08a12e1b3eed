/**
 * Rendered frames read their stored values as PS3.5 8.1.1 lays them out (BitsStored bits ending
 * at HighBit, two's complement when PixelRepresentation is 1, other bits ignored), from words of 8
 * or 16 bits, aligned or not: compared with the values computed here the long way.
 */
import { describe, expect, it } from 'vitest';
import { type FrameLayout, renderFrame, voi } from '../src/dicomweb/rendered.js';

const layout = (bitsAllocated: number, bitsStored: number, highBit: number, pixelRepresentation: number): FrameLayout => ({
  rows: 7,
  columns: 9,
  samplesPerPixel: 1,
  bitsAllocated,
  bitsStored,
  highBit,
  pixelRepresentation,
  photometricInterpretation: 'MONOCHROME2',
  planarConfiguration: 0,
  rescaleSlope: 2,
  rescaleIntercept: -100,
});

/** The stored value of a word, computed with arithmetic rather than bit operations. */
function stored(word: number, f: FrameLayout): number {
  const shift = f.highBit + 1 - f.bitsStored;
  let v = Math.floor(word / 2 ** shift) % 2 ** f.bitsStored;
  if (f.pixelRepresentation === 1 && v >= 2 ** (f.bitsStored - 1)) v -= 2 ** f.bitsStored;
  return v;
}

describe('rendered frame values', () => {
  it('reads every layout of 8- and 16-bit words as the standard does, aligned or not', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const layouts = [
      layout(8, 8, 7, 0),
      layout(8, 8, 7, 1),
      layout(8, 6, 6, 1),
      layout(16, 16, 15, 0),
      layout(16, 16, 15, 1),
      layout(16, 12, 11, 0),
      layout(16, 12, 11, 1),
      layout(16, 12, 15, 1),
      layout(16, 10, 12, 0),
    ];
    for (const f of layouts) {
      const n = f.rows * f.columns;
      const bytesPer = f.bitsAllocated / 8;
      for (const offset of [0, 1]) {
        const backing = new Uint8Array(n * bytesPer + 1);
        const bytes = backing.subarray(offset, offset + n * bytesPer);
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
        const words = Array.from({ length: n }, (_, i) => (bytesPer === 1 ? bytes[i] : bytes[2 * i] | (bytes[2 * i + 1] << 8)));
        const values = words.map((w) => stored(w, f) * f.rescaleSlope + f.rescaleIntercept);
        const window = { center: 10, width: 300, fn: 'linear-exact' as const };
        const img = renderFrame(bytes, f, window);
        expect(Array.from(img.pixels), JSON.stringify({ ...f, offset })).toEqual(values.map((x) => voi(x, window)));
      }
    }
  });
});
