/**
 * The current CIRCUS API over HTTP (/series/:sid/metadata, /volume, /scan, /token), the base
 * path, CORS and the error bodies, checked against values computed here from the generated
 * voxels, never against what the server computes.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/config.js';
import type { ProgressiveVolume } from '../src/dicom/progressiveVolume.js';
import { Tags, tag } from '../src/dicom/tags.js';
import { createServer, type Server } from '../src/server.js';
import { HeldSeries } from './fixtures/held.js';
import { type SeriesSpec, seriesFiles, TempDir, writeSeries } from './fixtures/series.js';

// A CT volume of 5 x 4 x 6: stored S (unsigned, BitsStored 12, so the headers bound the values
// and fix the format), intercept -1000, so modality values M from -997 to -1 (never 0, which
// is what outside samples give). Written slice k is at z = k (positions go down, InstanceNumber up).
const NX = 5;
const NY = 4;
const NZ = 6;
const S = (x: number, y: number, k: number): number => ((x * 37 + y * 101 + k * 211) % 997) + 3;
const M = (x: number, y: number, z: number): number => S(x, y, z) - 1000;

const CT = '1.2.826.0.1.1';
const MR = '1.2.826.0.1.2';
const OT = '1.2.826.0.1.3';
const MASK = '1.2.826.0.1.4';
const MONO1 = '1.2.826.0.1.5';
const STACK = '1.2.826.0.1.6';
const SIZES = '1.2.826.0.1.7';
const PAD = '1.2.826.0.1.8';
const UNKNOWN = '1.2.826.0.1.99';

const ctSpec: SeriesSpec = {
  columns: NX,
  rows: NY,
  slices: NZ,
  signed: false,
  bitsStored: 12,
  value: S,
  rescaleIntercept: () => -1000,
  rescaleSlope: () => 1,
  pixelSpacing: [0.7, 0.5],
  windowCenter: 40,
  windowWidth: 400,
};
const mask = (x: number, y: number, k: number): number => ((x * 3 + y * 5 + k) % 3 === 0 ? 1 : 0);
// A CT whose slices 0-2 have a column (x = 0) of padding (PixelPaddingValue -3024, signed 16
// bits, rescale 1/0: padding in the middle of the stored range, so only the complete volume
// tells those slices' values); its other voxels are 10x + 7y + 30k, so slice k's real values are
// 10 + 30k .. 61 + 30k for k < 3, 30k .. 61 + 30k for the others.
const PADDING = -3024;
const padded = (x: number, y: number, k: number): number => (x === 0 && k < 3 ? PADDING : 10 * x + 7 * y + 30 * k);

let tmp: TempDir;
let server: Server;
/** Base path /rs, authentication on. */
let rsServer: Server;

beforeAll(() => {
  tmp = new TempDir();
  const d = (uid: string) => join(tmp.path, uid);
  writeSeries(d(CT), { ...ctSpec, uid: CT });
  writeSeries(d(MR), { ...ctSpec, uid: MR, windowCenter: undefined, windowWidth: undefined, tweak: (_k, s) => ({ ...s, modality: 'MR' }) });
  writeSeries(d(OT), { ...ctSpec, uid: OT, tweak: (_k, s) => ({ ...s, modality: 'OT' }) });
  writeSeries(d(MASK), { uid: MASK, columns: NX, rows: NY, slices: NZ, bitsAllocated: 1, value: mask });
  writeSeries(d(MONO1), { ...ctSpec, uid: MONO1, photometricInterpretation: 'MONOCHROME1' });
  // Every image at one position: not a volume, a stack in InstanceNumber order (written k has number NZ - k).
  writeSeries(d(STACK), { ...ctSpec, uid: STACK, position: () => [0, 0, 0], instanceNumber: (k) => NZ - k });
  writeSeries(d(PAD), { ...ctSpec, uid: PAD, signed: true, bitsStored: 16, value: padded, rescaleIntercept: () => 0, pixelPaddingValue: PADDING });
  // Slice 1 is narrower: neither a volume nor a stack.
  writeSeries(d(SIZES), {
    ...ctSpec,
    uid: SIZES,
    tweak: (k, s) => (k === 1 ? { ...s, columns: NX - 1, pixels: new Uint16Array((NX - 1) * NY) } : s),
  });
  const flags = { dataDir: tmp.path, renderWorkers: 1, decodeWorkers: 1 };
  server = createServer(loadConfig({ flags, env: {} }), { useIndex: false });
  rsServer = createServer(loadConfig({ flags: { ...flags, basePath: '/rs', auth: true, tokenSecret: 'a-secret-of-sixteen-chars' }, env: {} }), {
    useIndex: false,
  });
});
afterAll(async () => {
  await server.close();
  await rsServer.close();
  tmp.remove();
});

type Res = Awaited<ReturnType<Server['app']['inject']>>;
const get = (url: string, headers: Record<string, string> = {}, s: Server = server): Promise<Res> => s.app.inject({ method: 'GET', url, headers });

function ok(res: Res): Res {
  expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
  return res;
}

/** A current-API error: the status, `{"status": "ng", "message"}` matching, CORS. */
function expectNg(res: Res, status: number, message: RegExp): void {
  expect(res.statusCode, res.body.slice(0, 300)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.headers['access-control-allow-origin']).toBe('*');
  const body = res.json() as Record<string, unknown>;
  expect(body.status).toBe('ng');
  expect(body).not.toHaveProperty('result');
  expect(body.message).toMatch(message);
}

/** Slices (z) of a descriptor, computed here: start, start + delta, ..., end. */
function slicesOf(d?: { start: number; end: number; delta: number }): number[] {
  if (!d) return Array.from({ length: NZ }, (_, z) => z);
  const out: number[] = [];
  for (let k = d.start; d.delta > 0 ? k <= d.end : k >= d.end; k += d.delta) out.push(k - 1);
  return out;
}

const descriptorQuery = (d?: { start: number; end: number; delta: number }): string => (d ? `&start=${d.start}&end=${d.end}&delta=${d.delta}` : '');

/** The window estimate over a list of values, by the spec's formula. */
function estimate(values: number[]): { level: number; width: number } {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const width = Math.floor(max - min + 1);
  return { level: Math.floor(min + width / 2), width };
}

const sliceValues = (z: number, f = M): number[] => {
  const out: number[] = [];
  for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) out.push(f(x, y, z));
  return out;
};

/** The /volume bytes of images `slices` computed here: Int16 little-endian, x fastest. */
function int16Bytes(slices: number[], f = M): Buffer {
  const out = Buffer.alloc(NX * NY * slices.length * 2);
  let o = 0;
  for (const z of slices) for (const v of sliceValues(z, f)) o = out.writeInt16LE(v, o);
  return out;
}

const int16s = (buf: Buffer): number[] => Array.from({ length: buf.length / 2 }, (_, i) => buf.readInt16LE(i * 2));

