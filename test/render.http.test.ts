import { decode } from 'fast-png';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { windowValue } from '../src/core/mpr/window.js';
import { createServer, type Server } from '../src/server.js';
import { combinedBlocks } from './fixtures/combined.js';
import { DEFAULT_UID, TempDir, writeSeries } from './fixtures/series.js';

// A 6 x 5 x 4 series: stored value x + 10 y + 100 k (k = writing order = z, head first),
// unsigned with intercept -1000 so modality values are Int16 from -1000 to -645.
const NX = 6;
const NY = 5;
const NZ = 4;
const f = (x: number, y: number, z: number) => x + 10 * y + 100 * z - 1000;
const MIN = f(0, 0, 0);
const MAX = f(NX - 1, NY - 1, NZ - 1);
const EST = { width: Math.floor(MAX - MIN + 1), level: Math.floor(MIN + Math.floor(MAX - MIN + 1) / 2) };
const MONO1 = '1.2.3.1';
const WIDE = '1.2.3.2';

let tmp: TempDir;
let server: Server;

beforeAll(() => {
  tmp = new TempDir();
  writeSeries(join(tmp.path, DEFAULT_UID), {
    columns: NX,
    rows: NY,
    slices: NZ,
    signed: false,
    value: (x, y, k) => x + 10 * y + 100 * k,
    rescaleIntercept: () => -1000,
    pixelSpacing: [0.7, 0.5],
    position: (k) => [0, 0, -2 * k],
    windowCenter: 40,
    windowWidth: 400,
  });
  writeSeries(join(tmp.path, MONO1), { uid: MONO1, columns: NX, rows: NY, slices: NZ, photometricInterpretation: 'MONOCHROME1' });
  writeSeries(join(tmp.path, WIDE), { uid: WIDE, columns: 20, rows: 2, slices: 2 });
  server = createServer(loadConfig({ flags: { dataDir: tmp.path, maxImageSide: 16 }, env: {} }), { useIndex: false });
});
afterAll(async () => {
  await server.close();
  tmp.remove();
});

const get = (url: string) => server.app.inject({ method: 'GET', url });

function png(res: { statusCode: number; headers: Record<string, unknown>; rawPayload: Buffer; body: string }) {
  expect(res.statusCode, res.body.slice(0, 200)).toBe(200);
  expect(res.headers['content-type']).toBe('image/png');
  const img = decode(res.rawPayload);
  expect(img.channels).toBe(1);
  expect(img.depth).toBe(8);
  return img;
}

