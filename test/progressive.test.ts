/**
 * Progressive volumes, as src/dicom/progressiveVolume.ts and sliceQueue.ts state the policy:
 * an axial /mpr with ww and wl waits for its own slice only, and its image is the one the
 * complete volume gives, byte for byte; slices asked for are loaded first; a failing slice fails
 * the whole load and the next request loads again; one load per series under the byte budget;
 * compressed frames are decoded straight into the shared volume.
 *
 * Series are generated in code and served from memory through HeldSeries, whose pixel data
 * arrives only when a test releases it: "answered while the other slices are unread" is shown
 * by what was read, never by timing.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { BINARY_WINDOW, windowValue, type WindowSpec } from '../src/core/mpr/window.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { DecodePool } from '../src/dicom/decodePool.js';
import { ProgressiveVolume } from '../src/dicom/progressiveVolume.js';
import { SliceQueue } from '../src/dicom/sliceQueue.js';
import { earlyValues } from '../src/dicom/load/plan.js';
import { imageElements, writeDicom } from '../src/dicom/writer.js';
import type { SliceHeader } from '../src/dicom/sliceHeader.js';
import { createServer, type Server } from '../src/server.js';
import { volumeId } from '../src/services/cacheRegions.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesSource } from '../src/sources/source.js';
import { HeldSeries } from './fixtures/held.js';
import { rleFrame } from './fixtures/rle.js';
import { type SeriesSpec, seriesFiles, TempDir } from './fixtures/series.js';

const NX = 6;
const NY = 5;
const NZ = 8;
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const name = (k: number): string => `slice ${k}`;

let tmp: TempDir;
const servers: Server[] = [];
/** Series loaded whole before any image is asked for, to compare with. */
const reference = new MemorySource();
let referenceServer: Server;

beforeAll(() => {
  tmp = new TempDir();
  referenceServer = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'unused'), renderWorkers: 1 }, env: {} }), { source: reference });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await referenceServer.close();
  tmp.remove();
});

/**
 * The files of a series made by the fixture (slice k at z = k: positions go down and
 * InstanceNumber up with k), named `slice k`, in memory.
 */
const filesOf = (uid: string, spec: SeriesSpec): { name: string; bytes: Buffer }[] =>
  seriesFiles({ uid, columns: NX, rows: NY, slices: NZ, fileName: name, ...spec });

/** The same files, all readable at once. */
function memoryOf(uid: string, files: { name: string; bytes: Buffer }[]): MemorySource {
  const m = new MemorySource();
  for (const f of files) m.add(uid, f.name, f.bytes);
  return m;
}

function serve(source: SeriesSource, flags: Record<string, unknown> = {}): Server {
  const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'unused'), renderWorkers: 1, decodeWorkers: 1, ...flags }, env: {} }), {
    source,
  });
  servers.push(s);
  return s;
}

const get = (s: Server, url: string) => s.app.inject({ method: 'GET', url });
const status = async (s: Server) => (await get(s, '/status')).json();

/** Resolves once `done()` holds, looking every few milliseconds (a bounded number of times: the test fails rather than hangs). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(done()).toBe(true);
}

/** Lets every callback due now run (several turns of the event loop). */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The response to `url` of a volume loaded whole first (another server on the same files, /metadata first). */
async function fromCompleteVolume(uid: string, files: { name: string; bytes: Buffer }[], url: string) {
  if (!reference.seriesUids().includes(uid)) for (const f of files) reference.add(uid, f.name, f.bytes);
  expect((await get(referenceServer, `/metadata?series=${uid}`)).statusCode).toBe(200);
  return get(referenceServer, url);
}

interface Variant {
  label: string;
  spec: SeriesSpec;
  /** Modality value of voxel (x, y) of slice k, computed from the spec by hand. */
  value: (x: number, y: number, k: number) => number;
  ww: number;
  wl: number;
  /** The window the image is drawn with. */
  window: WindowSpec;
  /** pixelFormat of the complete volume. */
  format: PixelFormat;
}

