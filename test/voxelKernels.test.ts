import { describe, expect, it } from 'vitest';
import { add16InPlace, range16 } from '../src/core/kernels/voxelKernels.js';
import { rescaleInto, storedRangeScalar } from '../src/core/volume/modality.js';

/** Deterministic values covering the whole 16-bit range, with runs not a multiple of 8 long. */
function values(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    return (s >>> 8) & 0xffff;
  });
}

describe('voxel kernels (WebAssembly SIMD) agree with the scalar code', () => {
  it('range of signed and unsigned 16-bit runs, with and without padding', () => {
    const paddings: ([number, number] | undefined)[] = [undefined, [-2000, -2000], [0, 100], [60000, 65535], [-32768, 32767], [5, 4]];
    for (const n of [1, 7, 8, 9, 1000, 300_001]) {
      const raw = values(n, n);
      const u = Uint16Array.from(raw);
      const i = new Int16Array(u.buffer);
      for (const data of [u, i]) {
        for (const padding of paddings) {
          for (const [start, count] of [
            [0, n],
            [n >> 1, n - (n >> 1)],
          ]) {
            const fast = range16(data, start, count, padding);
            expect(fast).not.toBeNull();
            expect(fast, `n=${n} ${data.constructor.name} padding=${padding}`).toEqual(storedRangeScalar(data, start, count, padding));
          }
        }
      }
    }
  });

  it('finds the extremes of the type itself', () => {
    expect(range16(Int16Array.from([-32768, 32767, 0, 0, 0, 0, 0, 0, 0]), 0, 9)).toEqual({ min: -32768, max: 32767, paddingCount: 0 });
    expect(range16(Uint16Array.from([65535, 0, 1, 2, 3, 4, 5, 6, 7, 8]), 0, 10)).toEqual({ min: 0, max: 65535, paddingCount: 0 });
    expect(range16(Int16Array.from([7, 7, 7]), 0, 3, [7, 7])).toEqual({ min: NaN, max: NaN, paddingCount: 3 });
  });

  it('adds an intercept in place exactly where the results fit, padding replaced', () => {
    for (const n of [3, 8, 17, 200_003]) {
      const raw = values(n, 99 + n).map((v) => v & 0x0fff); // 12-bit CT-like
      const kernel = Uint16Array.from(raw);
      const asInt = new Int16Array(kernel.buffer);
      expect(add16InPlace(kernel, 0, n, -1024, true, [4000, 4095], -1024)).toBe(true);
      const expected = raw.map((v) => (v >= 4000 ? -1024 : v - 1024));
      expect(Array.from(asInt)).toEqual(expected);
      // rescaleInto takes the same path in place and the scalar path elsewhere: same answer.
      const src = Uint16Array.from(raw);
      const dst = new Int16Array(n);
      rescaleInto(src, 0, dst, 0, n, { slope: 1, intercept: -1024, padding: [4000, 4095] }, -1024);
      expect(Array.from(dst)).toEqual(expected);
    }
  });
});