describe('/mpr', () => {
  it('axial: the slice as DICOM shows it, windowed by the estimated window by default', async () => {
    const res = await get(`/mpr?series=${DEFAULT_UID}&mode=axial&target=2`);
    const img = png(res);
    expect([img.width, img.height]).toEqual([NX, NY]);
    const w = { ...EST, invert: false };
    const expected = [];
    for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) expected.push(windowValue(f(x, y, 2), w));
    expect(Array.from(img.data)).toEqual(expected);
    expect(res.headers['x-circus-pixel-size']).toBe('0.5,0.7');
    expect(res.headers['x-circus-pixel-columns']).toBe(String(NX));
    expect(res.headers['x-circus-pixel-rows']).toBe(String(NY));
  });

  it('coronal and sagittal with an explicit window, default target in the middle', async () => {
    const w = { width: 200, level: -800, invert: false };
    const cor = await get(`/mpr?series=${DEFAULT_UID}&mode=coronal&ww=200&wl=-800`);
    const c = png(cor);
    expect([c.width, c.height]).toEqual([NX, NZ]);
    const yMid = Math.floor(NY / 2);
    const expectedCor = [];
    for (let z = 0; z < NZ; z++) for (let x = 0; x < NX; x++) expectedCor.push(windowValue(f(x, yMid, z), w));
    expect(Array.from(c.data)).toEqual(expectedCor);
    expect(cor.headers['x-circus-pixel-size']).toBe('0.5,2');

    const sag = await get(`/mpr?series=${DEFAULT_UID}&mode=sagittal&target=4&ww=200&wl=-800`);
    const s = png(sag);
    expect([s.width, s.height]).toEqual([NY, NZ]);
    const expectedSag = [];
    for (let z = 0; z < NZ; z++) for (let y = 0; y < NY; y++) expectedSag.push(windowValue(f(4, y, z), w));
    expect(Array.from(s.data)).toEqual(expectedSag);
    expect(sag.headers['x-circus-pixel-size']).toBe('0.7,2');
  });

  it('inverts MONOCHROME1', async () => {
    const img = png(await get(`/mpr?series=${MONO1}&mode=axial&target=0&ww=100&wl=50`));
    // Values x + 10 y (writer default): pixel (1, 2) = 21.
    expect(img.data[1 + NX * 2]).toBe(255 - windowValue(21, { width: 100, level: 50, invert: false }));
  });

  it('400 for every malformed parameter, naming it', async () => {
    const base = `/mpr?series=${DEFAULT_UID}`;
    const cases: [string, RegExp][] = [
      [`${base}`, /parameter 'mode' is required/],
      [`${base}&mode=Axial`, /parameter 'mode' must be one of axial, coronal, sagittal/],
      [`${base}&mode=axial&mode=axial`, /parameter 'mode' is given more than once/],
      [`${base}&mode=axial&target=4`, /parameter 'target' must be an integer from 0 to 3/],
      [`${base}&mode=sagittal&target=6`, /parameter 'target' must be an integer from 0 to 5/],
      [`${base}&mode=axial&target=-1`, /parameter 'target' must be an integer from 0 to 3/],
      [`${base}&mode=axial&target=1.5`, /parameter 'target' must be an integer/],
      [`${base}&mode=axial&target=`, /parameter 'target' is empty/],
      [`${base}&mode=axial&target=NaN`, /parameter 'target' must be a finite decimal/],
      [`${base}&mode=axial&target=1e400`, /parameter 'target' must be a finite decimal/],
      [`${base}&mode=axial&ww=0`, /parameter 'ww' must be greater than 0/],
      [`${base}&mode=axial&ww=-5`, /parameter 'ww' must be greater than 0/],
      [`${base}&mode=axial&ww=Infinity`, /parameter 'ww' must be a finite decimal/],
      [`${base}&mode=axial&wl=0x10`, /parameter 'wl' must be a finite decimal/],
      [`${base}&mode=axial&wl=1e400`, /parameter 'wl' must be a finite decimal/],
      [`/mpr?mode=axial`, /parameter 'series' is required/],
    ];
    for (const [url, message] of cases) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message, url).toMatch(message);
    }
  });

  it('keeps rendered images in the cache, never mixing up a volume loaded again', async () => {
    const uid = '1.2.3.77';
    writeSeries(join(tmp.path, uid), { uid, columns: NX, rows: NY, slices: NZ, value: () => 10 });
    const url = `/mpr?series=${uid}&mode=axial&target=1&ww=100&wl=0`;
    const first = await get(url);
    const entries = (await get('/status')).json().cache.entries;
    const second = await get(url);
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
    expect((await get('/status')).json().cache.entries).toBe(entries);
    expect((await get('/status')).json().dicomReader.count).toBeGreaterThanOrEqual(1);
    // The files change and the volume is loaded again: the image is made anew. (The first image
    // may have been answered before the rest of the series was read: the load ends first.)
    await server.volumes.get(uid);
    writeSeries(join(tmp.path, uid), { uid, columns: NX, rows: NY, slices: NZ, value: () => 40 });
    server.cache.volumes.delete(uid);
    const third = decode((await get(url)).rawPayload);
    expect(third.data[0]).toBe(windowValue(40, { width: 100, level: 0, invert: false }));
    expect(decode(first.rawPayload).data[0]).toBe(windowValue(10, { width: 100, level: 0, invert: false }));
  });

  it('404 for an unknown series', async () => {
    const res = await get('/mpr?series=9.9.9&mode=axial');
    expect(res.statusCode).toBe(404);
  });
});