describe('partial volume descriptor', () => {
  const invalid: [string, RegExp][] = [
    ['start=1', /start, end and delta must be given together/],
    ['start=1&end=3', /start, end and delta must be given together/],
    ['start=1.5&end=3&delta=1', /parameter 'start' must be an integer/],
    ['start=1&end=x&delta=1', /parameter 'end' must be a finite decimal number/],
    ['start=0&end=3&delta=1', /Volume descriptor is invalid: start and end must be between 1 and 6/],
    ['start=1&end=7&delta=1', /Volume descriptor is invalid: start and end must be between 1 and 6/],
    ['start=1&end=3&delta=0', /Volume descriptor is invalid: delta must not be 0/],
    ['start=1&end=5&delta=-1', /Volume descriptor is invalid: delta must have the sign of end - start/],
    ['start=5&end=1&delta=1', /Volume descriptor is invalid: delta must have the sign of end - start/],
    ['start=1&end=6&delta=2', /Volume descriptor is invalid: \(end - start\) \/ delta must be a whole number/],
    ['start=3&end=3&delta=-1', /Volume descriptor is invalid: start = end needs a positive delta/],
  ];

  it.each(invalid)('metadata with %s is 400 naming the rule', async (query, message) => {
    expectNg(await get(`/series/${CT}/metadata?${query}`), 400, message);
  });

  it('volume and scan check the descriptor the same way', async () => {
    expectNg(await get(`/series/${CT}/volume?start=1&end=6&delta=2`), 400, /whole number/);
    expectNg(await get(`/series/${CT}/scan?origin=0,0,0&xAxis=1,0,0&yAxis=0,1,0&size=1,1&start=2&end=2&delta=0`), 400, /delta must not be 0/);
  });

  it('names images start, start + delta, ..., end; a negative delta reverses; start = end is one image', async () => {
    for (const d of [
      { start: 2, end: 6, delta: 2 },
      { start: 5, end: 1, delta: -2 },
      { start: 6, end: 1, delta: -1 },
      { start: 3, end: 3, delta: 1 },
      { start: 4, end: 4, delta: -3 },
    ]) {
      const res = ok(await get(`/series/${CT}/volume?${descriptorQuery(d).slice(1)}`));
      expect(res.rawPayload.equals(int16Bytes(slicesOf(d))), JSON.stringify(d)).toBe(true);
    }
    expect(slicesOf({ start: 5, end: 1, delta: -2 })).toEqual([4, 2, 0]);
  });
});