const VARIANTS: Variant[] = [
  {
    label: 'signed',
    spec: { value: (x, y, k) => 7 * x - 13 * y + 101 * k - 400 },
    value: (x, y, k) => 7 * x - 13 * y + 101 * k - 400,
    ww: 300,
    wl: -50,
    window: { width: 300, level: -50, invert: false },
    format: PixelFormat.Int16,
  },
  {
    label: 'unsigned with intercept -1024',
    spec: { signed: false, value: (x, y, k) => 3 * x + 20 * y + 50 * k + 900, rescaleIntercept: () => -1024 },
    value: (x, y, k) => 3 * x + 20 * y + 50 * k + 900 - 1024,
    ww: 400,
    wl: 40,
    window: { width: 400, level: 40, invert: false },
    format: PixelFormat.Int16,
  },
  {
    label: 'MONOCHROME1',
    spec: { photometricInterpretation: 'MONOCHROME1', value: (x, y, k) => 11 * x + 5 * y - 30 * k },
    value: (x, y, k) => 11 * x + 5 * y - 30 * k,
    ww: 120,
    wl: -40,
    window: { width: 120, level: -40, invert: true },
    format: PixelFormat.Int16,
  },
  {
    // Slice 0's slope 0.5 makes the complete volume Float32; slice 5's values are integers
    // (slope 1), which Float32 holds exactly: its image is known before the others are read.
    label: 'a Float32 volume, the slice asked for integer',
    spec: { value: (x, y, k) => x + 10 * y + 100 * k + 1, rescaleSlope: (k) => (k === 0 ? 0.5 : undefined) },
    value: (x, y, k) => (x + 10 * y + 100 * k + 1) * (k === 0 ? 0.5 : 1),
    ww: 500,
    wl: 300,
    window: { width: 500, level: 300, invert: false },
    format: PixelFormat.Float32,
  },
  {
    // Padding at the bottom of the signed range keeps its own value, whatever the other slices hold.
    label: 'signed with padding -32768',
    spec: { pixelPaddingValue: -32768, value: (x, y, k) => (x === 0 ? -32768 : 40 * x - 9 * y + k) },
    value: (x, y, k) => (x === 0 ? -32768 : 40 * x - 9 * y + k),
    ww: 200,
    wl: 60,
    window: { width: 200, level: 60, invert: false },
    format: PixelFormat.Int16,
  },
  {
    label: 'a Binary mask',
    spec: { bitsAllocated: 1, value: (x, y, k) => ((x + 2 * y + k) % 3 === 0 ? 1 : 0) },
    value: (x, y, k) => ((x + 2 * y + k) % 3 === 0 ? 1 : 0),
    ww: 7,
    wl: 3,
    window: BINARY_WINDOW,
    format: PixelFormat.Binary,
  },
];

