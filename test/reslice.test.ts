import { describe, expect, it } from 'vitest';
import { formulaLines, tableLines, windowByte, windowTable, windowValue, type WindowSpec } from '../src/core/mpr/window.js';
import { reslice } from '../src/core/reslice/reslice.js';
import { samplerFor } from '../src/core/reslice/samplers.js';
import type { ReslicePlane } from '../src/core/reslice/types.js';
import { PixelFormat, type VoxelGrid } from '../src/core/volume/volume.js';

/** A grid whose voxel (x, y, z) holds f(x, y, z), in Int16 unless said otherwise. */
function grid(dims: [number, number, number], f: (x: number, y: number, z: number) => number, format: PixelFormat = PixelFormat.Int16): VoxelGrid {
  const [nx, ny, nz] = dims;
  const data = format === PixelFormat.Float32 ? new Float32Array(nx * ny * nz) : new Int16Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) data[x + nx * (y + ny * z)] = f(x, y, z);
  return { dims, voxelSize: [1, 1, 1], pixelFormat: format, data };
}

/** Trilinear interpolation at (x, y, z), voxel centres at integers, coordinates clamped into the volume: computed here, voxel by voxel. */
function trilinearAt(g: VoxelGrid, x: number, y: number, z: number): number {
  const [nx, ny, nz] = g.dims;
  const at = (i: number, j: number, k: number) => g.data[i + nx * (j + ny * k)];
  const c = (v: number, n: number) => Math.min(Math.max(v, 0), n - 1);
  const [px, py, pz] = [c(x, nx), c(y, ny), c(z, nz)];
  const [i0, j0, k0] = [Math.floor(px), Math.floor(py), Math.floor(pz)];
  const [i1, j1, k1] = [Math.min(i0 + 1, nx - 1), Math.min(j0 + 1, ny - 1), Math.min(k0 + 1, nz - 1)];
  const [tx, ty, tz] = [px - i0, py - j0, pz - k0];
  let sum = 0;
  for (const [i, wx] of [
    [i0, 1 - tx],
    [i1, tx],
  ])
    for (const [j, wy] of [
      [j0, 1 - ty],
      [j1, ty],
    ])
      for (const [k, wz] of [
        [k0, 1 - tz],
        [k1, tz],
      ])
        sum += wx * wy * wz * at(i, j, k);
  return sum;
}

const f = (x: number, y: number, z: number) => ((x * 37 + y * 101 + z * 13) % 211) - 60;

describe('reslice core', () => {
  it('hands rows along x on in place and gathers other axis-aligned rows', () => {
    const g = grid([6, 5, 4], f);
    const axial: ReslicePlane = { origin: [0, 0, 2], col: [1, 0, 0], row: [0, 1, 0], width: 6, height: 5 };
    const opts = { interpolation: 'nearest', edges: 'clamp' } as const;
    const rows = samplerFor({ grid: g }, axial, opts, { kind: 'values', out: new Int16Array(30) }).sample(0, 5);
    expect(rows.values).toBe(g.data); // no copy
    expect(rows.start).toBe(2 * 30);
    expect(rows.stride).toBe(6);
    // A plane along y then z (sagittal-like) from (3, 1, 0): gathered, each row z, each column y.
    const plane: ReslicePlane = { origin: [3, 1, 0], col: [0, 1, 0], row: [0, 0, 1], width: 4, height: 4 };
    const out = new Int16Array(16);
    reslice({ grid: g }, plane, opts, { kind: 'values', out });
    const expected: number[] = [];
    for (let z = 0; z < 4; z++) for (let y = 1; y < 5; y++) expected.push(f(3, y, z));
    expect(Array.from(out)).toEqual(expected);
  });

  it('samples a separable plane and any other plane as trilinear interpolation computed here', () => {
    const g = grid([9, 8, 7], f);
    const opts = { interpolation: 'trilinear', edges: 'clamp' } as const;
    const planes: ReslicePlane[] = [
      // One step along z only, the other across x and y: separable (rows are z).
      { origin: [0.25, 7.5, 0], col: [0.8, -0.45, 0], row: [0, 0, 0.6], width: 11, height: 12 },
      // Columns along x only, rows across y and z: separable the other way.
      { origin: [0, 1.3, 6.2], col: [0.7, 0, 0], row: [0, 0.5, -0.55], width: 13, height: 12 },
      // Both steps across every axis: the general sampler, with coordinates beyond the volume clamped.
      { origin: [-1.5, 0.2, 0.1], col: [0.61, 0.3, 0.17], row: [0.2, 0.55, 0.4], width: 17, height: 15 },
    ];
    const kinds = planes.map((plane) => samplerFor({ grid: g }, plane, opts, { kind: 'values', out: new Float32Array(0) }).kind);
    expect(kinds).toEqual(['separable', 'separable', 'general']);
    for (const plane of planes) {
      const out = new Float32Array(plane.width * plane.height);
      reslice({ grid: g }, plane, opts, { kind: 'values', out });
      for (let j = 0; j < plane.height; j++)
        for (let i = 0; i < plane.width; i++) {
          const p = [0, 1, 2].map((d) => plane.origin[d] + j * plane.row[d] + i * plane.col[d]);
          expect(out[i + plane.width * j]).toBeCloseTo(trilinearAt(g, p[0], p[1], p[2]), 3);
        }
    }
  });

  it("with edges 'zero' leaves every sample outside the volume 0 in the output, whatever the window makes of 0", () => {
    const g = grid([4, 4, 3], () => 500);
    const plane: ReslicePlane = { origin: [-1.5, 0.5, 1.5], col: [1, 0, 0], row: [0, 1, 0], width: 7, height: 6 };
    // Values 0..1000 give 500 -> 128 and 0 -> 0; inverted, 500 -> 127 and a voxel of 0 would be 255.
    const w: WindowSpec = { width: 1000, level: 500, invert: true };
    const out = new Uint8Array(42).fill(9);
    reslice({ grid: g }, plane, { interpolation: 'nearest', edges: 'zero' }, { kind: 'window', out, window: w });
    for (let j = 0; j < 6; j++)
      for (let i = 0; i < 7; i++) {
        const x = -1.5 + i;
        const y = 0.5 + j;
        const inside = x >= 0 && x < 4 && y < 4;
        expect(out[i + 7 * j]).toBe(inside ? windowValue(500, w) : 0);
      }
  });

  it('windows placed rows and leaves the bytes between them alone', () => {
    const g = grid([5, 3, 2], f);
    const plane: ReslicePlane = { origin: [0, 0, 1], col: [1, 0, 0], row: [0, 1, 0], width: 5, height: 3 };
    const w: WindowSpec = { width: 120, level: 10, invert: false };
    const out = new Uint8Array(3 * 6).fill(7);
    reslice({ grid: g }, plane, { interpolation: 'nearest', edges: 'clamp' }, { kind: 'window', out, window: w, stride: 6, offset: 1 });
    for (let j = 0; j < 3; j++) {
      expect(out[6 * j]).toBe(7);
      for (let i = 0; i < 5; i++) expect(out[1 + 6 * j + i]).toBe(windowValue(f(i, j, 1), w));
    }
  });
});

