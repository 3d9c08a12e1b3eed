/**
 * Thick slabs. On /mpr: the projection (mip, minip, average) of the voxels of the slices whose
 * centres lie within thickness / 2 of the target slice's centre, then windowed, compared to the
 * byte with numpy (Debian's python3-numpy, /usr/bin/python3) computing the same from the voxel
 * values written: max / min / mean over the slices, the mean rounded half up, then the window
 * formula of docs/API.md. On oblique planes: trilinear samples one pixel size apart along the
 * normal, projected, within one grey level of a reference computed here.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { obliqueLayout, obliquePlane, renderOblique } from '../src/core/mpr/oblique.js';
import { ORIENTATIONS } from '../src/core/mpr/orthogonal.js';
import { windowValue } from '../src/core/mpr/window.js';
import { PROJECTIONS } from '../src/core/reslice/reslice.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { describeWithPydicom, PYTHON } from './conformance/pydicomEnv.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const UID = '1.2.826.0.1.3680043.10.1453.95.1';
const NX = 24;
const NY = 20;
const NZ = 15;
/** Voxel sizes: x 0.8, y 0.6 (PixelSpacing is row spacing, then column spacing), slices 1.25 mm apart. */
const SLICE_MM = 1.25;
const value = (x: number, y: number, k: number) => ((x * 7919 + y * 104729 + k * 1299709) % 1601) - 800;

interface Case {
  mode: 'axial' | 'coronal' | 'sagittal';
  target: number;
  slab: number;
  projection: 'mip' | 'minip' | 'average';
}

const CASES: Case[] = [
  { mode: 'axial', target: 7, slab: 5, projection: 'mip' },
  { mode: 'axial', target: 7, slab: 5, projection: 'minip' },
  { mode: 'axial', target: 7, slab: 5, projection: 'average' },
  // 2.5 mm reaches exactly one slice each side (ends included).
  { mode: 'axial', target: 1, slab: 2.5, projection: 'average' },
  // Near the first slice: the slab is cut at the volume's edge.
  { mode: 'axial', target: 1, slab: 10, projection: 'mip' },
  // Thinner than the slice spacing: the target slice alone.
  { mode: 'axial', target: 14, slab: 0.5, projection: 'average' },
  { mode: 'coronal', target: 10, slab: 3, projection: 'mip' },
  { mode: 'coronal', target: 0, slab: 100, projection: 'average' },
  { mode: 'sagittal', target: 12, slab: 4, projection: 'minip' },
  { mode: 'sagittal', target: 23, slab: 2, projection: 'average' },
];
const WW = 700;
const WL = -30;

const NUMPY = `
import json, sys, base64
import numpy as np
vol = np.fromfile(sys.argv[1], dtype='<i2').reshape(${NZ}, ${NY}, ${NX}).astype(np.float64)
size = {'x': 0.8, 'y': 0.6, 'z': ${SLICE_MM}}
out = []
for c in json.loads(sys.argv[2]):
    axis, mm = {'axial': (0, size['z']), 'coronal': (1, size['y']), 'sagittal': (2, size['x'])}[c['mode']]
    reach = int(np.floor(c['slab'] / 2 / mm + 1e-9))
    lo = max(c['target'] - reach, 0)
    hi = min(c['target'] + reach, vol.shape[axis] - 1)
    part = np.take(vol, range(lo, hi + 1), axis=axis)
    if c['projection'] == 'mip': p = part.max(axis=axis)
    elif c['projection'] == 'minip': p = part.min(axis=axis)
    else: p = np.floor(part.mean(axis=axis) + 0.5)
    w, l = ${WW}.0, ${WL}.0
    x = ((p - l + w / 2) * 255) / w
    x = np.where(x > 0, np.where(x < 255, x, 255), 0)
    g = np.floor(x + 0.5).astype(np.uint8)
    out.append(base64.b64encode(g.tobytes()).decode())
print(json.dumps(out))
`;

let tmp: TempDir;
let server: Server;

beforeAll(() => {
  tmp = new TempDir();
  writeSeries(join(tmp.path, 'data', UID), {
    uid: UID,
    columns: NX,
    rows: NY,
    slices: NZ,
    pixelSpacing: [0.6, 0.8],
    position: (k) => [0, 0, k * SLICE_MM],
    spacingBetweenSlices: SLICE_MM,
    sliceThickness: SLICE_MM,
    value,
    rescaleSlope: () => 1,
    rescaleIntercept: () => 0,
  });
  server = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'data') }, env: {} }), {});
});

afterAll(async () => {
  await server?.close();
  tmp?.remove();
});