describe('an axial image with ww and wl waits for its own slice only', () => {
  it.each(VARIANTS)('$label: answered while the other slices are unread, the same bytes as the complete volume gives', async (v) => {
    const uid = `1.2.826.0.1.3680043.8.498.10.${VARIANTS.indexOf(v) + 1}`;
    const files = filesOf(uid, v.spec);
    const held = new HeldSeries(uid, files);
    const t = 5;
    held.release(name(t));
    const s = serve(held);
    const url = `/mpr?series=${uid}&mode=axial&target=${t}&ww=${v.ww}&wl=${v.wl}`;
    const early = await get(s, url);
    expect(early.statusCode, early.body).toBe(200);
    // Only slice t was read: every other slice was asked for (or is still to be) and waits.
    expect(held.passed).toEqual([name(t)]);
    expect((await status(s)).cache.loading).toBe(1);
    const img = decode(early.rawPayload);
    expect([img.width, img.height]).toEqual([NX, NY]);
    const expected: number[] = [];
    for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) expected.push(windowValue(v.value(x, y, t), v.window));
    expect(Array.from(img.data)).toEqual(expected);
    expect(early.headers['x-circus-pixel-size']).toBe('0.5,0.7');

    held.release();
    const meta = await get(s, `/metadata?series=${uid}`);
    expect(meta.json().pixelFormat).toBe(v.format);
    const complete = await fromCompleteVolume(uid, files, url);
    expect(complete.statusCode).toBe(200);
    expect(early.rawPayload.equals(complete.rawPayload)).toBe(true);
    for (const h of ['x-circus-pixel-size', 'x-circus-pixel-columns', 'x-circus-pixel-rows', 'content-type']) {
      expect(early.headers[h], h).toBe(complete.headers[h]);
    }
    // The image made before completion is the complete volume's image in the cache: one key space.
    const images = (await status(s)).cache.regions.images;
    const again = await get(s, url);
    expect(again.rawPayload.equals(early.rawPayload)).toBe(true);
    expect((await status(s)).cache.regions.images.hits).toBe(images.hits + 1);
  });

  it('waits for the complete volume when the slice depends on the others, and gives its image then', async () => {
    // Padding 0xFFFF above the data becomes the series' smallest value, which only the whole
    // series tells; slice 3 has padding voxels, slice 4 none.
    const uid = '1.2.826.0.1.3680043.8.498.11';
    const files = filesOf(uid, {
      signed: false,
      pixelPaddingValue: 0xffff,
      value: (x, y, k) => (k === 3 && x === 0 ? 0xffff : 100 + x + 10 * y + 20 * k),
    });
    const held = new HeldSeries(uid, files);
    held.release(name(3), name(4));
    const s = serve(held);
    const load = await s.volumes.open(uid);
    await Promise.all([load.slice(3), load.slice(4)]);
    expect(load.axialSlice(3)).toBeNull();
    expect(load.axialSlice(4)).not.toBeNull();
    const url = `/mpr?series=${uid}&mode=axial&target=3&ww=100&wl=120`;
    let answered = false;
    const waiting = get(s, url).then((r) => {
      answered = true;
      return r;
    });
    await settle();
    expect(answered).toBe(false);
    expect([...held.passed].sort()).toEqual([name(3), name(4)]);
    held.release();
    const res = await waiting;
    expect(res.statusCode).toBe(200);
    // Padding shows as the smallest real value, 100 (slice 0, x = 0, y = 0), not as 0xFFFF (255).
    expect(decode(res.rawPayload).data[0]).toBe(windowValue(100, { width: 100, level: 120, invert: false }));
    expect(decode(res.rawPayload).data[0]).toBe(77);
    expect(res.rawPayload.equals((await fromCompleteVolume(uid, files, url)).rawPayload)).toBe(true);
  });

  it('without ww and wl (the estimated window needs every voxel), and for coronal images, waits for the complete volume', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.12';
    const files = filesOf(uid, {});
    const held = new HeldSeries(uid, files);
    held.release(name(2));
    const s = serve(held);
    const results: string[] = [];
    const urls = [
      `/mpr?series=${uid}&mode=axial&target=2`,
      `/mpr?series=${uid}&mode=axial&target=2&ww=100`,
      `/mpr?series=${uid}&mode=coronal&target=2&ww=100&wl=0`,
    ];
    const pending = urls.map((url) =>
      get(s, url).then((r) => {
        results.push(url);
        return r;
      }),
    );
    await held.whenAsked(name(2));
    await settle();
    expect(results).toEqual([]);
    held.release();
    for (const [i, r] of (await Promise.all(pending)).entries()) {
      expect(r.statusCode).toBe(200);
      expect(r.rawPayload.equals((await fromCompleteVolume(uid, files, urls[i])).rawPayload)).toBe(true);
    }
  });
});

describe('the load before its pixels', () => {
  it('gives the facts of the header pass before any pixel is read', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.20';
    const files = filesOf(uid, {
      signed: false,
      rescaleIntercept: (k) => -1024 - k,
      windowCenter: 40,
      windowWidth: 400,
      photometricInterpretation: 'MONOCHROME1',
    });
    const held = new HeldSeries(uid, files);
    const s = serve(held);
    const load = await s.volumes.open(uid);
    expect(held.passed).toEqual([]);
    expect(load.volume).toBeNull();
    expect(load.dims).toEqual([NX, NY, NZ]);
    expect(load.voxelSize).toEqual([0.5, 0.7, 2.5]);
    expect(load.storedFormat).toBe(PixelFormat.UInt16);
    expect(load.monochrome1).toBe(true);
    expect(load.sliceRescale.map((r) => r.intercept)).toEqual(Array.from({ length: NZ }, (_, k) => -1024 - k));
    expect(load.sliceWindows[3]).toEqual({ level: 40, width: 400 });
    expect(load.axialSlice(3)).toBeNull(); // not read yet
    held.release();
    const v = await load.complete;
    expect(v.pixelFormat).toBe(PixelFormat.Int16);
    // Opened again, the series is complete at once; the load, its volume and the reopened
    // series share one id, under which their images are cached.
    const again = await s.volumes.open(uid);
    expect(again.volume).toBe(v);
    expect(again.axialSlice(3)).toBeNull();
    expect(volumeId(again)).toBe(volumeId(load));
    expect(volumeId(v)).toBe(volumeId(load));
  });
});

