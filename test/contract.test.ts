/**
 * Rules of the 2016 contract (shared API.md) that the route tests elsewhere do not pin down by
 * value: the floors of the estimated window, dicomWindow and /raw windows per slice, every
 * pixel format and its bytes, the slice-order fallbacks, the orientation tolerance, the default
 * limits (image side, token lifetime, token issuers), the random token secret, CORS on image
 * responses and parameter syntax on the 2016 routes. Series are generated here; expected values
 * are computed from the functions that wrote them.
 */
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { combinedBlocks } from './fixtures/combined.js';
import { type SeriesSpec, TempDir, writeSeries } from './fixtures/series.js';

const UID = '1.2.826.0.1.3680043.10.1453.90.1';
const NX = 4;
const NY = 3;
const NZ = 5;

let tmp: TempDir;
const servers: Server[] = [];
let now = Date.UTC(2026, 5, 1);
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  tmp.remove();
});

function serve(spec: SeriesSpec, flags: Record<string, unknown> = {}): Server {
  writeSeries(join(tmp.path, UID), { uid: UID, columns: NX, rows: NY, slices: NZ, ...spec });
  const s = createServer(loadConfig({ flags: { dataDir: tmp.path, ...flags }, env: {} }), { useIndex: false, now: () => now });
  servers.push(s);
  return s;
}
const get = (s: Server, url: string, remoteAddress?: string) => s.app.inject({ method: 'GET', url, remoteAddress });
const metadata = async (s: Server) => {
  const res = await get(s, `/metadata?series=${UID}`);
  expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
  return res.json();
};
function expectNg(res: { statusCode: number; json: () => unknown }, status: number, message: RegExp): void {
  expect(res.statusCode).toBe(status);
  const body = res.json() as { result: string; message: string };
  expect(body.result).toBe('ng');
  expect(body.message).toMatch(message);
}

describe('windows', () => {
  it('estimatedWindow floors width and level (odd width, negative values, fractional values)', async () => {
    // Modality values -5..-3: width floor(-3 - -5 + 1) = 3, level floor(-5 + 1.5) = -4.
    const s = serve({ value: (x, y, k) => ((x + y + k) % 3) - 5 });
    expect((await metadata(s)).estimatedWindow).toEqual({ width: 3, level: -4 });
  });

  it('estimatedWindow of Float32 values (a fractional slope): 0..0.75 gives width 1, level 0', async () => {
    const s = serve({ signed: false, value: (x, y, k) => (x + y + k) % 4, rescaleSlope: () => 0.25, rescaleIntercept: () => 0 });
    const m = await metadata(s);
    expect(m.pixelFormat).toBe(5);
    expect(m.estimatedWindow).toEqual({ width: 1, level: 0 });
  });

  it('dicomWindow is the slice at z = 0’s, and each /raw block carries its own slice’s window', async () => {
    // Slice k (z = k): window center 40 + k, width 400 + 10 k.
    const s = serve({ tweak: (k, sp) => ({ ...sp, windowCenter: 40 + k, windowWidth: 400 + 10 * k }) });
    expect((await metadata(s)).dicomWindow).toEqual({ level: 40, width: 400 });
    const res = await get(s, `/raw?series=${UID}`);
    expect(res.statusCode).toBe(200);
    const b = combinedBlocks(gunzipSync(res.rawPayload));
    for (let z = 0; z < NZ; z++) expect(b[z + 1].json).toMatchObject({ instanceNumber: z + 1, windowLevel: 40 + z, windowWidth: 400 + 10 * z });
  });
});

describe('pixel formats and their bytes', () => {
  const cases = [
    {
      name: 'UInt8',
      code: 0,
      spec: { bitsAllocated: 8, signed: false, value: (x: number, y: number, k: number) => (x * 37 + y * 11 + k * 53) % 256 },
    },
    {
      name: 'Int8',
      code: 1,
      spec: { bitsAllocated: 8, signed: true, value: (x: number, y: number, k: number) => ((x * 37 + y * 11 + k * 53) % 256) - 128 },
    },
    {
      name: 'UInt16',
      code: 2,
      spec: { bitsAllocated: 16, signed: false, value: (x: number, y: number, k: number) => (x * 9001 + y * 313 + k * 7) % 65536 },
    },
    { name: 'Float32', code: 5, spec: { signed: false, value: (x: number, y: number, k: number) => x + 7 * y + 31 * k, rescaleSlope: () => 0.25 } },
  ] as const;
  for (const c of cases) {
    it(`${c.name}: pixelFormat ${c.code}, dataType ${c.code}, voxels little-endian`, async () => {
      const s = serve({ ...c.spec, rescaleIntercept: () => 0 });
      expect((await metadata(s)).pixelFormat).toBe(c.code);
      const res = await get(s, `/raw?series=${UID}&format=voxels`);
      expect(res.statusCode).toBe(200);
      const raw = gunzipSync(res.rawPayload);
      const size = c.code === 5 ? 4 : c.code === 2 ? 2 : 1;
      expect(raw.length).toBe(NX * NY * NZ * size);
      const combined = combinedBlocks(gunzipSync((await get(s, `/raw?series=${UID}`)).rawPayload));
      expect(combined[0].json).toMatchObject({ dataType: c.code });
      let o = 0;
      for (let z = 0; z < NZ; z++)
        for (let y = 0; y < NY; y++)
          for (let x = 0; x < NX; x++) {
            const v = c.spec.value(x, y, z) * (c.code === 5 ? 0.25 : 1);
            const got = c.code === 0 ? raw.readUInt8(o) : c.code === 1 ? raw.readInt8(o) : c.code === 2 ? raw.readUInt16LE(o) : raw.readFloatLE(o);
            expect(got, `${x},${y},${z}`).toBe(v);
            o += size;
          }
    });
  }
});