describe('the window formula', () => {
  it('has one expression for loops (windowByte, in formulaLines), which gives windowValue to the bit for every kind of value', () => {
    const windows: WindowSpec[] = [
      { width: 100, level: 50, invert: false },
      { width: 1, level: 0.5, invert: false },
      { width: 400, level: 40, invert: true },
      { width: 3, level: -1000.25, invert: false },
      { width: 1e-3, level: 7, invert: true },
    ];
    const values = [NaN, -Infinity, Infinity, -1e300, 1e300, 0, -0, 0.5, 1, 127.5, 49.999999, 50, 50.0000001, -1000.25, -998.75, 7, 7.0005];
    for (let v = -1200; v <= 1200; v += 0.125) values.push(v);
    const src = Float64Array.from(values);
    for (const w of windows) {
      const out = new Uint8Array(src.length);
      formulaLines(w, src, out, src.length, 1, 0, 0, 0, 0);
      const expected = values.map((v) => windowValue(v, w));
      expect(Array.from(out)).toEqual(expected);
      expect(values.map((v) => windowByte(v, w.level, w.width / 2, w.width, w.invert))).toEqual(expected);
    }
  });

  it('windows separable planes as they are sampled to the bytes of sampling, then formulaLines', () => {
    const g = grid([23, 19, 17], f);
    const opts = { interpolation: 'trilinear', edges: 'clamp' } as const;
    const planes: ReslicePlane[] = [
      { origin: [0.25, 18.5, 0], col: [0.8, -0.45, 0], row: [0, 0, 0.6], width: 27, height: 26 },
      { origin: [0, 1.3, 16.2], col: [0.7, 0, 0], row: [0, 0.5, -0.55], width: 31, height: 29 },
      { origin: [3.5, 0, 2], col: [0, 1, 0], row: [0.3, 0, 0.9], width: 19, height: 17 },
    ];
    for (const w of [
      { width: 150, level: 20, invert: false },
      { width: 33.3, level: -12.25, invert: true },
    ] as WindowSpec[]) {
      for (const plane of planes) {
        const { width, height } = plane;
        // Unfused: the sampler's blocks of doubles, windowed by formulaLines.
        const unfused = samplerFor({ grid: g }, plane, opts, { kind: 'values', out: new Float32Array(0) });
        expect(unfused.kind).toBe('separable');
        const expected = new Uint8Array((width + 1) * height);
        for (let j0 = 0; j0 < height; j0 += unfused.block) {
          const count = Math.min(unfused.block, height - j0);
          const rows = unfused.sample(j0, count);
          formulaLines(w, rows.values, expected, width, count, rows.start, rows.stride, 1 + j0 * (width + 1), width + 1);
        }
        const out = new Uint8Array((width + 1) * height);
        const fused = samplerFor({ grid: g }, plane, opts, { kind: 'window', out, window: w, stride: width + 1, offset: 1 });
        expect(fused.sample(0, 1).written).toBe(true);
        out.fill(0);
        reslice({ grid: g }, plane, opts, { kind: 'window', out, window: w, stride: width + 1, offset: 1 });
        expect(Buffer.from(out).equals(Buffer.from(expected)), JSON.stringify(plane)).toBe(true);
      }
    }
  });

  it('gives through its lookup table what the formula gives, four pixels a word or one by one', () => {
    const w: WindowSpec = { width: 300, level: 20, invert: true };
    const src = new Int16Array(1031);
    for (let i = 0; i < src.length; i++) src[i] = i * 3 - 1500;
    const lut = windowTable(PixelFormat.Int16, w);
    if (!lut) throw new Error('Int16 has a table');
    for (const width of [1, 3, 4, 5, 8, 1031]) {
      const out = new Uint8Array(width);
      tableLines(lut, src, out, width, 1, 0, 0, 0, 0);
      expect(Array.from(out)).toEqual(Array.from(src.subarray(0, width), (v) => windowValue(v, w)));
    }
  });
});