describe('GET /series/:sid/metadata', () => {
  it('answers the fields of a CT volume (no estimate by default)', async () => {
    const res = ok(await get(`/series/${CT}/metadata`));
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      voxelCount: [NX, NY, NZ],
      voxelSize: [0.5, 0.7, 2.5],
      pixelFormat: 'int16',
      dicomWindow: { level: 40, width: 400 },
      mode: '3d',
      modality: 'CT',
    });
    expect(ok(await get(`/series/${CT}/metadata?estimateWindow=none`)).json()).not.toHaveProperty('estimatedWindow');
  });

  it('estimates the window from all voxels (full), the first image or the centre one', async () => {
    const all = Array.from({ length: NZ }, (_, z) => sliceValues(z)).flat();
    const full = ok(await get(`/series/${CT}/metadata?estimateWindow=full`)).json();
    expect(full.estimatedWindow).toEqual(estimate(all));
    expect(ok(await get(`/series/${CT}/metadata?estimateWindow=first`)).json().estimatedWindow).toEqual(estimate(sliceValues(0)));
    // Centre: index floor(6 / 2) = 3.
    expect(ok(await get(`/series/${CT}/metadata?estimateWindow=center`)).json().estimatedWindow).toEqual(estimate(sliceValues(3)));
    // The same numbers worked out by hand from S: all voxels -997 .. -5, slice 0 -997 .. -546,
    // slice 3 -984 .. -14 (37x + 101y + 633 wraps past 997 there).
    expect(full.estimatedWindow).toEqual({ level: -501, width: 993 });
    expect(estimate(sliceValues(0))).toEqual({ level: -771, width: 452 });
    expect(estimate(sliceValues(3))).toEqual({ level: -499, width: 971 });
  });

  it('describes a partial volume: its count, its own spacing, its first and centre images', async () => {
    const d = { start: 2, end: 6, delta: 2 }; // slices 1, 3, 5
    const body = ok(await get(`/series/${CT}/metadata?estimateWindow=first${descriptorQuery(d)}`)).json();
    expect(body.voxelCount).toEqual([NX, NY, 3]);
    expect(body.voxelSize).toEqual([0.5, 0.7, 5]);
    expect(body.estimatedWindow).toEqual(estimate(sliceValues(1)));
    const center = ok(await get(`/series/${CT}/metadata?estimateWindow=center${descriptorQuery(d)}`)).json();
    expect(center.estimatedWindow).toEqual(estimate(sliceValues(3)));
    // Reversed: slices 4, 2, 0; first is 4, centre (index 1) is 2; spacing 2 x 2.5.
    const r = { start: 5, end: 1, delta: -2 };
    const rev = ok(await get(`/series/${CT}/metadata?estimateWindow=first${descriptorQuery(r)}`)).json();
    expect(rev.voxelSize).toEqual([0.5, 0.7, 5]);
    expect(rev.estimatedWindow).toEqual(estimate(sliceValues(4)));
    expect(ok(await get(`/series/${CT}/metadata?estimateWindow=center${descriptorQuery(r)}`)).json().estimatedWindow).toEqual(
      estimate(sliceValues(2)),
    );
    // The full estimate covers the images of the partial volume, no other.
    const named = slicesOf(d).flatMap((z) => sliceValues(z));
    expect(ok(await get(`/series/${CT}/metadata?estimateWindow=full${descriptorQuery(d)}`)).json().estimatedWindow).toEqual(estimate(named));
    const all = Array.from({ length: NZ }, (_, z) => sliceValues(z)).flat();
    expect(estimate(named)).not.toEqual(estimate(all));
    // One image: the series' spacing, never 0.
    const one = ok(await get(`/series/${CT}/metadata?start=4&end=4&delta=1`)).json();
    expect(one.voxelCount).toEqual([NX, NY, 1]);
    expect(one.voxelSize).toEqual([0.5, 0.7, 2.5]);
  });

  it('every estimate leaves padding out the same way; full covers the images a descriptor names', async () => {
    const window = async (query: string) => ok(await get(`/series/${PAD}/metadata?${query}`)).json().estimatedWindow;
    // Twice: first as the series loads, then from the complete volume in the cache.
    for (let pass = 0; pass < 2; pass++) {
      // All real values 10 .. 211: width 202, level floor(10 + 101) = 111.
      expect(await window('estimateWindow=full')).toEqual({ level: 111, width: 202 });
      // Slice 0 (padding left out) 10 .. 61: width 52, level floor(10 + 26) = 36 (with its padding it would be -1481, 3086).
      expect(await window('estimateWindow=first')).toEqual({ level: 36, width: 52 });
      // Image floor(6 / 2) = 3, no padding: 90 .. 151, width 62, level floor(90 + 31) = 121.
      expect(await window('estimateWindow=center')).toEqual({ level: 121, width: 62 });
      // Images 1-3 (slices 0, 1, 2, all with padding): 10 .. 121, width 112, level floor(10 + 56) = 66.
      expect(await window('estimateWindow=full&start=1&end=3&delta=1')).toEqual({ level: 66, width: 112 });
      // Images 6, 4, 2 (slices 5, 3, 1): 40 .. 211, width 172, level floor(40 + 86) = 126; first is
      // slice 5 (150 .. 211); centre (index 1) slice 3.
      expect(await window('estimateWindow=full&start=6&end=2&delta=-2')).toEqual({ level: 126, width: 172 });
      expect(await window('estimateWindow=first&start=6&end=2&delta=-2')).toEqual({ level: 181, width: 62 });
      expect(await window('estimateWindow=center&start=6&end=2&delta=-2')).toEqual({ level: 121, width: 62 });
      // Image 2 is slice 1 with its padding: 40 .. 91.
      expect(await window('estimateWindow=first&start=2&end=6&delta=2')).toEqual({ level: 66, width: 52 });
    }
    // The same numbers from the values written here (padding left out).
    const real = (z: number): number[] => sliceValues(z, padded).filter((v) => v !== PADDING);
    expect(estimate([0, 1, 2, 3, 4, 5].flatMap(real))).toEqual({ level: 111, width: 202 });
    expect(estimate(real(0))).toEqual({ level: 36, width: 52 });
    expect(estimate([0, 1, 2].flatMap(real))).toEqual({ level: 66, width: 112 });
    expect(estimate([5, 3, 1].flatMap(real))).toEqual({ level: 126, width: 172 });
    expect(estimate(real(5))).toEqual({ level: 181, width: 62 });
    expect(estimate(real(3))).toEqual({ level: 121, width: 62 });
    expect(estimate(real(1))).toEqual({ level: 66, width: 52 });
    // The padding voxels are still in the volume's bytes, as they are.
    expect(int16s(ok(await get(`/series/${PAD}/volume?start=1&end=1&delta=1`)).rawPayload)).toEqual(sliceValues(0, padded));
  });

  it('first leaves padding out of a slice known before the series completes (padding keeping its own value)', async () => {
    // Signed 12 bits, PixelPaddingValue -2048 (the bottom of the range), intercept -1024: padding
    // is -3072, below every real value, so slice 0 alone tells its values.
    const uid = '1.2.826.0.1.52';
    const stored = (x: number, y: number, k: number): number => (x === 0 ? -2048 : 10 * x + 7 * y + 30 * k);
    const files = seriesFiles({
      ...ctSpec,
      uid,
      signed: true,
      bitsStored: 12,
      value: stored,
      rescaleIntercept: () => -1024,
      pixelPaddingValue: -2048,
      fileName: (k) => `slice ${k}`,
    });
    const held = new HeldSeries(uid, files);
    const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'unused'), renderWorkers: 1, decodeWorkers: 1 }, env: {} }), {
      source: held,
    });
    try {
      const first = get(`/series/${uid}/metadata?estimateWindow=first`, {}, s);
      await held.whenAsked('slice 0');
      held.release('slice 0');
      // Slice 0's real values -1014 .. -963: width 52, level floor(-1014 + 26) = -988.
      expect(ok(await first).json().estimatedWindow).toEqual({ level: -988, width: 52 });
      expect(held.passed).toEqual(['slice 0']);
      held.release();
      // From the complete volume: the same.
      await (await s.volumes.open(uid)).complete;
      expect(ok(await get(`/series/${uid}/metadata?estimateWindow=first`, {}, s)).json().estimatedWindow).toEqual({ level: -988, width: 52 });
      // All real values -1014 .. -813.
      expect(ok(await get(`/series/${uid}/metadata?estimateWindow=full`, {}, s)).json().estimatedWindow).toEqual({ level: -913, width: 202 });
    } finally {
      await s.close();
    }
  });

  it('refuses an unknown estimateWindow', async () => {
    expectNg(await get(`/series/${CT}/metadata?estimateWindow=Full`), 400, /parameter 'estimateWindow' must be one of full, first, center, none/);
    expectNg(await get(`/series/${CT}/metadata?estimateWindow=`), 400, /parameter 'estimateWindow' is empty/);
  });

  it('mode: 3d for CT, MR and PT volumes, 2d for other modalities; dicomWindow only when the files have one', async () => {
    const mr = ok(await get(`/series/${MR}/metadata`)).json();
    expect(mr.mode).toBe('3d');
    expect(mr.modality).toBe('MR');
    expect(mr).not.toHaveProperty('dicomWindow');
    const ot = ok(await get(`/series/${OT}/metadata`)).json();
    expect(ot.mode).toBe('2d');
    expect(ot.voxelSize).toEqual([0.5, 0.7, 2.5]);
  });

  it('a mask is binary', async () => {
    const body = ok(await get(`/series/${MASK}/metadata?estimateWindow=first`)).json();
    expect(body.pixelFormat).toBe('binary');
    expect(body.voxelCount).toEqual([NX, NY, NZ]);
    expect(body.estimatedWindow).toEqual(estimate(sliceValues(0, mask)));
  });

  it('a stack of images (not a volume) is 2d, in InstanceNumber order, with voxelSize z 1', async () => {
    // InstanceNumber order: z = 0 is written image NZ - 1.
    const order = Array.from({ length: NZ }, (_, z) => NZ - 1 - z);
    for (let pass = 0; pass < 2; pass++) {
      // The second time the stack is complete in the cache: the same answer.
      const body = ok(await get(`/series/${STACK}/metadata?estimateWindow=first`)).json();
      expect(body.mode).toBe('2d');
      expect(body.voxelCount).toEqual([NX, NY, NZ]);
      expect(body.voxelSize).toEqual([0.5, 0.7, 1]);
      expect(body.estimatedWindow).toEqual(estimate(sliceValues(order[0])));
      ok(await get(`/series/${STACK}/volume`));
    }
    const partial = ok(await get(`/series/${STACK}/metadata?start=1&end=5&delta=2`)).json();
    expect(partial.voxelSize).toEqual([0.5, 0.7, 1]);
    expect(ok(await get(`/series/${STACK}/volume`)).rawPayload.equals(Buffer.concat(order.map((k) => int16Bytes([k]))))).toBe(true);
    // The 2016 API still refuses it.
    expect((await get(`/metadata?series=${STACK}`)).statusCode).toBe(422);
  });

  it('answers without the pixel data (none), or with the one image it needs (first, center)', async () => {
    const uid = '1.2.826.0.1.50';
    const files = seriesFiles({ ...ctSpec, uid, fileName: (k) => `slice ${k}` });
    const held = new HeldSeries(uid, files);
    const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'unused'), renderWorkers: 1, decodeWorkers: 1 }, env: {} }), {
      source: held,
    });
    try {
      const none = ok(await get(`/series/${uid}/metadata`, {}, s)).json();
      expect(none.pixelFormat).toBe('int16');
      expect(none.voxelCount).toEqual([NX, NY, NZ]);
      expect(held.passed).toEqual([]);
      // first waits for slice 0 alone.
      const first = get(`/series/${uid}/metadata?estimateWindow=first`, {}, s);
      await held.whenAsked('slice 0');
      held.release('slice 0');
      expect(ok(await first).json().estimatedWindow).toEqual(estimate(sliceValues(0)));
      // center of images 2..6 step 2 (slices 1, 3, 5) waits for slice 3 alone.
      const center = get(`/series/${uid}/metadata?estimateWindow=center&start=2&end=6&delta=2`, {}, s);
      await held.whenAsked('slice 3');
      held.release('slice 3');
      expect(ok(await center).json().estimatedWindow).toEqual(estimate(sliceValues(3)));
      expect([...held.passed].sort()).toEqual(['slice 0', 'slice 3']);
      // full needs every voxel.
      const full = get(`/series/${uid}/metadata?estimateWindow=full`, {}, s);
      held.release();
      expect(ok(await full).json().estimatedWindow).toEqual({ level: -501, width: 993 });
    } finally {
      await s.close();
    }
  });
});