describe('/oblique', () => {
  it('samples the plane and sends every header', async () => {
    // s = min(0.5, 0.7, 2) = 0.5. b = axial, a = 0, c = (2, 3, 1): columns along x from x = 0 (k = -2)
    // to x = 5, rows along z in steps of 0.25 from 0 to 3 (13 rows); cursor at (2, 4).
    const res = await get(`/oblique?series=${DEFAULT_UID}&a=0&b=axial&c=2,3,1&ww=400&wl=-800`);
    const img = png(res);
    expect([img.width, img.height]).toEqual([6, 13]);
    expect(res.headers['x-circus-pixel-size']).toBe('0.5');
    expect(res.headers['x-circus-pixel-columns']).toBe('6');
    expect(res.headers['x-circus-pixel-rows']).toBe('13');
    expect(res.headers['x-circus-center']).toBe('2,4');
    const w = { width: 400, level: -800, invert: false };
    for (let j = 0; j < 13; j++) for (let i = 0; i < 6; i++) expect(img.data[i + 6 * j]).toBe(windowValue(f(i, 3, j * 0.25), w));
  });

  it('prints a fractional centre', async () => {
    const res = await get(`/oblique?series=${DEFAULT_UID}&a=0.3&b=coronal&c=2.5,1,1.1`);
    expect(res.statusCode).toBe(200);
    // Coronal: rows along y from 0 in steps of 0.5 / 0.7; cursor row 1 / (0.5 / 0.7) = 1.4.
    expect(res.headers['x-circus-center']).toMatch(/^\d+,1\.4$/);
  });

  it('400 for malformed parameters, 413 over the side limit', async () => {
    const base = `/oblique?series=${DEFAULT_UID}`;
    const cases: [string, RegExp][] = [
      [`${base}&b=axial&c=1,1,1`, /parameter 'a' is required/],
      [`${base}&a=abc&b=axial&c=1,1,1`, /parameter 'a' must be a finite decimal/],
      [`${base}&a=1e400&b=axial&c=1,1,1`, /parameter 'a' must be a finite decimal/],
      [`${base}&a=0&b=oblique&c=1,1,1`, /parameter 'b' must be one of/],
      [`${base}&a=0&b=axial&c=1,1`, /parameter 'c' must be three comma-separated numbers/],
      [`${base}&a=0&b=axial&c=1,1,x`, /parameter 'c' \(z\) must be a finite decimal/],
      [`${base}&a=0&b=axial&c=1,NaN,1`, /parameter 'c' \(y\) must be a finite decimal/],
      [`${base}&a=0&b=axial&c=6,1,1`, /parameter 'c' must lie inside the volume/],
      [`${base}&a=0&b=axial&c=-0.1,1,1`, /parameter 'c' must lie inside the volume/],
      [`${base}&a=0&b=axial&c=1,1,1&ww=0`, /parameter 'ww' must be greater than 0/],
    ];
    for (const [url, message] of cases) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message, url).toMatch(message);
    }
    // maxImageSide is 16 here: a series 20 columns wide gives images too wide for both actions.
    for (const url of [`/oblique?series=${WIDE}&a=0&b=axial&c=0,0,0`, `/mpr?series=${WIDE}&mode=axial`]) {
      const big = await get(url);
      expect(big.statusCode, url).toBe(413);
      expect(big.json().message).toMatch(/20x\d+ pixels, more than maxImageSide \(16\)/);
    }
  });
});

describe('/raw', () => {
  it('streams the combined format, block by block equal to the volume', async () => {
    for (const attempt of ['first', 'cached']) {
      const res = await get(`/raw?series=${DEFAULT_UID}`);
      expect(res.statusCode, attempt).toBe(200);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-encoding']).toBe('gzip');
      const b = combinedBlocks(gunzipSync(res.rawPayload));
      expect(b).toHaveLength(NZ + 2);
      expect(b[0]).toMatchObject({ binaryLength: -1, json: { width: NX, height: NY, depth: NZ, dataType: 3 } });
      for (let z = 0; z < NZ; z++) {
        const blk = b[z + 1];
        expect(blk.binaryLength).toBe(NX * NY * 2);
        expect(blk.json).toEqual({ success: true, instanceNumber: z + 1, windowLevel: 40, windowWidth: 400 });
        const values = new Int16Array(blk.binary!.buffer.slice(blk.binary!.byteOffset, blk.binary!.byteOffset + blk.binaryLength));
        const expected = [];
        for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) expected.push(f(x, y, z));
        expect(Array.from(values)).toEqual(expected);
      }
      expect(b[NZ + 1]).toMatchObject({
        binaryLength: -2,
        json: { voxelWidth: 0.5, voxelHeight: 0.7, voxelDepth: 2, estimatedWindowLevel: EST.level, estimatedWindowWidth: EST.width },
      });
    }
    // The second answer came from the cache: it has a length.
    const again = await get(`/raw?series=${DEFAULT_UID}`);
    expect(again.headers['content-length']).toBe(String(again.rawPayload.length));
  });

  it('streams the voxels format, and /volume is its alias', async () => {
    const expected = [];
    for (let z = 0; z < NZ; z++) for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) expected.push(f(x, y, z));
    for (const url of [`/raw?series=${DEFAULT_UID}&format=voxels`, `/volume?series=${DEFAULT_UID}`]) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(200);
      const bytes = gunzipSync(res.rawPayload);
      expect(bytes.length).toBe(NX * NY * NZ * 2);
      expect(Array.from(new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2))).toEqual(expected);
    }
  });

  it('answers requests arriving together with one stream, each complete', async () => {
    const url = `/raw?series=${MONO1}&format=voxels`;
    const answers = await Promise.all([get(url), get(url), get(url)]);
    for (const a of answers) {
      expect(a.statusCode).toBe(200);
      expect(gunzipSync(a.rawPayload).length).toBe(NX * NY * NZ * 2);
      expect(a.rawPayload.equals(answers[0].rawPayload)).toBe(true);
    }
  });

  it('400 for a bad format', async () => {
    const res = await get(`/raw?series=${DEFAULT_UID}&format=png`);
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/parameter 'format' must be one of combined, voxels/);
  });
});