describe('slice order and geometry', () => {
  // Positions go down with k (projection on the normal -2.5 k): decreasing projection is k = 0,
  // 1, ... The InstanceNumbers below rise against it (NZ - k), so only when they are used does
  // z = 0 become slice k = 4.
  const firstValue = async (s: Server) => {
    const raw = gunzipSync((await get(s, `/raw?series=${UID}&format=voxels`)).rawPayload);
    return raw.readInt16LE(0);
  };
  const value = (x: number, y: number, k: number) => x + 10 * y + 100 * k;

  it('with every InstanceNumber present and strictly monotonic, z follows them: z = 0 is InstanceNumber 1', async () => {
    const s = serve({ value, instanceNumber: (k) => NZ - k });
    expect(await firstValue(s)).toBe(value(0, 0, NZ - 1));
  });

  it('InstanceNumbers not strictly monotonic (two equal): z runs in decreasing projection', async () => {
    const s = serve({ value, instanceNumber: (k) => (k === 1 ? NZ - 2 : NZ - k) });
    expect(await firstValue(s)).toBe(value(0, 0, 0));
  });

  it('a slice without InstanceNumber: z runs in decreasing projection', async () => {
    const s = serve({ value, instanceNumber: (k) => (k === 2 ? undefined : NZ - k) });
    expect(await firstValue(s)).toBe(value(0, 0, 0));
  });

  it('orientations within 1e-3 of each other are one; more than that is 422', async () => {
    const tilted = (d: number) => ({ orientation: (k: number) => (k === 3 ? [1, 0, 0, 0, 1 - d, d] : [1, 0, 0, 0, 1, 0]) });
    const s = serve({ ...tilted(1e-4) });
    expect((await metadata(s)).voxelCount).toEqual([NX, NY, NZ]);
    tmp.remove();
    tmp = new TempDir();
    const t = serve({ ...tilted(2e-3) });
    expectNg(await get(t, `/metadata?series=${UID}`), 422, /ImageOrientationPatient .* differs/);
  });
});

describe('defaults', () => {
  it('images over 4096 pixels a side are 413 by default; 4096 is served', async () => {
    writeSeries(join(tmp.path, '1.2.3.4097'), { uid: '1.2.3.4097', columns: 4097, rows: 1, slices: 2 });
    writeSeries(join(tmp.path, '1.2.3.4096'), { uid: '1.2.3.4096', columns: 4096, rows: 1, slices: 2 });
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path }, env: {} }), { useIndex: false });
    servers.push(s);
    expect((await get(s, '/mpr?series=1.2.3.4096&mode=axial&target=0')).statusCode).toBe(200);
    expectNg(await get(s, '/mpr?series=1.2.3.4097&mode=axial&target=0'), 413, /more than maxImageSide \(4096\)/);
  });

  it('tokens live 1800 s by default, are issued to loopback only, and a random secret is made per server', async () => {
    const s = serve({}, { auth: true });
    const t = serve({}, { auth: true });
    const issue = async (server: Server, address: string) => get(server, `/requestToken?series=${UID}`, address);
    expect((await issue(s, '10.0.0.1')).statusCode).toBe(403);
    expect((await issue(s, '::1')).statusCode).toBe(200);
    expect((await issue(s, '127.5.5.5')).statusCode).toBe(200);
    const token = (await issue(s, '127.0.0.1')).json().token as string;
    const use = (server: Server) => get(server, `/metadata?series=${UID}&token=${token}`);
    expect((await use(s)).statusCode).toBe(200);
    // The other server made its own secret: the token is not its.
    expect((await use(t)).statusCode).toBe(401);
    const issued = now;
    now = issued + 1799_000;
    expect((await use(s)).statusCode).toBe(200);
    now = issued + 1800_000;
    expectNg(await use(s), 401, /expired/);
    now = issued;
  });
});

describe('HTTP details', () => {
  it('image responses carry CORS and expose the X-Circus headers', async () => {
    const s = serve({});
    for (const url of [`/mpr?series=${UID}&mode=axial&target=1`, `/oblique?series=${UID}&a=0.3&b=axial&c=1,1,1`]) {
      const res = await get(s, url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      const exposed = String(res.headers['access-control-expose-headers']).split(/,\s*/);
      for (const h of ['X-Circus-Pixel-Size', 'X-Circus-Pixel-Columns', 'X-Circus-Pixel-Rows', 'X-Circus-Center']) expect(exposed, url).toContain(h);
    }
  });

  it('parameters: a 64-character series is a UID (404 when unknown), values are case-sensitive, b and c are required', async () => {
    const s = serve({});
    const long = `1.${'2'.repeat(62)}`;
    expect(long.length).toBe(64);
    expectNg(await get(s, `/metadata?series=${long}`), 404, /./);
    expectNg(await get(s, `/metadata?series=${long}2`), 400, /series/);
    expectNg(await get(s, `/oblique?series=${UID}&a=0&b=Axial&c=1,1,1`), 400, /'b'/);
    expectNg(await get(s, `/raw?series=${UID}&format=Voxels`), 400, /'format'/);
    expectNg(await get(s, `/oblique?series=${UID}&a=0&c=1,1,1`), 400, /'b'/);
    expectNg(await get(s, `/oblique?series=${UID}&a=0&b=axial`), 400, /'c'/);
  });
});