describe('load order', () => {
  it('goes outwards from the slice asked for, and a request during the load moves its slice to the front', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.13';
    const files = filesOf(uid, { slices: 10 });
    const held = new HeldSeries(uid, files);
    const s = serve(held, { loadConcurrency: 1 });
    const first = get(s, `/mpr?series=${uid}&mode=axial&target=7&ww=100&wl=0`);
    await held.whenAsked(name(7));
    expect(held.asked).toEqual([name(7)]);
    held.release(name(7));
    expect((await first).statusCode).toBe(200);
    // Next outwards from 7: 8 (held). Slice 2 is asked for meanwhile.
    await held.whenAsked(name(8));
    const second = get(s, `/mpr?series=${uid}&mode=axial&target=2&ww=100&wl=0`);
    await settle();
    held.release(name(8));
    await held.whenAsked(name(2));
    held.release(name(2));
    expect((await second).statusCode).toBe(200);
    held.release();
    expect((await get(s, `/metadata?series=${uid}`)).statusCode).toBe(200);
    // 2 jumped ahead of 6 (next outwards from 7); then outwards from 2.
    expect(held.asked).toEqual([7, 8, 2, 3, 1, 4, 0, 5, 6, 9].map(name));
  });

  it('SliceQueue: requests first (latest first), then outwards from the last one; withdrawn requests lose their place', () => {
    const q = new SliceQueue(9);
    expect(q.next()).toBe(4); // the middle first
    q.request(7);
    q.request(1);
    expect(q.next()).toBe(1);
    expect(q.next()).toBe(7);
    // Outwards from 1, the last slice asked for: 2 and 0 at distance 1 (upwards first), then 3, 5 ...
    expect([q.next(), q.next(), q.next()]).toEqual([2, 0, 3]);
    // Left: 5, 6, 8. The request for 8 is withdrawn: 6 goes first; then outwards from 8.
    q.request(6);
    q.request(8);
    q.withdraw(8);
    expect([q.next(), q.next(), q.next(), q.next()]).toEqual([6, 8, 5, -1]);
    const skipping = new SliceQueue(4, (z) => z % 2 === 1);
    expect([skipping.next(), skipping.next(), skipping.next()]).toEqual([2, 0, -1]);
  });
});