describeWithPydicom('thick slabs on /mpr', () => {
  it('are the max, min and rounded mean of the slices within thickness / 2, windowed, as numpy computes them', async () => {
    const raw = Buffer.alloc(NX * NY * NZ * 2);
    for (let k = 0; k < NZ; k++)
      for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) raw.writeInt16LE(value(x, y, k), 2 * (x + NX * (y + NY * k)));
    const rawPath = join(tmp.path, 'volume.raw');
    writeFileSync(rawPath, raw);
    const expected = JSON.parse(execFileSync(PYTHON, ['-c', NUMPY, rawPath, JSON.stringify(CASES)], { encoding: 'utf8' })) as string[];
    for (const [n, c] of CASES.entries()) {
      const res = await server.app.inject({
        url: `/mpr?series=${UID}&mode=${c.mode}&target=${c.target}&ww=${WW}&wl=${WL}&slab=${c.slab}&projection=${c.projection}`,
      });
      expect(res.statusCode, JSON.stringify(c)).toBe(200);
      const png = decode(res.rawPayload);
      const want = Buffer.from(expected[n], 'base64');
      expect([png.width, png.height]).toEqual(c.mode === 'axial' ? [NX, NY] : c.mode === 'coronal' ? [NX, NZ] : [NY, NZ]);
      expect(Buffer.from(png.data as Uint8Array).equals(want), JSON.stringify(c)).toBe(true);
    }
  });

  it('defaults to mip, is the thin image when thinner than a slice, and is taken by /oblique too', async () => {
    const get = async (extra: string) =>
      (await server.app.inject({ url: `/mpr?series=${UID}&mode=axial&target=4&ww=${WW}&wl=${WL}${extra}` })).rawPayload;
    expect((await get('&slab=6')).equals(await get('&slab=6&projection=mip'))).toBe(true);
    expect((await get('&slab=1')).equals(await get(''))).toBe(true);
    expect((await get('&slab=6&projection=minip')).equals(await get('&slab=6'))).toBe(false);
    // /oblique takes the same parameters.
    const oblique = (extra: string) => server.app.inject({ url: `/oblique?series=${UID}&a=0.5&b=axial&c=12,10,7&ww=${WW}&wl=${WL}${extra}` });
    const thin = await oblique('');
    const thick = await oblique('&slab=5&projection=average');
    expect([thin.statusCode, thick.statusCode]).toEqual([200, 200]);
    expect(thick.rawPayload.equals(thin.rawPayload)).toBe(false);
    expect((await oblique('&projection=minip')).statusCode).toBe(400);
  });

  it('refuses a thickness that is not above 0, a projection it does not know, and a projection without a slab', async () => {
    for (const [extra, message] of [
      ['&slab=0', /parameter 'slab' must be greater than 0/],
      ['&slab=-3', /parameter 'slab' must be greater than 0/],
      ['&slab=NaN', /slab/],
      ['&slab=5&projection=max', /parameter 'projection' must be one of mip, minip, average/],
      ['&projection=mip', /parameter 'projection' needs 'slab'/],
    ] as const) {
      const res = await server.app.inject({ url: `/mpr?series=${UID}&mode=axial&target=4${extra}` });
      expect(res.statusCode, extra).toBe(400);
      expect(res.json(), extra).toEqual({ result: 'ng', message: expect.stringMatching(message) });
    }
  });
});

describe('thick slabs on oblique planes', () => {
  /** Trilinear interpolation at (x, y, z), voxel centres at integers, coordinates clamped into the volume, computed here voxel by voxel. */
  function trilinearAt(data: Int16Array, dims: readonly number[], p: readonly number[]): number {
    const c = p.map((v, d) => Math.min(Math.max(v, 0), dims[d] - 1));
    const i0 = c.map(Math.floor);
    const i1 = i0.map((v, d) => Math.min(v + 1, dims[d] - 1));
    const t = c.map((v, d) => v - i0[d]);
    let sum = 0;
    for (const [x, wx] of [
      [i0[0], 1 - t[0]],
      [i1[0], t[0]],
    ])
      for (const [y, wy] of [
        [i0[1], 1 - t[1]],
        [i1[1], t[1]],
      ])
        for (const [z, wz] of [
          [i0[2], 1 - t[2]],
          [i1[2], t[2]],
        ])
          sum += wx * wy * wz * data[x + dims[0] * (y + dims[1] * z)];
    return sum;
  }

  it('project trilinear samples one pixel size apart along the normal, within 1 grey level of a reference computed here', () => {
    const dims = [21, 17, 13] as const;
    const voxelSize: [number, number, number] = [0.9, 0.7, 1.6];
    const data = new Int16Array(dims[0] * dims[1] * dims[2]);
    for (let z = 0; z < dims[2]; z++)
      for (let y = 0; y < dims[1]; y++) for (let x = 0; x < dims[0]; x++) data[x + dims[0] * (y + dims[1] * z)] = value(x, y, z);
    const grid = { dims: [...dims] as [number, number, number], voxelSize, pixelFormat: PixelFormat.Int16, data };
    const w = { width: 900, level: 0, invert: false };
    for (const b of ORIENTATIONS)
      for (const projection of PROJECTIONS)
        for (const a of [0.4, -1.1]) {
          const layout = obliqueLayout(grid, { a, b, c: [10, 8.5, 6] });
          const thickness = 4;
          const out = new Uint8Array(layout.width * layout.height);
          renderOblique(grid, layout, w, out, undefined, { thickness, projection });
          // The plane's steps in mm, their normal, and samples s apart along it.
          const plane = obliquePlane(layout);
          const mm = (v: readonly number[]) => v.map((x, d) => x * voxelSize[d]);
          const [u, v] = [mm(plane.col), mm(plane.row)];
          const n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
          const len = Math.hypot(...n);
          const s = layout.pixelSize;
          const step = n.map((x, d) => ((x / len) * s) / voxelSize[d]);
          const r = Math.floor(thickness / 2 / s + 1e-9);
          let worst = 0;
          for (let j = 0; j < layout.height; j++)
            for (let i = 0; i < layout.width; i++) {
              const samples: number[] = [];
              for (let k = -r; k <= r; k++) {
                const p = [0, 1, 2].map((d) => plane.origin[d] + j * plane.row[d] + i * plane.col[d] + k * step[d]);
                samples.push(trilinearAt(data, dims, p));
              }
              const x =
                projection === 'mip'
                  ? Math.max(...samples)
                  : projection === 'minip'
                    ? Math.min(...samples)
                    : samples.reduce((q, y) => q + y, 0) / samples.length;
              worst = Math.max(worst, Math.abs(out[i + layout.width * j] - windowValue(x, w)));
            }
          expect(worst, `${b} ${projection} a=${a}`).toBeLessThanOrEqual(1);
          expect(r).toBeGreaterThan(1);
        }
  });
});
