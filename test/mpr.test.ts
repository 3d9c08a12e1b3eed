import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { obliqueLayout, renderOblique, sampleOblique } from '../src/core/mpr/oblique.js';
import { planeLayout, renderOrthogonal, sampleOrthogonal } from '../src/core/mpr/orthogonal.js';
import { windowInto, windowTable, windowValue } from '../src/core/mpr/window.js';
import { allocateVoxels, PixelFormat, type Volume, type VoxelArray } from '../src/core/volume/volume.js';
import { encodePngSync, encodeScanlines, filterRows, scanlineBuffer } from '../src/encode/png.js';

/** A volume whose voxel (x, y, z) holds f(x, y, z). */
function makeVolume(
  dims: [number, number, number],
  voxelSize: [number, number, number],
  f: (x: number, y: number, z: number) => number,
  format: PixelFormat = PixelFormat.Int16,
): Volume {
  const [nx, ny, nz] = dims;
  const data: VoxelArray = allocateVoxels(format, nx * ny * nz);
  let min = Infinity;
  let max = -Infinity;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const v = f(x, y, z);
        data[x + nx * (y + ny * z)] = v;
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
  return {
    dims,
    voxelSize,
    pixelFormat: format,
    data,
    geometry: {
      origin: [0, 0, 0],
      rowDirection: [1, 0, 0],
      columnDirection: [0, 1, 0],
      sliceDirection: [0, 0, 1],
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
    },
    uniformSpacing: true,
    minValue: min,
    maxValue: max,
    monochrome1: false,
    sliceWindows: [],
    attributes: {
      modality: null,
      photometricInterpretation: 'MONOCHROME2',
      seriesInstanceUid: null,
      studyInstanceUid: null,
      seriesDescription: null,
    },
  };
}

const linear = (x: number, y: number, z: number) => x + 10 * y + 100 * z;

describe('windowing', () => {
  it('follows the contract formula, worked by hand', () => {
    const w = { width: 100, level: 50, invert: false };
    expect([0, 50, 100, -10, 37, 200].map((v) => windowValue(v, w))).toEqual([0, 128, 255, 0, 94, 255]);
    // (v - 40 + 200) * 255 / 400 for v = -160, 0, 40, 240: 0, 102, 127.5 -> 128, 255
    expect([-160, 0, 40, 240].map((v) => windowValue(v, { width: 400, level: 40, invert: false }))).toEqual([0, 102, 128, 255]);
    expect([0, 50, 100].map((v) => windowValue(v, { ...w, invert: true }))).toEqual([255, 127, 0]);
  });

  it('lookup tables agree with the formula for every 8- and 16-bit value', () => {
    const w = { width: 350.5, level: 40.25, invert: false };
    const int16 = windowTable(PixelFormat.Int16, w)!;
    for (let v = -32768; v <= 32767; v += 7) expect(int16.table[v + int16.offset]).toBe(windowValue(v, w));
    const uint8 = windowTable(PixelFormat.UInt8, { ...w, invert: true })!;
    for (let v = 0; v < 256; v++) expect(uint8.table[v]).toBe(windowValue(v, { ...w, invert: true }));
    const values = Float32Array.from([-200.5, 40.25, 215.5, 1e9]);
    const out = new Uint8Array(4);
    windowInto(values, PixelFormat.Float32, w, out);
    expect(Array.from(out)).toEqual(Array.from(values).map((v) => windowValue(v, w)));
  });

  it('tables built only across the window span equal the formula everywhere, for any window', () => {
    const windows = [
      { width: 1, level: 0.5, invert: false },
      { width: 0.25, level: -3.1, invert: true },
      { width: 400, level: 40, invert: false },
      { width: 3, level: 32767, invert: false },
      { width: 7, level: -32768, invert: true },
      { width: 100000, level: 0, invert: false },
      { width: 20, level: 70000, invert: false },
      { width: 20, level: -70000, invert: true },
      { width: 1e-3, level: 12.5, invert: false },
    ];
    for (const w of windows) {
      for (const format of [PixelFormat.Int16, PixelFormat.UInt16, PixelFormat.Int8, PixelFormat.UInt8]) {
        const { table, offset } = windowTable(format, w)!;
        for (let i = 0; i < table.length; i++) {
          if (table[i] !== windowValue(i - offset, w)) throw new Error(`format ${format} window ${JSON.stringify(w)} value ${i - offset}`);
        }
      }
    }
  });

  it('refuses a width that is not positive', () => {
    expect(() => windowInto(new Int16Array(1), PixelFormat.Int16, { width: 0, level: 0, invert: false }, new Uint8Array(1))).toThrow(CircusError);
  });
});