describe('failures', () => {
  it('one failing slice fails the load with 422 naming it, after an axial image was served; the next request loads again', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.14';
    const files = filesOf(uid, {});
    const held = new HeldSeries(uid, files);
    held.breakInstance(name(6), new Error('input/output error'));
    const s = serve(held, { loadConcurrency: 1 });
    held.release(name(5));
    const axial = await get(s, `/mpr?series=${uid}&mode=axial&target=5&ww=100&wl=0`);
    expect(axial.statusCode).toBe(200);
    // Slice 6 (next outwards) is being read; an image of slice 2 and the metadata wait.
    await held.whenAsked(name(6));
    const image = get(s, `/mpr?series=${uid}&mode=axial&target=2&ww=100&wl=0`);
    const metadata = get(s, `/metadata?series=${uid}`);
    await settle();
    held.release(name(6));
    const message = `slice ${name(6)}: input/output error`;
    for (const res of await Promise.all([image, metadata])) {
      expect(res.statusCode).toBe(422);
      expect(res.json()).toEqual({ result: 'ng', message });
    }
    // Nothing was read after the failure, and the load left the cache with its bytes.
    expect(held.asked).toEqual([name(5), name(6)]);
    const after = (await status(s)).cache;
    expect(after).toMatchObject({ loading: 0, reservedBytes: 0 });
    expect(after.regions.volumes).toMatchObject({ count: 0, bytes: 0, misses: 1 });
    // The disk recovers: the next request loads the series again, from its header pass.
    held.breakInstance(name(6), null);
    held.release();
    const again = await get(s, `/metadata?series=${uid}`);
    expect(again.statusCode).toBe(200);
    expect(again.json().voxelCount).toEqual([NX, NY, NZ]);
    expect((await status(s)).cache.regions.volumes).toMatchObject({ count: 1, misses: 2 });
  });

  it('a client that goes away stops waiting: its waiter is dropped, the load goes on for the cache', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.15';
    const files = filesOf(uid, {});
    const held = new HeldSeries(uid, files);
    const s = serve(held);
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = s.app.server.address() as AddressInfo;
    const client = httpRequest({ host: '127.0.0.1', port, path: `/mpr?series=${uid}&mode=axial&target=3&ww=100&wl=0` });
    client.on('error', () => {}); // destroyed below
    client.end();
    const load = (await s.volumes.open(uid)) as ProgressiveVolume;
    expect(load).toBeInstanceOf(ProgressiveVolume);
    await until(() => load.waiting === 1);
    client.destroy();
    await until(() => load.waiting === 0);
    expect(load.isInPlace(3)).toBe(false);
    held.release();
    const volume = await load.complete;
    expect(volume.dims).toEqual([NX, NY, NZ]);
    expect((await get(s, `/metadata?series=${uid}`)).statusCode).toBe(200);
  });

  it('an aborted wait rejects with its reason and withdraws its slice; a failure rejects every waiter and stops the load', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.16';
    const files = filesOf(uid, {});
    const held = new HeldSeries(uid, files);
    held.breakInstance(name(1), new Error('gone'));
    const s = serve(held, { loadConcurrency: 1 });
    const load = (await s.volumes.open(uid)) as ProgressiveVolume;
    const controller = new AbortController();
    const aborted = load.slice(6, controller.signal); // read first (held)
    const others = [load.slice(6), load.slice(7)];
    expect(load.waiting).toBe(3);
    controller.abort(new Error('client left'));
    await expect(aborted).rejects.toThrow('client left');
    expect(load.waiting).toBe(2);
    await expect(load.slice(0, AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    await expect(load.slice(NZ)).rejects.toThrow(RangeError);
    await held.whenAsked(name(6));
    held.release(name(6));
    await held.whenAsked(name(7));
    held.release(name(7));
    await Promise.all(others);
    // Next outwards from 7: 5 (held). Then 3 and 1 are asked for, 1 last, so 1 is read first and fails.
    await held.whenAsked(name(5));
    const waiters = [load.slice(3), load.slice(1)];
    held.release(name(5), name(1));
    for (const w of waiters) await expect(w).rejects.toThrow(`slice ${name(1)}: gone`);
    await expect(load.complete).rejects.toThrow(`slice ${name(1)}: gone`);
    await expect(load.slice(3)).rejects.toThrow(`slice ${name(1)}: gone`);
    expect(load.waiting).toBe(0);
    held.release();
    await settle();
    expect(held.asked).toEqual([6, 7, 5, 1].map(name));
  });
});

describe('one load per series under the byte budget', () => {
  it('requests during the load share it: status shows one load and its reserved bytes, then the volume', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.17';
    const files = filesOf(uid, {});
    const held = new HeldSeries(uid, files);
    const s = serve(held, { cacheBytes: 64 * 1024 * 1024 });
    const urls = [
      `/mpr?series=${uid}&mode=axial&target=1&ww=100&wl=0`,
      `/mpr?series=${uid}&mode=axial&target=6&ww=100&wl=0`,
      `/mpr?series=${uid}&mode=coronal&target=2&ww=100&wl=0`,
      `/metadata?series=${uid}`,
      `/oblique?series=${uid}&a=0.3&b=axial&c=2,2,3&ww=100&wl=0`,
    ];
    const pending = urls.map((url) => get(s, url));
    await Promise.all([1, 6].map((k) => held.whenAsked(name(k))));
    const during = (await status(s)).cache;
    expect(during).toMatchObject({ loading: 1, reservedBytes: NX * NY * NZ * 2, usedBytes: 0 });
    expect(during.regions.volumes).toMatchObject({ count: 0, misses: 1, hits: urls.length - 1 });
    held.release();
    const responses = await Promise.all(pending);
    expect(responses.map((r) => r.statusCode)).toEqual(urls.map(() => 200));
    const after = (await status(s)).cache;
    expect(after).toMatchObject({ loading: 0, reservedBytes: 0 });
    expect(after.regions.volumes).toMatchObject({ count: 1, bytes: NX * NY * NZ * 2, misses: 1 });
    // Every pixel was read once.
    expect([...held.passed].sort()).toEqual(files.map((f) => f.name).sort());
  });
});