describe('GET /series/:sid/volume', () => {
  it('sends the voxels, little-endian, x fastest, image by image, with Content-Length', async () => {
    const res = ok(await get(`/series/${CT}/volume`));
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers['content-length']).toBe(String(NX * NY * NZ * 2));
    expect(res.rawPayload.length).toBe(NX * NY * NZ * 2);
    expect(int16s(res.rawPayload)).toEqual(Array.from({ length: NZ }, (_, z) => sliceValues(z)).flat());
    expect(res.rawPayload.equals(int16Bytes(slicesOf()))).toBe(true);
  });

  it('gzips when the client accepts gzip, to the same bytes', async () => {
    const res = ok(await get(`/series/${CT}/volume?start=2&end=6&delta=2`, { 'accept-encoding': 'br, gzip;q=0.8' }));
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['content-length']).toBeUndefined();
    expect(String(res.headers.vary)).toMatch(/Accept-Encoding/);
    expect(gunzipSync(res.rawPayload).equals(int16Bytes([1, 3, 5]))).toBe(true);
    // gzip;q=0 refuses it.
    const plain = ok(await get(`/series/${CT}/volume`, { 'accept-encoding': 'gzip;q=0, deflate' }));
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.rawPayload.equals(int16Bytes(slicesOf()))).toBe(true);
  });

  it('packs a mask 8 voxels a byte, most significant bit first, each image from a byte boundary', async () => {
    const res = ok(await get(`/series/${MASK}/volume`));
    const perImage = Math.ceil((NX * NY) / 8);
    expect(res.headers['content-length']).toBe(String(perImage * NZ));
    const expected = Buffer.alloc(perImage * NZ);
    for (let z = 0; z < NZ; z++) {
      sliceValues(z, mask).forEach((v, i) => {
        if (v) expected[z * perImage + (i >> 3)] |= 0x80 >> (i & 7);
      });
    }
    expect(res.rawPayload.equals(expected)).toBe(true);
  });

  it('stops waiting for images when the client goes away', async () => {
    const uid = '1.2.826.0.1.51';
    const files = seriesFiles({ ...ctSpec, uid, fileName: (k) => `slice ${k}` });
    const held = new HeldSeries(uid, files);
    const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'unused'), renderWorkers: 1, decodeWorkers: 1 }, env: {} }), {
      source: held,
    });
    try {
      await s.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = s.app.server.address() as AddressInfo;
      held.release('slice 0');
      const load = (await s.volumes.open(uid)) as ProgressiveVolume;
      const firstBytes = await new Promise<{ status: number; chunk: Buffer; destroy: () => void }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/series/${uid}/volume` }, (res) => {
          res.once('data', (chunk: Buffer) => resolve({ status: res.statusCode ?? 0, chunk, destroy: () => req.destroy() }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(firstBytes.status).toBe(200);
      expect(firstBytes.chunk.equals(int16Bytes([0]))).toBe(true);
      // The route now waits for image 1 (held).
      for (let i = 0; i < 400 && load.waiting === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(load.waiting).toBe(1);
      firstBytes.destroy();
      for (let i = 0; i < 400 && load.waiting > 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(load.waiting).toBe(0);
      held.release();
      await load.complete;
    } finally {
      await s.close();
    }
  });
});

// --- /scan: a reference sampler written from the spec, independently of src/core/mpr/scan.ts.

type V3 = [number, number, number];
interface Plane {
  origin: V3;
  xAxis: V3;
  yAxis: V3;
  w: number;
  h: number;
}

const pointOf = (p: Plane, i: number, j: number): V3 => [0, 1, 2].map((a) => p.origin[a] + (i * p.xAxis[a]) / p.w + (j * p.yAxis[a]) / p.h) as V3;

const EPS = 1e-9;

/** Every value nearest sampling may give at `q` (several only when q lies on a voxel boundary); null = outside. */
function nearestCandidates(q: V3, slices: number[], f = M): (number | null)[] {
  const n = [NX, NY, slices.length];
  const choices = q.map((c) => [...new Set([Math.floor(c - EPS), Math.floor(c + EPS)])]);
  const out: (number | null)[] = [];
  for (const x of choices[0])
    for (const y of choices[1])
      for (const z of choices[2]) {
        const idx = [x, y, z];
        out.push(idx.some((v, a) => v < 0 || v >= n[a]) ? null : f(x, y, slices[z]));
      }
  return out;
}

/** Trilinear at q - 0.5 with edges repeated, as a weighted sum of the eight corners; null = outside. */
function trilinearAt(q: V3, slices: number[], f = M): number | null {
  const n = [NX, NY, slices.length];
  if (q.some((c, a) => c < -EPS || c > n[a] + EPS)) return null;
  const base = q.map((c) => Math.floor(c - 0.5));
  const frac = q.map((c, a) => c - 0.5 - base[a]);
  const clampTo = (v: number, a: number) => Math.max(0, Math.min(n[a] - 1, v));
  let sum = 0;
  for (let corner = 0; corner < 8; corner++) {
    const d = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
    const idx = d.map((di, a) => clampTo(base[a] + di, a));
    const weight = d.reduce((acc, di, a) => acc * (di ? frac[a] : 1 - frac[a]), 1);
    sum += weight * f(idx[0], idx[1], slices[idx[2]]);
  }
  return sum;
}

/** The window before rounding (inverted for MONOCHROME1). */
const windowExact = (v: number, ww: number, wl: number, invert = false): number => {
  const x = Math.max(0, Math.min(255, ((v - wl + ww / 2) * 255) / ww));
  return invert ? 255 - x : x;
};
/** The contract's byte: rounded half up, then inverted for MONOCHROME1. */
const windowByte = (v: number, ww: number, wl: number, invert = false): number => {
  const b = Math.floor(windowExact(v, ww, wl) + 0.5);
  return invert ? 255 - b : b;
};

const scanUrl = (uid: string, p: Plane, extra = ''): string =>
  `/series/${uid}/scan?origin=${p.origin.join(',')}&xAxis=${p.xAxis.join(',')}&yAxis=${p.yAxis.join(',')}&size=${p.w},${p.h}${extra}`;

// An axial-ish plane wider than the volume (outside on every side) and an oblique one.
const AXIAL: Plane = { origin: [-1.3, -0.7, 2.4], xAxis: [8, 0, 0], yAxis: [0, 6, 0.84], w: 16, h: 12 };
const OBLIQUE: Plane = { origin: [-0.37, 0.21, -0.43], xAxis: [5.9, 1.3, 3.1], yAxis: [-0.9, 4.7, 4.4], w: 13, h: 11 };

/** Checks raw values (Int16) of a scan against the reference. */
function checkValues(got: number[], p: Plane, slices: number[], interpolation: boolean, f = M): { inside: number; outside: number } {
  expect(got.length).toBe(p.w * p.h);
  let inside = 0;
  let outside = 0;
  for (let j = 0; j < p.h; j++)
    for (let i = 0; i < p.w; i++) {
      const q = pointOf(p, i, j);
      const g = got[i + j * p.w];
      if (!interpolation) {
        const c = nearestCandidates(q, slices, f).map((v) => v ?? 0);
        expect(c, `pixel ${i},${j}`).toContain(g);
        if (g === 0) outside++;
        else inside++;
      } else {
        const v = trilinearAt(q, slices, f);
        if (v === null) {
          expect(g, `pixel ${i},${j}`).toBe(0);
          outside++;
        } else {
          expect(Math.abs(g - v), `pixel ${i},${j}: ${g} vs ${v}`).toBeLessThanOrEqual(0.5 + 1e-6);
          inside++;
        }
      }
    }
  return { inside, outside };
}

/** Checks windowed bytes of a scan against the reference. */
function checkWindowed(got: Uint8Array, p: Plane, slices: number[], interpolation: boolean, ww: number, wl: number, invert = false): void {
  expect(got.length).toBe(p.w * p.h);
  for (let j = 0; j < p.h; j++)
    for (let i = 0; i < p.w; i++) {
      const q = pointOf(p, i, j);
      const g = got[i + j * p.w];
      if (!interpolation) {
        const c = nearestCandidates(q, slices).map((v) => (v === null ? 0 : windowByte(v, ww, wl, invert)));
        expect(c, `pixel ${i},${j}`).toContain(g);
      } else {
        const v = trilinearAt(q, slices);
        if (v === null) expect(g, `pixel ${i},${j}`).toBe(0);
        else expect(Math.abs(g - windowExact(v, ww, wl, invert)), `pixel ${i},${j}`).toBeLessThanOrEqual(0.5 + 1e-6);
      }
    }
}

describe('GET /series/:sid/scan', () => {
  it('nearest: the voxel at floor(p), 0 outside, Int16 little-endian', async () => {
    for (const p of [AXIAL, OBLIQUE]) {
      const res = ok(await get(scanUrl(CT, p)));
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.rawPayload.length).toBe(p.w * p.h * 2);
      const counts = checkValues(int16s(res.rawPayload), p, slicesOf(), false);
      expect(counts.inside).toBeGreaterThan(20);
      expect(counts.outside).toBeGreaterThan(5);
    }
  });

  it('trilinear at p - 0.5 with edges repeated, rounded; 0 outside', async () => {
    for (const p of [AXIAL, OBLIQUE]) {
      const res = ok(await get(scanUrl(CT, p, '&interpolation=1')));
      const counts = checkValues(int16s(res.rawPayload), p, slicesOf(), true);
      expect(counts.inside).toBeGreaterThan(20);
      expect(counts.outside).toBeGreaterThan(5);
    }
  });

  it('the outside rules at the volume edge: nearest < size, trilinear <= size', async () => {
    const one = async (origin: V3, interpolation: boolean) => {
      const res = ok(await get(scanUrl(CT, { origin, xAxis: [1, 0, 0], yAxis: [0, 1, 0], w: 1, h: 1 }, interpolation ? '&interpolation=true' : '')));
      return res.rawPayload.readInt16LE(0);
    };
    // x = 5 = nx: outside for nearest, the edge voxel (x = 4) repeated for trilinear.
    expect(await one([5, 0.5, 0.5], false)).toBe(0);
    expect(await one([5, 0.5, 0.5], true)).toBe(M(4, 0, 0));
    expect(await one([4.99, 0.5, 0.5], false)).toBe(M(4, 0, 0));
    expect(await one([5.01, 0.5, 0.5], true)).toBe(0);
    expect(await one([0, 0, 0], true)).toBe(M(0, 0, 0));
    expect(await one([-0.01, 2.5, 3.5], true)).toBe(0);
    expect(await one([-0.01, 2.5, 3.5], false)).toBe(0);
    // Centres are exact: (2.5, 1.5, 3.5) is voxel (2, 1, 3) both ways.
    expect(await one([2.5, 1.5, 3.5], true)).toBe(M(2, 1, 3));
    expect(await one([2.5, 1.5, 3.5], false)).toBe(M(2, 1, 3));
    // Halfway between two centres along x: their mean, rounded half up.
    expect(await one([3, 1.5, 3.5], true)).toBe(Math.floor((M(2, 1, 3) + M(3, 1, 3)) / 2 + 0.5));
  });

  it('interpolation is off when absent or 0, false, f, no or empty; on otherwise', async () => {
    const p: Plane = { origin: [3, 1.5, 3.5], xAxis: [1, 0, 0], yAxis: [0, 1, 0], w: 1, h: 1 };
    const nearest = M(3, 1, 3);
    const mean = Math.floor((M(2, 1, 3) + M(3, 1, 3)) / 2 + 0.5);
    expect(nearest).not.toBe(mean);
    for (const v of ['', '=0', '=false', '=f', '=no', '=FALSE', '=No']) {
      const url = v === '' ? scanUrl(CT, p) : scanUrl(CT, p, `&interpolation${v}`);
      expect(ok(await get(url)).rawPayload.readInt16LE(0), v).toBe(nearest);
    }
    expect(ok(await get(scanUrl(CT, p, '&interpolation='))).rawPayload.readInt16LE(0)).toBe(nearest);
    for (const v of ['1', 'true', 'yes', 'on']) {
      expect(ok(await get(scanUrl(CT, p, `&interpolation=${v}`))).rawPayload.readInt16LE(0), v).toBe(mean);
    }
  });

  it('windowed: w*h bytes, inside values windowed, outside 0', async () => {
    const [ww, wl] = [300, -600];
    for (const interpolation of [false, true]) {
      for (const p of [AXIAL, OBLIQUE]) {
        const res = ok(await get(scanUrl(CT, p, `&ww=${ww}&wl=${wl}${interpolation ? '&interpolation=1' : ''}`)));
        expect(res.headers['content-type']).toBe('application/octet-stream');
        checkWindowed(new Uint8Array(res.rawPayload), p, slicesOf(), interpolation, ww, wl);
      }
    }
    // Some inside values window to 0 and 255, some between: the window is exercised.
    const bytes = new Uint8Array(ok(await get(scanUrl(CT, AXIAL, `&ww=${ww}&wl=${wl}`))).rawPayload);
    expect(bytes.some((b) => b === 255)).toBe(true);
    expect(bytes.some((b) => b > 0 && b < 255)).toBe(true);
  });

  it('MONOCHROME1 is inverted when windowed, outside still 0', async () => {
    const [ww, wl] = [500, -400];
    const res = ok(await get(scanUrl(MONO1, AXIAL, `&ww=${ww}&wl=${wl}`)));
    checkWindowed(new Uint8Array(res.rawPayload), AXIAL, slicesOf(), false, ww, wl, true);
  });

  it('format=png: an 8-bit grey PNG of the windowed bytes', async () => {
    for (const interpolation of ['', '&interpolation=1']) {
      const query = `&ww=250&wl=-500${interpolation}`;
      const res = ok(await get(scanUrl(CT, OBLIQUE, `${query}&format=png`)));
      expect(res.headers['content-type']).toBe('image/png');
      const img = decode(res.rawPayload);
      expect([img.width, img.height, img.channels, img.depth]).toEqual([OBLIQUE.w, OBLIQUE.h, 1, 8]);
      checkWindowed(new Uint8Array(img.data), OBLIQUE, slicesOf(), interpolation !== '', 250, -500);
      const raw = ok(await get(scanUrl(CT, OBLIQUE, query))).rawPayload;
      expect(Buffer.from(img.data as Uint8Array).equals(raw)).toBe(true);
    }
  });

  it('z counts the images of a partial volume (reversed too)', async () => {
    const p: Plane = { origin: [0.13, 0.27, 0.3], xAxis: [4.6, 0, 0], yAxis: [0, 3.5, 2.6], w: 9, h: 7 };
    for (const d of [
      { start: 2, end: 6, delta: 2 },
      { start: 6, end: 1, delta: -1 },
    ]) {
      const slices = slicesOf(d);
      for (const interpolation of [false, true]) {
        const res = ok(await get(scanUrl(CT, p, `${descriptorQuery(d)}${interpolation ? '&interpolation=1' : ''}`)));
        const counts = checkValues(int16s(res.rawPayload), p, slices, interpolation);
        expect(counts.inside).toBe(p.w * p.h);
      }
    }
    // Image 2 of 2,4,6 is slice 3, not slice 1 or 2.
    const one = ok(await get(`/series/${CT}/scan?origin=2.5,1.5,1.5&xAxis=1,0,0&yAxis=0,1,0&size=1,1&start=2&end=6&delta=2`));
    expect(one.rawPayload.readInt16LE(0)).toBe(M(2, 1, 3));
  });

  it('a mask gives 0 and 1 packed, or 0 and 255 windowed', async () => {
    const p: Plane = { origin: [0.5, 0.5, 0.5], xAxis: [5, 0, 0], yAxis: [0, 4, 0], w: 5, h: 4 };
    const res = ok(await get(scanUrl(MASK, p)));
    expect(res.rawPayload.length).toBe(Math.ceil((NX * NY) / 8));
    const bits = Array.from({ length: NX * NY }, (_, i) => (res.rawPayload[i >> 3] >> (7 - (i & 7))) & 1);
    expect(bits).toEqual(sliceValues(0, mask));
    const windowed = ok(await get(scanUrl(MASK, p, '&ww=1000&wl=7000'))).rawPayload;
    expect(Array.from(windowed)).toEqual(sliceValues(0, mask).map((v) => v * 255));
  });

  it('size: whole numbers >= 1, at most 2048 x 2048 pixels', async () => {
    const base = `/series/${CT}/scan?origin=0,0,0&xAxis=1,0,0&yAxis=0,1,0`;
    expectNg(await get(`${base}&size=2049,2048`), 400, /parameter 'size' must have at most 4194304 pixels/);
    expectNg(await get(`${base}&size=4194305,1`), 400, /parameter 'size' must have at most/);
    expectNg(await get(`${base}&size=0,5`), 400, /parameter 'size' must be two whole numbers of at least 1/);
    expectNg(await get(`${base}&size=1.5,2`), 400, /parameter 'size' must be two whole numbers/);
    expectNg(await get(`${base}&size=3`), 400, /parameter 'size' must be 2 comma-separated numbers/);
    expectNg(await get(base), 400, /parameter 'size' is required/);
    // The largest size is served (outside the volume: all 0).
    const res = ok(await get(`/series/${CT}/scan?origin=-10,-10,-10&xAxis=1,0,0&yAxis=0,1,0&size=2048,2048&ww=100&wl=0&format=png`));
    const img = decode(res.rawPayload);
    expect([img.width, img.height]).toEqual([2048, 2048]);
    expect((img.data as Uint8Array).every((b) => b === 0)).toBe(true);
  });

  it('refuses bad vectors and windows, naming the parameter', async () => {
    const p = `/series/${CT}/scan?size=2,2`;
    expectNg(await get(`${p}&xAxis=1,0,0&yAxis=0,1,0`), 400, /parameter 'origin' is required/);
    expectNg(await get(`${p}&origin=1,2&xAxis=1,0,0&yAxis=0,1,0`), 400, /parameter 'origin' must be 3 comma-separated numbers/);
    expectNg(await get(`${p}&origin=0,0,0&xAxis=1,a,0&yAxis=0,1,0`), 400, /parameter 'xAxis' \(value 2\) must be a finite decimal number/);
    expectNg(await get(`${p}&origin=0,0,0&xAxis=1,0,0`), 400, /parameter 'yAxis' is required/);
    const q = `${p}&origin=0,0,0&xAxis=1,0,0&yAxis=0,1,0`;
    expectNg(await get(`${q}&format=png`), 400, /parameter 'format' png needs 'ww' and 'wl'/);
    expectNg(await get(`${q}&format=png&ww=100`), 400, /parameters 'ww' and 'wl' must be given together/);
    expectNg(await get(`${q}&format=jpeg&ww=100&wl=0`), 400, /parameter 'format' must be one of png/);
    expectNg(await get(`${q}&ww=0&wl=0`), 400, /parameter 'ww' must be greater than 0/);
  });
});

describe('series errors, CORS and the error body', () => {
  it('404 for an unknown series, 400 for a bad sid, 422 for images that are neither a volume nor a stack', async () => {
    for (const route of ['metadata', 'volume', 'scan?origin=0,0,0&xAxis=1,0,0&yAxis=0,1,0&size=1,1']) {
      expectNg(await get(`/series/${UNKNOWN}/${route}`), 404, /not found/);
      expectNg(await get(`/series/abc/${route}`), 400, /path parameter 'sid' must be a DICOM UID/);
      expectNg(await get(`/series/12345/${route}`), 400, /path parameter 'sid' must be a DICOM UID \(digits and dots, at least one dot/);
      expectNg(await get(`/series/${SIZES}/${route}`), 422, /Rows x Columns/);
    }
  });

  it('unknown paths under /series/ and other methods answer the current body; the 2016 routes keep theirs', async () => {
    expectNg(await get(`/series/${CT}/nothing`), 404, /unknown action/);
    const post = await server.app.inject({ method: 'POST', url: `/series/${CT}/metadata` });
    expectNg(post, 405, /method POST is not allowed/);
    const old = await get('/metadata?series=abc');
    expect(old.statusCode).toBe(400);
    expect(old.json()).toMatchObject({ result: 'ng' });
    expect(old.json()).not.toHaveProperty('status');
    expect((await get('/nothing')).json()).toMatchObject({ result: 'ng' });
  });

  it('CORS headers on every response; OPTIONS preflight is 204 on /series/ paths', async () => {
    const check = (res: Res) => {
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(res.headers['access-control-allow-methods']).toBe('GET');
      expect(res.headers['access-control-allow-headers']).toBe('Authorization, Accept');
      expect(res.headers['access-control-max-age']).toBe('86400');
    };
    check(ok(await get(`/series/${CT}/metadata`)));
    check(await get(`/series/${UNKNOWN}/metadata`));
    check(ok(await get('/status')));
    for (const url of [`/series/${CT}/metadata`, `/series/${CT}/scan?origin=0,0,0`, '/token?series=1.2']) {
      const pre = await server.app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin: 'https://viewer.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
      expect(pre.statusCode).toBe(204);
      expect(pre.body).toBe('');
      check(pre);
    }
  });

  it('corsOrigin sets Access-Control-Allow-Origin', async () => {
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path, corsOrigin: 'https://viewer.example' }, env: {} }), { useIndex: false });
    try {
      const res = ok(await get(`/series/${CT}/metadata`, {}, s));
      expect(res.headers['access-control-allow-origin']).toBe('https://viewer.example');
    } finally {
      await s.close();
    }
  });
});

describe('base path and tokens', () => {
  const rs = (url: string, headers: Record<string, string> = {}, remoteAddress?: string) =>
    rsServer.app.inject({ method: 'GET', url, headers, ...(remoteAddress ? { remoteAddress } : {}) });

  it('serves both APIs and /status under the base path, nothing at the root', async () => {
    expect(ok(await rs('/rs/status')).json().status).toBe('Running');
    expect((await rs('/status')).statusCode).toBe(404);
    expect((await rs(`/metadata?series=${CT}`)).statusCode).toBe(404);
    expect((await rs(`/series/${CT}/metadata`)).statusCode).toBe(404);
    // Under /rs the series routes need a token (authentication is on): 401, the current body.
    const res = await rs(`/rs/series/${CT}/metadata`);
    expectNg(res, 401, /token/);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="CircusRS"');
    expectNg(await rs(`/rs/series/${CT}/nothing`), 404, /unknown action/);
    const old = await rs(`/rs/metadata?series=${CT}`);
    expect(old.statusCode).toBe(401);
    expect(old.json()).toMatchObject({ result: 'ng' });
    const pre = await rsServer.app.inject({ method: 'OPTIONS', url: `/rs/series/${CT}/volume` });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-headers']).toBe('Authorization, Accept');
    // Counted by action, without the base path.
    expect(ok(await rs('/rs/status')).json().counter.status).toBeGreaterThanOrEqual(1);
  });

  it('GET /token issues a token the series routes take as a Bearer token', async () => {
    const res = ok(await rs(`/rs/token?series=${CT}`));
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.result).toBe('OK');
    expect(typeof body.token).toBe('string');
    const auth = { authorization: `Bearer ${body.token}` };
    const meta = ok(await rs(`/rs/series/${CT}/metadata`, auth)).json();
    expect(meta.voxelCount).toEqual([NX, NY, NZ]);
    expect(ok(await rs(`/rs/series/${CT}/volume`, auth)).rawPayload.equals(int16Bytes(slicesOf()))).toBe(true);
    // The same token in the 2016 API, and not for another series.
    ok(await rs(`/rs/metadata?series=${CT}`, auth));
    const other = await rs(`/rs/series/${MR}/metadata`, auth);
    expectNg(other, 401, /./);
    expect(other.headers['www-authenticate']).toMatch(/^Bearer realm="CircusRS"/);
    expectNg(await rs(`/rs/series/${CT}/metadata`, { authorization: 'Bearer nonsense' }), 401, /./);
  });

  it('GET /token: only for token issuers (403), with a valid series (400)', async () => {
    expectNg(await rs(`/rs/token?series=${CT}`, {}, '10.1.2.3'), 403, /tokens are not issued to 10\.1\.2\.3/);
    expectNg(await rs('/rs/token'), 400, /parameter 'series' is required/);
    expectNg(await rs('/rs/token?series=x'), 400, /parameter 'series' must be a DICOM UID/);
  });

  it('basePath must start with / and not end with /', () => {
    for (const bad of ['rs', '/rs/', '/', '//rs', '/r s']) {
      expect(() => loadConfig({ flags: { basePath: bad }, env: {} }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ flags: { basePath: bad }, env: {} }), bad).toThrow(
        /option basePath \(--base-path, CIRCUS_RS_BASE_PATH\): must be empty or start with '\/'/,
      );
    }
    expect(loadConfig({ flags: { basePath: '/images/rs' }, env: {} }).basePath).toBe('/images/rs');
    expect(loadConfig({ env: {} }).basePath).toBe('');
  });
});

describe('rules checked on series written for them', () => {
  let t: TempDir;
  let s: Server;
  const SHUFFLED = '1.2.826.0.1.60';
  const SPACED = '1.2.826.0.1.61';
  const U16 = '1.2.826.0.1.62';
  const U8 = '1.2.826.0.1.63';
  const I8 = '1.2.826.0.1.64';
  const WINDOWS = '1.2.826.0.1.65';
  const PT = '1.2.826.0.1.66';
  const DERIVED = '1.2.826.0.1.67';
  const RGB = '1.2.826.0.1.68';
  const u8 = (x: number, y: number, k: number): number => (x * 17 + y * 29 + k * 41) % 256;
  const i8 = (x: number, y: number, k: number): number => ((x * 17 + y * 29 + k * 41) % 256) - 128;

  beforeAll(() => {
    t = new TempDir();
    const d = (uid: string) => join(t.path, uid);
    // File names in another order than the slices': IM0 holds slice 3, IM1 slice 0, ...
    const names = [1, 3, 5, 0, 4, 2];
    writeSeries(d(SHUFFLED), { ...ctSpec, uid: SHUFFLED, fileName: (k) => `IM${names[k]}.dcm` });
    // SpacingBetweenSlices says 9; the positions are 2.5 apart.
    writeSeries(d(SPACED), { ...ctSpec, uid: SPACED, spacingBetweenSlices: 9 });
    writeSeries(d(U16), { ...ctSpec, uid: U16, bitsStored: 16, rescaleIntercept: () => 0 });
    writeSeries(d(U8), { ...ctSpec, uid: U8, bitsAllocated: 8, bitsStored: 8, signed: false, value: u8, rescaleIntercept: () => 0 });
    writeSeries(d(I8), { ...ctSpec, uid: I8, bitsAllocated: 8, bitsStored: 8, signed: true, value: i8, rescaleIntercept: () => 0 });
    // The first image's window differs from the others'.
    writeSeries(d(WINDOWS), { ...ctSpec, uid: WINDOWS, tweak: (k, sp) => (k === 0 ? sp : { ...sp, windowCenter: 100, windowWidth: 50 }) });
    writeSeries(d(PT), { ...ctSpec, uid: PT, tweak: (_k, sp) => ({ ...sp, modality: 'PT' }) });
    writeSeries(d(DERIVED), {
      ...ctSpec,
      uid: DERIVED,
      tweak: (_k, sp) => ({ ...sp, extra: [{ tag: tag(0x0008, 0x0008), vr: 'CS', value: 'DERIVED\\SECONDARY\\AXIAL' }] }),
    });
    // Colour: three samples a pixel.
    writeSeries(d(RGB), {
      ...ctSpec,
      uid: RGB,
      bitsAllocated: 8,
      bitsStored: 8,
      rescaleIntercept: () => 0,
      tweak: (_k, sp) => ({
        ...sp,
        pixels: new Uint8Array(NX * NY * 3).fill(7),
        extra: [
          { tag: Tags.SamplesPerPixel, vr: 'US', value: 3 },
          { tag: Tags.PhotometricInterpretation, vr: 'CS', value: 'RGB' },
          { tag: Tags.PlanarConfiguration, vr: 'US', value: 0 },
        ],
      }),
    });
    s = createServer(loadConfig({ flags: { dataDir: t.path, renderWorkers: 1, decodeWorkers: 1 }, env: {} }), { useIndex: false });
  });
  afterAll(async () => {
    await s.close();
    t.remove();
  });

  it('numbers images in slice order, not in file-name order', async () => {
    // Image 2 (1-based) is slice z = 1, whatever file holds it.
    const one = ok(await get(`/series/${SHUFFLED}/volume?start=2&end=2&delta=1`, {}, s));
    expect(one.rawPayload.equals(int16Bytes([1]))).toBe(true);
    expect(ok(await get(`/series/${SHUFFLED}/volume`, {}, s)).rawPayload.equals(int16Bytes(slicesOf()))).toBe(true);
  });

  it('voxelSize z is the distance between the images, not SpacingBetweenSlices', async () => {
    expect(ok(await get(`/series/${SPACED}/metadata`, {}, s)).json().voxelSize).toEqual([0.5, 0.7, 2.5]);
  });

  it('pixelFormat names the stored type after the modality LUT, and /volume sends 1 byte a voxel for 8-bit series', async () => {
    expect(ok(await get(`/series/${U16}/metadata`, {}, s)).json().pixelFormat).toBe('uint16');
    for (const [uid, format, f] of [
      [U8, 'uint8', u8],
      [I8, 'int8', i8],
    ] as const) {
      expect(ok(await get(`/series/${uid}/metadata`, {}, s)).json().pixelFormat).toBe(format);
      const res = ok(await get(`/series/${uid}/volume`, {}, s));
      expect(res.headers['content-length']).toBe(String(NX * NY * NZ));
      const expected = Buffer.alloc(NX * NY * NZ);
      let o = 0;
      for (let z = 0; z < NZ; z++) for (const v of sliceValues(z, f)) o = format === 'int8' ? expected.writeInt8(v, o) : expected.writeUInt8(v, o);
      expect(res.rawPayload.equals(expected)).toBe(true);
    }
  });

  it('dicomWindow is the first image’s', async () => {
    expect(ok(await get(`/series/${WINDOWS}/metadata`, {}, s)).json().dicomWindow).toEqual({ level: 40, width: 400 });
  });

  it('mode is 3d for a PT volume and for a DERIVED CT that forms a volume', async () => {
    expect(ok(await get(`/series/${PT}/metadata`, {}, s)).json().mode).toBe('3d');
    expect(ok(await get(`/series/${DERIVED}/metadata`, {}, s)).json().mode).toBe('3d');
  });

  it('a colour series is 422 with the status body', async () => {
    const res = await get(`/series/${RGB}/metadata`, {}, s);
    expect(res.statusCode, res.body.slice(0, 300)).toBe(422);
    expect(res.json()).toMatchObject({ status: 'ng' });
    expect(res.json().message).toMatch(/RGB|colour|color|SamplesPerPixel|samples/i);
  });

  it('a stack is served by /scan as the volume its images make, in InstanceNumber order', async () => {
    const p: Plane = { origin: [0, 0, 0], xAxis: [NX, 0, 0], yAxis: [0, NY, 0], w: NX, h: NY };
    for (const z of [0, 2, 5]) {
      const plane = { ...p, origin: [0, 0, z + 0.5] as V3 };
      const got = int16s(ok(await get(scanUrl(STACK, plane))).rawPayload);
      // Image z of the stack is written image NZ - 1 - z (InstanceNumber NZ - k).
      const counts = checkValues(
        got,
        plane,
        Array.from({ length: NZ }, (_, q) => NZ - 1 - q),
        false,
      );
      expect(counts.inside).toBe(NX * NY);
    }
  });

  it('sid is at most 64 characters', async () => {
    const long = `1.${'2'.repeat(63)}`;
    expect(long.length).toBe(65);
    expectNg(await get(`/series/${long}/metadata`, {}, s), 400, /path parameter 'sid' must be a DICOM UID/);
    const max = long.slice(0, 64);
    expectNg(await get(`/series/${max}/metadata`, {}, s), 404, /./);
  });

  it('/token exists only when authentication is on', async () => {
    const res = await get(`/token?series=${CT}`, {}, s);
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toMatch(/"token"/);
  });
});