describe('orthogonal planes', () => {
  const v = makeVolume([3, 2, 4], [0.5, 0.7, 2], linear);

  it('samples axial, coronal and sagittal as the contract lays them out', () => {
    const axial = new Int16Array(6);
    sampleOrthogonal(v, 'axial', 2, axial);
    expect(Array.from(axial)).toEqual([200, 201, 202, 210, 211, 212]);
    const coronal = new Int16Array(12);
    sampleOrthogonal(v, 'coronal', 1, coronal);
    expect(Array.from(coronal)).toEqual([10, 11, 12, 110, 111, 112, 210, 211, 212, 310, 311, 312]);
    const sagittal = new Int16Array(8);
    sampleOrthogonal(v, 'sagittal', 2, sagittal);
    expect(Array.from(sagittal)).toEqual([2, 12, 102, 112, 202, 212, 302, 312]);
    expect(planeLayout(v, 'axial')).toEqual({ width: 3, height: 2, count: 4, pixelSize: [0.5, 0.7] });
    expect(planeLayout(v, 'coronal')).toEqual({ width: 3, height: 4, count: 2, pixelSize: [0.5, 2] });
    expect(planeLayout(v, 'sagittal')).toEqual({ width: 2, height: 4, count: 3, pixelSize: [0.7, 2] });
  });

  it('renders each mode into PNG scanlines that decode to the windowed plane', async () => {
    const w = { width: 300, level: 150, invert: false };
    for (const [mode, target] of [
      ['axial', 1],
      ['coronal', 1],
      ['sagittal', 2],
    ] as const) {
      const layout = planeLayout(v, mode);
      const plain = new Uint8Array(layout.width * layout.height);
      renderOrthogonal(v, mode, target, w, plain);
      const rows = scanlineBuffer(layout.width, layout.height);
      renderOrthogonal(v, mode, target, w, rows, { stride: layout.width + 1, offset: 1 });
      const img = decode(await encodeScanlines(rows, layout.width, layout.height));
      expect(Array.from(img.data as Uint8Array), mode).toEqual(Array.from(plain));
    }
  });

  it('windows each mode to the same pixels as sampling then the formula', () => {
    const w = { width: 300, level: 150, invert: false };
    for (const [mode, target] of [
      ['axial', 3],
      ['coronal', 0],
      ['sagittal', 1],
    ] as const) {
      const layout = planeLayout(v, mode);
      const values = new Int16Array(layout.width * layout.height);
      sampleOrthogonal(v, mode, target, values);
      const out = new Uint8Array(values.length);
      renderOrthogonal(v, mode, target, w, out);
      expect(Array.from(out), mode).toEqual(Array.from(values).map((x) => windowValue(x, w)));
    }
  });

  it('samples every sagittal plane voxel by voxel, slices in blocks of eight and the rest, in every pixel format', () => {
    // 19 slices: two blocks of eight gathered together, then three one by one.
    const [nx, ny, nz] = [5, 6, 19];
    const f = (x: number, y: number, z: number) => (x * 31 + y * 7 + z * 3) % 250;
    for (const format of [PixelFormat.Int16, PixelFormat.UInt16, PixelFormat.UInt8, PixelFormat.Float32]) {
      const w = makeVolume([nx, ny, nz], [1, 1, 1], f, format);
      for (let x = 0; x < nx; x++) {
        const out = allocateVoxels(format, ny * nz);
        sampleOrthogonal(w, 'sagittal', x, out);
        const expected: number[] = [];
        for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) expected.push(f(x, y, z));
        expect(Array.from(out), `format ${format}, x ${x}`).toEqual(expected);
      }
    }
  });

  it('renders every plane of every mode in every pixel format as windowValue of its voxels, into placed rows', () => {
    // 9 x 6 x 11: rows of 9 and 6 pixels (four-pixel steps and what is left), sagittal planes of
    // 11 rows (a block of eight slices and three), placed at stride width + 2, offset 3 (bytes
    // between rows must stay as they were).
    const [nx, ny, nz] = [9, 6, 11];
    const cases = [
      { format: PixelFormat.Int16, f: (x: number, y: number, z: number) => x * 97 - y * 211 + z * 53 - 300 },
      { format: PixelFormat.UInt16, f: (x: number, y: number, z: number) => x * 97 + y * 211 + z * 53 },
      { format: PixelFormat.Int8, f: (x: number, y: number, z: number) => x * 13 - y * 7 + z * 5 - 40 },
      { format: PixelFormat.UInt8, f: (x: number, y: number, z: number) => x * 13 + y * 7 + z * 5 },
      { format: PixelFormat.Float32, f: (x: number, y: number, z: number) => x * 9.75 - y * 21.5 + z * 5.25 },
    ];
    const w = { width: 120, level: 10, invert: true };
    for (const { format, f } of cases) {
      const vol = makeVolume([nx, ny, nz], [1, 1, 1], f, format);
      for (const mode of ['axial', 'coronal', 'sagittal'] as const) {
        const layout = planeLayout(vol, mode);
        for (let target = 0; target < layout.count; target++) {
          const stride = layout.width + 2;
          const out = new Uint8Array(3 + stride * layout.height).fill(77);
          renderOrthogonal(vol, mode, target, w, out, { stride, offset: 3 });
          const values = allocateVoxels(format, layout.width * layout.height);
          sampleOrthogonal(vol, mode, target, values);
          const expected = new Uint8Array(out.length).fill(77);
          for (let j = 0; j < layout.height; j++)
            for (let i = 0; i < layout.width; i++) expected[3 + j * stride + i] = windowValue(values[i + layout.width * j], w);
          expect(Array.from(out), `format ${format} ${mode} ${target}`).toEqual(Array.from(expected));
        }
      }
    }
  });

  it('refuses a target outside the volume', () => {
    expect(() => sampleOrthogonal(v, 'axial', 4, new Int16Array(6))).toThrow(/target' must be an integer from 0 to 3/);
    expect(() => sampleOrthogonal(v, 'sagittal', -1, new Int16Array(8))).toThrow(CircusError);
  });
});