describe('compressed frames are decoded straight into the shared volume', () => {
  const UID = '1.2.826.0.1.3680043.8.498.18';
  const NATIVE = '1.2.826.0.1.3680043.8.498.19';
  const value = (x: number, y: number, k: number): number => 7 * x - 13 * y + 101 * k - 300;
  const rleFiles = (): { name: string; bytes: Buffer }[] =>
    filesOf(UID, { value, transferSyntax: RLE_LOSSLESS, encode: (pixels) => rleFrame(pixels as Int16Array) });

  it('an axial image of an RLE series is answered from its decoded slice, and the volume has the native voxels', async () => {
    const held = new HeldSeries(UID, rleFiles());
    held.release(name(2));
    const s = serve(held);
    const url = (uid: string) => `/mpr?series=${uid}&mode=axial&target=2&ww=400&wl=-100`;
    const early = await get(s, url(UID));
    expect(early.statusCode).toBe(200);
    expect(held.passed).toEqual([name(2)]);
    const native = serve(memoryOf(NATIVE, filesOf(NATIVE, { value })));
    expect(early.rawPayload.equals((await get(native, url(NATIVE))).rawPayload)).toBe(true);
    held.release();
    const a = await get(s, `/raw?series=${UID}&format=voxels`);
    const b = await get(native, `/raw?series=${NATIVE}&format=voxels`);
    expect(a.statusCode).toBe(200);
    expect(a.rawPayload.equals(b.rawPayload)).toBe(true);
    const v = await s.volumes.get(UID);
    expect(v.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([v.minValue, v.maxValue]).toEqual([value(0, NY - 1, 0), value(NX - 1, 0, NZ - 1)]);
  });

  it('a worker writes a frame into its slice only, normalising BitsStored 12 and measuring the range without padding', async () => {
    // 12 bits stored, signed, with junk in the 4 bits above them; -2048 is padding.
    const stored = Int16Array.from({ length: NX * NY }, (_, i) => (i === 0 ? -2048 : ((i * 97) % 4096) - 2048));
    const words = Uint16Array.from(stored, (v) => (v & 0x0fff) | 0xa000);
    const bytes = writeDicom(
      imageElements({
        rows: NY,
        columns: NX,
        bitsAllocated: 16,
        bitsStored: 12,
        signed: true,
        pixels: words,
        seriesInstanceUid: UID,
        sopInstanceUid: `${UID}.99`,
      }),
      { transferSyntax: RLE_LOSSLESS, encapsulated: [rleFrame(words)] },
    );
    const buffer = new SharedArrayBuffer(3 * NX * NY * 2);
    const all = new Int16Array(buffer).fill(0x7777);
    const pool = new DecodePool(1);
    try {
      const ranges = await pool.decode({ kind: 'bytes', bytes }, [0], 1 << 20, {
        buffer,
        format: PixelFormat.Int16,
        byteOffsets: [NX * NY * 2],
        voxels: NX * NY,
        bits: { bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 1 },
        padding: [-2048, -2048],
      });
      const real = Array.from(stored).filter((v) => v !== -2048);
      expect(ranges).toEqual([{ min: Math.min(...real), max: Math.max(...real), paddingCount: stored.filter((v) => v === -2048).length }]);
      expect(Array.from(all.subarray(NX * NY, 2 * NX * NY))).toEqual(Array.from(stored));
      expect(all.subarray(0, NX * NY).every((v) => v === 0x7777)).toBe(true);
      expect(all.subarray(2 * NX * NY).every((v) => v === 0x7777)).toBe(true);
      const failed = await pool
        .decode({ kind: 'bytes', bytes }, [0, 3], 1 << 20, {
          buffer,
          format: PixelFormat.Int16,
          byteOffsets: [0, NX * NY * 2],
          voxels: NX * NY,
          bits: { bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 1 },
        })
        .catch((e: unknown) => e as Error & { at?: number });
      expect(failed).toMatchObject({ name: 'DecodeError', at: 1, message: 'frame 4 does not exist (1 frames)' });
    } finally {
      await pool.close();
    }
  });

  it('closing the pool ends the tasks under way too', async () => {
    const pool = new DecodePool(1);
    const task = expect(pool.decode(null, [], 0, null)).rejects.toThrow('the decoding pool is closed'); // handed to a worker at once
    await pool.close();
    await task;
  });
});

describe('values known before the load completes (earlyValues)', () => {
  const header = (h: Partial<SliceHeader>): SliceHeader =>
    ({
      bitsAllocated: 16,
      bitsStored: 16,
      highBit: 15,
      pixelRepresentation: 1,
      rescaleSlope: 1,
      rescaleIntercept: 0,
      ...h,
    }) as SliceHeader;

  it('integer rescale within 2^24: known; a non-integer slope or values beyond 2^24: not', () => {
    const rules = earlyValues(
      [header({}), header({ rescaleSlope: 0.5 }), header({ rescaleIntercept: -1024, pixelRepresentation: 0 }), header({ rescaleSlope: 1000 })],
      PixelFormat.Int16,
    );
    expect(rules).toEqual([
      { slope: 1, intercept: 0, paddingValue: null, format: PixelFormat.Int16 },
      null,
      // 0 .. 65535 less 1024 fits neither Int16 nor UInt16: the grid is Float32 (exact below 2^24).
      { slope: 1, intercept: -1024, paddingValue: null, format: PixelFormat.Float32 },
      null, // 32767 * 1000 is beyond 2^24
    ]);
    // The narrowest grid format holding every value: unsigned 12 bits less 1024 fits Int16; unsigned 16 bits UInt16.
    expect(
      earlyValues([header({ pixelRepresentation: 0, bitsStored: 12, highBit: 11, rescaleIntercept: -1024 })], PixelFormat.UInt16)[0],
    ).toMatchObject({
      format: PixelFormat.Int16,
    });
    expect(earlyValues([header({ pixelRepresentation: 0 })], PixelFormat.UInt16)[0]).toMatchObject({ format: PixelFormat.UInt16 });
  });

  it('padding keeps its own value only when no real value of any slice can be below it', () => {
    // Signed 16 bits, padding -32768: every real value is above it.
    expect(earlyValues([header({ padding: [-32768, -32768] })], PixelFormat.Int16)[0]).toMatchObject({ paddingValue: -32768 });
    // Padding -2000: a real value may be below it (it would become the minimum... or stay): not known.
    expect(earlyValues([header({ padding: [-2000, -2000] })], PixelFormat.Int16)[0]).toMatchObject({ paddingValue: null });
    // BitsStored 12: real values are -2048 .. 2047, so padding -3000 is below them all.
    expect(earlyValues([header({ bitsStored: 12, highBit: 11, padding: [-3000, -3000] })], PixelFormat.Int16)[0]).toMatchObject({
      paddingValue: -3000,
    });
    // ... unless another slice's intercept brings its values below it.
    const two = earlyValues(
      [header({ bitsStored: 12, highBit: 11, padding: [-3000, -3000] }), header({ bitsStored: 12, highBit: 11, rescaleIntercept: -2000 })],
      PixelFormat.Int16,
    );
    expect(two[0]).toMatchObject({ paddingValue: null });
    // Unsigned padding 0 with intercept -1024: the volume may stay UInt16, where -1024 cannot be.
    expect(earlyValues([header({ pixelRepresentation: 0, rescaleIntercept: -1024, padding: [0, 0] })], PixelFormat.UInt16)[0]).toMatchObject({
      paddingValue: null,
    });
    // Masks: always known.
    expect(earlyValues([header({ bitsAllocated: 1 })], PixelFormat.Binary)).toEqual([
      { slope: 1, intercept: 0, paddingValue: null, format: PixelFormat.Binary },
    ]);
  });
});