describe('oblique planes', () => {
  it('lays out extents and cursor in closed form (worked by hand)', () => {
    // s = min(1, 1, 2) = 1. Axial, a = 0, c = (3.5, 2, 2): eu = (1, 0, 0), ev = (0, 0, 0.5).
    // Columns: 0 <= 3.5 + k <= 9 -> k in -3..5 (9 columns), cursor at column 3.
    // Rows: z = 0, 0.5, ..., 5 (11 rows), cursor z = 2 at row 4.
    const v = makeVolume([10, 8, 6], [1, 1, 2], linear);
    const layout = obliqueLayout(v, { a: 0, b: 'axial', c: [3.5, 2, 2] });
    expect(layout).toMatchObject({ width: 9, height: 11, pixelSize: 1, center: [3, 4], fixedAxis: 2, fixedStep: 0.5 });
    // Linear data is reproduced exactly by trilinear interpolation: pixel (i, j) = f(0.5 + i, 2, 0.5 j).
    const out = new Float32Array(9 * 11);
    sampleOblique(v, layout, out);
    for (let j = 0; j < 11; j++) for (let i = 0; i < 9; i++) expect(out[i + 9 * j]).toBeCloseTo(linear(0.5 + i, 2, 0.5 * j), 4);
  });

  it('follows the contract step vectors for each reference plane at an angle', () => {
    const v = makeVolume([9, 7, 5], [0.8, 0.5, 1.25], linear);
    const s = 0.5;
    const a = 0.6;
    const cases = [
      { b: 'axial' as const, eu: [(Math.cos(a) * s) / 0.8, (-Math.sin(a) * s) / 0.5, 0], fixed: 2 },
      { b: 'coronal' as const, eu: [(Math.cos(a) * s) / 0.8, 0, (-Math.sin(a) * s) / 1.25], fixed: 1 },
      { b: 'sagittal' as const, eu: [0, (Math.cos(a) * s) / 0.5, (-Math.sin(a) * s) / 1.25], fixed: 0 },
    ];
    const c: [number, number, number] = [4.25, 3, 2.5];
    for (const { b, eu, fixed } of cases) {
      const layout = obliqueLayout(v, { a, b, c });
      const out = new Float32Array(layout.width * layout.height);
      sampleOblique(v, layout, out);
      const step = s / v.voxelSize[fixed];
      const [ci, cj] = layout.center;
      for (let j = 0; j < layout.height; j++) {
        for (let i = 0; i < layout.width; i++) {
          // Rotated index k (relative to the cursor) and fixed coordinate t.
          const k = b === 'sagittal' ? j - cj : i - ci;
          const t = (b === 'sagittal' ? i : j) * step;
          const p = [c[0] + k * eu[0], c[1] + k * eu[1], c[2] + k * eu[2]];
          p[fixed] = t;
          for (let d = 0; d < 3; d++) expect(p[d]).toBeGreaterThanOrEqual(-1e-6);
          expect(out[i + layout.width * j], `${b} (${i}, ${j})`).toBeCloseTo(linear(p[0], p[1], p[2]), 3);
        }
      }
      // The cursor is on a pixel centre along the rotated axis.
      expect(Number.isInteger(b === 'sagittal' ? layout.center[1] : layout.center[0])).toBe(true);
    }
  });

  it('interpolates trilinearly between voxels (worked by hand on x squared)', () => {
    // f = x^2 on x = 0, 1, 2: at x = 0.5 trilinear gives (0 + 1) / 2 = 0.5, not 0.25; at 1.25, 1 + 0.25 * 3 = 1.75.
    const v = makeVolume([3, 2, 2], [1, 1, 1], (x, y, z) => x * x + 4 * y * z, PixelFormat.Float32);
    const layout = obliqueLayout(v, { a: 0, b: 'axial', c: [0.5, 0.5, 0.25] });
    // Columns at x = 0.5, 1.5 (k = 0, 1); rows at z = 0, 1; y = 0.5.
    expect(layout).toMatchObject({ width: 2, height: 2, center: [0, 0.25] });
    const out = new Float32Array(4);
    sampleOblique(v, layout, out);
    // (x, y=0.5, z): x^2 part 0.5 or 2.5; 4yz part: bilinear of y*z at (0.5, z): z = 0 -> 0, z = 1 -> 4 * 0.5 = 2.
    expect(Array.from(out)).toEqual([0.5, 2.5, 0.5 + 2, 2.5 + 2]);
    const mid = obliqueLayout(v, { a: 0, b: 'coronal', c: [1.25, 1, 0.5] });
    const m = new Float32Array(mid.width * mid.height);
    sampleOblique(v, mid, m);
    // Coronal a = 0: columns along x through x = 1.25 -> x = 0.25, 1.25 (x^2 by trilinear: 0.25,
    // 1 + 0.25 * 3 = 1.75); rows y = 0, 1 at z = 0.5 (4yz: 0, 2).
    expect(mid).toMatchObject({ width: 2, height: 2, center: [1, 1] });
    expect(Array.from(m)).toEqual([0.25, 1.75, 0.25 + 2, 1.75 + 2]);
  });

  it('at a = 0 equals the matching orthogonal plane resampled to pixel size s (within one grey level)', () => {
    const f = (x: number, y: number, z: number) => Math.round(400 * Math.sin(x / 3) * Math.cos(y / 4) + 30 * z);
    const v = makeVolume([12, 10, 7], [1, 1, 2.5], f);
    const w = { width: 600, level: 50, invert: false };
    // b = axial, a = 0 holds the coronal plane y = 4; rows step 1 / 2.5 slices.
    const layout = obliqueLayout(v, { a: 0, b: 'axial', c: [0, 4, 3] });
    const values = new Float32Array(layout.width * layout.height);
    sampleOblique(v, layout, values);
    const obliquePixels = new Uint8Array(values.length);
    windowInto(values, PixelFormat.Float32, w, obliquePixels);
    const coronal = new Int16Array(12 * 7);
    sampleOrthogonal(v, 'coronal', 4, coronal);
    expect(layout.width).toBe(12);
    expect(layout.height).toBe(Math.floor(6 / 0.4) + 1);
    for (let j = 0; j < layout.height; j++) {
      const z = j * 0.4;
      const z0 = Math.min(Math.floor(z), 5);
      const fz = z - z0;
      for (let i = 0; i < 12; i++) {
        const expected = coronal[i + 12 * z0] * (1 - fz) + coronal[i + 12 * (z0 + 1)] * fz;
        expect(Math.abs(obliquePixels[i + 12 * j] - windowValue(expected, w))).toBeLessThanOrEqual(1);
      }
    }
    // b = coronal and b = sagittal at a = 0 hold the axial plane through the cursor.
    for (const b of ['coronal', 'sagittal'] as const) {
      const l = obliqueLayout(v, { a: 0, b, c: [0, 0, 2] });
      const o = new Float32Array(l.width * l.height);
      sampleOblique(v, l, o);
      expect([l.width, l.height]).toEqual([12, 10]);
      const axial = new Int16Array(120);
      sampleOrthogonal(v, 'axial', 2, axial);
      expect(Array.from(o)).toEqual(Array.from(axial));
    }
  });

  it('samples and renders every pixel as trilinear interpolation computed here, over many lines, on each reference plane', () => {
    // Over 16 lines along each fixed axis (lines are sampled in blocks), a smooth non-linear
    // function, voxel sizes that put the fixed coordinate between voxels on most lines.
    const f = (x: number, y: number, z: number) => Math.round(300 * Math.sin(x / 4) * Math.cos(y / 5) + 7 * z * z - 40 * y);
    const dims: [number, number, number] = [23, 19, 37];
    const v = makeVolume(dims, [0.9, 0.7, 1.1], f);
    const at = (x: number, y: number, z: number): number => v.data[x + dims[0] * (y + dims[1] * z)];
    const trilinear = (p: number[]): number => {
      const i = p.map((t, d) => Math.min(Math.floor(Math.min(Math.max(t, 0), dims[d] - 1)), dims[d] - 1));
      const fr = p.map((t, d) => Math.min(Math.max(t, 0), dims[d] - 1) - i[d]);
      const up = i.map((t, d) => Math.min(t + 1, dims[d] - 1));
      let sum = 0;
      for (const cz of [0, 1])
        for (const cy of [0, 1])
          for (const cx of [0, 1]) {
            const weight = (cx ? fr[0] : 1 - fr[0]) * (cy ? fr[1] : 1 - fr[1]) * (cz ? fr[2] : 1 - fr[2]);
            if (weight !== 0) sum += weight * at(cx ? up[0] : i[0], cy ? up[1] : i[1], cz ? up[2] : i[2]);
          }
      return sum;
    };
    const w = { width: 500, level: 60, invert: true };
    const a = 0.7;
    const c: [number, number, number] = [11.3, 9, 17.6];
    const s = 0.7;
    for (const b of ['axial', 'coronal', 'sagittal'] as const) {
      const layout = obliqueLayout(v, { a, b, c });
      const fixed = layout.fixedAxis;
      expect(layout.fixedCount, b).toBeGreaterThan(16);
      const values = new Float32Array(layout.width * layout.height);
      sampleOblique(v, layout, values);
      // Rendered into PNG-like rows (stride width + 3, offset 2), windowed.
      const stride = layout.width + 3;
      const rows = new Uint8Array(2 + stride * layout.height);
      renderOblique(v, layout, w, rows, { stride, offset: 2 });
      const eu =
        b === 'axial'
          ? [(Math.cos(a) * s) / 0.9, (-Math.sin(a) * s) / 0.7, 0]
          : b === 'coronal'
            ? [(Math.cos(a) * s) / 0.9, 0, (-Math.sin(a) * s) / 1.1]
            : [0, (Math.cos(a) * s) / 0.7, (-Math.sin(a) * s) / 1.1];
      const [ci, cj] = layout.center;
      for (let j = 0; j < layout.height; j++) {
        for (let i = 0; i < layout.width; i++) {
          const k = b === 'sagittal' ? j - cj : i - ci;
          const p = [c[0] + k * eu[0], c[1] + k * eu[1], c[2] + k * eu[2]];
          p[fixed] = (b === 'sagittal' ? i : j) * layout.fixedStep;
          const expected = trilinear(p);
          const got = values[i + layout.width * j];
          expect(Math.abs(got - expected), `${b} (${i}, ${j})`).toBeLessThan(1e-3 * Math.max(1, Math.abs(expected)));
          expect(Math.abs(rows[2 + i + stride * j] - windowValue(expected, w)), `${b} (${i}, ${j}) windowed`).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it('is mirror-symmetric at a = +pi/2 and -pi/2', () => {
    const v = makeVolume([6, 9, 4], [1, 1, 1], (x, y, z) => x * 7 + y * y + z * 3);
    const c: [number, number, number] = [2, 3, 1];
    const up = obliqueLayout(v, { a: Math.PI / 2, b: 'axial', c });
    const down = obliqueLayout(v, { a: -Math.PI / 2, b: 'axial', c });
    expect([up.width, down.width]).toEqual([9, 9]);
    expect(up.center).toEqual([5, 1]);
    expect(down.center).toEqual([3, 1]);
    const a1 = new Float32Array(up.width * up.height);
    const a2 = new Float32Array(down.width * down.height);
    sampleOblique(v, up, a1);
    sampleOblique(v, down, a2);
    for (let j = 0; j < up.height; j++) for (let i = 0; i < 9; i++) expect(a1[i + 9 * j]).toBe(a2[8 - i + 9 * j]);
    // Column i of a = -pi/2 is y = i at x = 2.
    for (let i = 0; i < 9; i++) expect(a2[i]).toBe(2 * 7 + i * i);
  });

  it('refuses a cursor outside the volume, a non-finite angle, and images over the side limit', () => {
    const v = makeVolume([10, 10, 10], [1, 1, 1], linear);
    expect(() => obliqueLayout(v, { a: 0, b: 'axial', c: [10, 0, 0] })).toThrow(/parameter 'c' must lie inside the volume/);
    expect(() => obliqueLayout(v, { a: NaN, b: 'axial', c: [1, 1, 1] })).toThrow(/parameter 'a'/);
    expect(() => obliqueLayout(v, { a: 0.3, b: 'axial', c: [1, 1, 1] }, 8)).toThrow(/more than maxImageSide \(8\)/);
    try {
      obliqueLayout(v, { a: 0.3, b: 'axial', c: [1, 1, 1] }, 8);
    } catch (e) {
      expect((e as CircusError).status).toBe(413);
    }
  });

  it('computes extents without loops whose length depends on the angle (huge angles are fine)', () => {
    const v = makeVolume([20, 20, 5], [1, 1, 1], linear);
    const l = obliqueLayout(v, { a: 1e15, b: 'axial', c: [10, 10, 2] });
    expect(l.width).toBeGreaterThan(0);
    expect(l.width).toBeLessThanOrEqual(Math.ceil(20 * Math.SQRT2) + 1);
  });
});

describe('binary volumes (masks)', () => {
  /** A 2 x 2 x 2 mask, 1 where x = 1, with MONOCHROME1 set (it must not invert). */
  const maskVolume = (): Volume => ({ ...makeVolume([2, 2, 2], [1, 1, 1], (x) => x, PixelFormat.Binary), monochrome1: true });

  it('show 0 as 0 and 1 as 255 whatever the window, never inverted', () => {
    const v = maskVolume();
    for (const w of [
      { width: 3000, level: -1000, invert: true },
      { width: 0.01, level: 5, invert: false },
    ]) {
      const out = new Uint8Array(4);
      renderOrthogonal(v, 'axial', 1, w, out);
      expect(Array.from(out)).toEqual([0, 255, 0, 255]);
      renderOrthogonal(v, 'sagittal', 1, w, out);
      expect(Array.from(out)).toEqual([255, 255, 255, 255]);
    }
    expect(() => renderOrthogonal(v, 'axial', 0, { width: 0, level: 0, invert: false }, new Uint8Array(4))).toThrow(CircusError);
  });

  it('sample obliques nearest-neighbour, a sample halfway between two voxels taking the higher index', () => {
    const v = maskVolume();
    // b = axial, a = 0, c = (0.5, 0, 0): the one sample along x is x = 0.5 (k = -1 gives -0.5),
    // rows z = 0 and 1. Trilinear would give 0.5 (128); nearest rounds 0.5 up to voxel x = 1.
    const layout = obliqueLayout(v, { a: 0, b: 'axial', c: [0.5, 0, 0] });
    expect([layout.width, layout.height]).toEqual([1, 2]);
    const values = new Float32Array(2);
    sampleOblique(v, layout, values);
    expect(Array.from(values)).toEqual([1, 1]);
    const out = new Uint8Array(2);
    renderOblique(v, layout, { width: 400, level: 40, invert: false }, out);
    expect(Array.from(out)).toEqual([255, 255]);
    // Just below halfway, x = 0.49 takes voxel x = 0.
    renderOblique(v, obliqueLayout(v, { a: 0, b: 'axial', c: [0.49, 0, 0] }), { width: 400, level: 40, invert: false }, out);
    expect(Array.from(out)).toEqual([0, 0]);
  });
});

describe('PNG writer', () => {
  it('writes valid 8-bit greyscale PNGs that an independent decoder reads back', () => {
    const width = 37;
    const height = 23;
    const pixels = Uint8Array.from({ length: width * height }, (_, i) => (i * 31 + (i >> 3)) & 0xff);
    for (const filter of ['none', 'sub', 'up'] as const) {
      const png = encodePngSync(pixels, width, height, { filter });
      const img = decode(png);
      expect(img).toMatchObject({ width, height, depth: 8, channels: 1 });
      expect(Array.from(img.data as Uint8Array)).toEqual(Array.from(pixels));
      // IHDR: colour type 0 (greyscale), bit depth 8.
      expect(png.readUInt32BE(16)).toBe(width);
      expect(png[24]).toBe(8);
      expect(png[25]).toBe(0);
    }
  });

  it('Up-filters scanlines in place as byte-by-byte subtraction does, for every width around the 8-byte steps', async () => {
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >> 16) & 0xff;
    };
    for (const width of [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 64, 65]) {
      const height = 5;
      const pixels = Uint8Array.from({ length: width * height }, random);
      // Extremes in every lane: 0 - 255, 255 - 0, 128 - 127, 127 - 128.
      for (let x = 0; x < width; x++) {
        pixels[x] = [0, 255, 127, 128][x % 4];
        pixels[width + x] = [255, 0, 128, 127][x % 4];
      }
      const rows = scanlineBuffer(width, height);
      for (let y = 0; y < height; y++) rows.set(pixels.subarray(y * width, (y + 1) * width), 1 + y * (width + 1));
      const png = await encodeScanlines(rows, width, height);
      // The filtered scanlines are those filterRows makes (each byte minus the one above, mod 256).
      expect(Array.from(rows), `width ${width}`).toEqual(Array.from(filterRows(pixels, width, height, 'up')));
      expect(Array.from(decode(png).data as Uint8Array), `width ${width}`).toEqual(Array.from(pixels));
    }
  });

  it('filters rows with the filter byte first', () => {
    const rows = filterRows(Uint8Array.from([1, 2, 3, 5, 5, 5]), 3, 2, 'up');
    expect(Array.from(rows)).toEqual([2, 1, 2, 3, 2, 4, 3, 2]);
  });
});
