import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { buildApp } from '../src/http/app.js';
import { createServer, type Server } from '../src/server.js';
import { createCacheRegions } from '../src/services/cacheRegions.js';
import { VolumeService } from '../src/services/volumeService.js';
import { hashedDir } from '../src/sources/dataDirectory.js';
import { DEFAULT_UID, TempDir, writeSeries } from './fixtures/series.js';

let tmp: TempDir;
let server: Server | undefined;
const others: Server[] = [];

beforeEach(() => {
  tmp = new TempDir();
});
afterEach(async () => {
  await server?.close();
  await Promise.all(others.splice(0).map((o) => o.close()));
  server = undefined;
  tmp.remove();
});

function start(flags: Record<string, unknown> = {}): Server {
  if (server) others.push(server);
  server = createServer(loadConfig({ flags: { dataDir: tmp.path, ...flags }, env: {} }));
  return server;
}

const get = (s: Server, url: string, headers: Record<string, string> = {}) => s.app.inject({ method: 'GET', url, headers });

function expectNg(res: { statusCode: number; headers: Record<string, unknown>; json: () => unknown }, status: number, message: RegExp): void {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.headers['access-control-allow-origin']).toBe('*');
  const body = res.json() as { result: string; message: string };
  expect(body.result).toBe('ng');
  expect(body.message).toMatch(message);
}

describe('/metadata', () => {
  it('answers the contract fields for a series in the CIRCUS layout', async () => {
    // Values: x + 10y + 100k - 1024 (unsigned stored, intercept -1024) -> Int16 from -1024 to 1423 - 1024.
    writeSeries(join(tmp.path, DEFAULT_UID), {
      signed: false,
      value: (x, y, k) => x + 10 * y + 100 * k,
      rescaleIntercept: () => -1024,
      rescaleSlope: () => 1,
      windowCenter: 40,
      windowWidth: 350,
    });
    const s = start();
    const res = await get(s, `/metadata?series=${DEFAULT_UID}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const min = -1024;
    const max = 3 + 20 + 400 - 1024;
    const width = Math.floor(max - min + 1);
    expect(res.json()).toEqual({
      voxelCount: [4, 3, 5],
      voxelSize: [0.5, 0.7, 2.5],
      estimatedWindow: { width, level: Math.floor(min + width / 2) },
      dicomWindow: { width: 350, level: 40 },
      pixelFormat: 3,
      modality: 'CT',
      photometricInterpretation: 'MONOCHROME2',
      seriesInstanceUid: DEFAULT_UID,
      studyInstanceUid: `${DEFAULT_UID}.0`,
      seriesDescription: null,
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
      imagePositionPatient: [-10, -20, 0],
      sliceDirection: [0, 0, -1],
      minValue: min,
      maxValue: max,
      uniformSpacing: true,
    });
  });

  it('leaves dicomWindow out when the DICOM has none', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const body = (await get(start(), `/metadata?series=${DEFAULT_UID}`)).json();
    expect(body).not.toHaveProperty('dicomWindow');
  });

  it('finds a series in the hashed layout', async () => {
    const uid = '1.3.6.1.4.1.9590.100.1.2.1';
    writeSeries(hashedDir(tmp.path, uid), { uid, slices: 2 });
    const res = await get(start(), `/metadata?series=${uid}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().voxelCount).toEqual([4, 3, 2]);
  });

  it('finds series in any folder tree through the header index, waiting for an index under way', async () => {
    // A CD-export-like tree: nested folders, no UID in any name, two series mixed in one folder.
    writeSeries(join(tmp.path, 'PATIENT1', 'STUDY', 'SER1'), { uid: '1.2.3.4', slices: 3, fileName: (k) => `I${k}` });
    writeSeries(join(tmp.path, 'PATIENT1', 'STUDY', 'SER1'), { uid: '1.2.3.5', slices: 2, fileName: (k) => `J${k}` });
    writeSeries(join(tmp.path, 'OTHER', 'deep', 'er'), { uid: '1.2.3.4', slices: 2, fileName: (k) => `K${k}`, position: (k) => [0, 0, 10 + k] });
    const s = start();
    s.startIndexing(); // not awaited: the request must wait for it
    const res = await get(s, '/metadata?series=1.2.3.4');
    expect(res.statusCode).toBe(200);
    expect(res.json().voxelCount).toEqual([4, 3, 5]);
    const other = await get(s, '/metadata?series=1.2.3.5');
    expect(other.json().voxelCount).toEqual([4, 3, 2]);
    const status = (await get(s, '/status')).json();
    expect(status.index).toMatchObject({ enabled: true, updating: false, lastUpdate: { files: 7, series: 2 } });
  });

  it('loads a series once however many requests arrive together', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID), { slices: 8 });
    const s = start();
    const responses = await Promise.all(Array.from({ length: 6 }, () => get(s, `/metadata?series=${DEFAULT_UID}`)));
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 200]);
    const cache = (await get(s, '/status')).json().cache;
    expect(cache.misses).toBe(1);
    expect(cache.hits).toBe(5);
    expect(cache.usedBytes).toBe(4 * 3 * 8 * 2);
  });

  it('does not cache failures: a series that appears later is found', async () => {
    const s = start({});
    expectNg(await get(s, '/metadata?series=1.2.840.99'), 404, /series 1\.2\.840\.99 is not found/);
    writeSeries(join(tmp.path, '1.2.840.99'), { uid: '1.2.840.99', slices: 2 });
    expect((await get(s, '/metadata?series=1.2.840.99')).statusCode).toBe(200);
  });
});

describe('errors', () => {
  it('400 for a missing, empty, repeated or malformed series', async () => {
    const s = start();
    expectNg(await get(s, '/metadata'), 400, /parameter 'series' is required/);
    expectNg(await get(s, '/metadata?series='), 400, /parameter 'series' is empty/);
    expectNg(await get(s, '/metadata?series=1.2&series=1.3'), 400, /parameter 'series' is given more than once/);
    for (const bad of ['abc', '1..2', '01.2', '1.2.', '../etc', '1.2%2F..%2F3', `1.${'2'.repeat(63)}`, '%00']) {
      expectNg(await get(s, `/metadata?series=${bad}`), 400, /parameter 'series' must be a DICOM UID/);
    }
  });

  it('404 for an unknown series and an unknown action', async () => {
    const s = start();
    expectNg(await get(s, '/metadata?series=1.2.3.4.5'), 404, /series 1\.2\.3\.4\.5 is not found/);
    expectNg(await get(s, '/nothing?series=1.2'), 404, /unknown action \/nothing/);
    expectNg(await get(s, '/Metadata?series=1.2'), 404, /unknown action \/Metadata/);
  });

  it('413 for a series over maxFilesPerSeries and a frame over maxFrameBytes', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID), { slices: 5, rows: 40, columns: 30 });
    const s = start({ maxFilesPerSeries: 4 });
    expectNg(await get(s, `/metadata?series=${DEFAULT_UID}`), 413, /has 5 files, more than maxFilesPerSeries \(4\)/);
    const t = start({ maxFrameBytes: 2000 });
    expectNg(await get(t, `/metadata?series=${DEFAULT_UID}`), 413, /a 40x30 frame needs 2400 bytes, more than maxFrameBytes \(2000\)/);
  });

  it('413 for a volume over maxVoxels', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID), { slices: 5 });
    const s = start({ maxVoxels: 59 });
    expectNg(await get(s, `/metadata?series=${DEFAULT_UID}`), 413, /4x3x5 = 60 voxels, more than the limit maxVoxels \(59\)/);
  });

  it('413 for a volume larger than the cache budget; loads that do not fit together take turns', async () => {
    // 1024 x 1024 x 5 Int16 = 10 MiB each; budget 16 MiB.
    const big = { rows: 1024, columns: 1024, slices: 5, value: () => 1 };
    writeSeries(join(tmp.path, '1.2.1'), { ...big, uid: '1.2.1' });
    writeSeries(join(tmp.path, '1.2.2'), { ...big, uid: '1.2.2' });
    writeSeries(join(tmp.path, '1.2.3'), { ...big, uid: '1.2.3', slices: 9 });
    const s = start({ cacheBytes: 16 * 1024 * 1024 });
    expectNg(await get(s, '/metadata?series=1.2.3'), 413, /needs 18874368 bytes, more than the cache budget cacheBytes \(16777216\)/);
    // Both cannot be held at once: the second waits for the first, then evicts it.
    const [a, b] = await Promise.all([get(s, '/metadata?series=1.2.1'), get(s, '/metadata?series=1.2.2')]);
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    const status = (await get(s, '/status')).json();
    expect(status.cache).toMatchObject({ usedBytes: 10 * 1024 * 1024, evictions: 1 });
    expect(status.dicomReader).toEqual({ count: 1, size: 10 * 1024 * 1024 });
  });

  it('422 with the message naming the slice', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID), { position: (k) => [0, 0, k === 3 ? 0 : -2.5 * k] });
    const s = start();
    expectNg(
      await get(s, `/metadata?series=${DEFAULT_UID}`),
      422,
      new RegExp(`slice ${DEFAULT_UID}/IM0003\\.dcm: same position as slice ${DEFAULT_UID}/IM0000\\.dcm`),
    );
  });

  it('500 hides details unless in development mode', async () => {
    for (const development of [false, true]) {
      const cache = createCacheRegions(1 << 30);
      const volumes = new VolumeService(
        {
          find: async () => {
            throw new TypeError('disk exploded at /secret/path');
          },
        },
        cache.volumes,
        { maxVoxels: 1e9, readLimits: { maxInflatedBytes: 1 << 30 }, concurrency: 1, log: () => {} },
      );
      const app = buildApp({ config: { ...loadConfig({ env: {} }), development }, volumes, cache, version: 'test' });
      const res = await app.inject({ url: '/metadata?series=1.2' });
      expectNg(res, 500, /^internal error$/);
      if (development) expect(res.json().stack).toMatch(/disk exploded/);
      else expect(res.body).not.toMatch(/secret|exploded/);
      await app.close();
    }
  });

  it('503 while the server is closing', async () => {
    const s = start();
    const closing = s.app.close();
    const res = await get(s, '/status');
    expect(res.statusCode).toBe(503);
    await closing;
    server = undefined;
  });

  it('405 for methods other than GET', async () => {
    const s = start();
    const res = await s.app.inject({ method: 'POST', url: '/metadata?series=1.2', payload: 'x' });
    expectNg(res, 405, /method POST is not allowed/);
  });
});

describe('/status and CORS', () => {
  it('reports state and counters, never configuration', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ cacheBytes: 64 * 1024 * 1024 });
    await get(s, `/metadata?series=${DEFAULT_UID}`);
    await get(s, '/metadata?series=bad');
    const res = await get(s, '/status');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'Running',
      version: expect.any(String),
      process: { memoryUsage: expect.any(Object), upTime: expect.any(Number), upSince: expect.any(String) },
      dicomReader: { count: 1, size: 120 },
      cache: { budgetBytes: 64 * 1024 * 1024, usedBytes: 120, hits: 0, misses: 1, loading: 0 },
      counter: { metadata: 1, _error: 1 },
      authorization: { enabled: false },
    });
    expect(new Date(body.process.upSince).toISOString()).toBe(body.process.upSince);
    expect(res.body).not.toContain(tmp.path);
  });

  it('accounts for each cache region apart: volumes, volume streams, images', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ cacheBytes: 64 * 1024 * 1024 });
    const mpr = `/mpr?series=${DEFAULT_UID}&mode=axial&target=1&ww=100&wl=0`;
    const png = await get(s, mpr);
    expect((await get(s, mpr)).rawPayload).toEqual(png.rawPayload);
    const raw = await get(s, `/raw?series=${DEFAULT_UID}&format=voxels`);
    await new Promise((resolve) => setImmediate(resolve)); // the stream is kept when it closes
    const regions = (await get(s, '/status')).json().cache.regions;
    // 4x3x5 Int16 voxels; one PNG (+512 bytes of bookkeeping); one gzip stream.
    expect(regions).toEqual({
      volumes: { count: 1, bytes: 120, hits: 2, misses: 1, evictions: 0 },
      volumeStreams: { count: 1, bytes: raw.rawPayload.length, hits: 0, misses: 1, evictions: 0 },
      images: { count: 1, bytes: png.rawPayload.length + 512, hits: 1, misses: 1, evictions: 0 },
    });
    const cache = (await get(s, '/status')).json().cache;
    expect(cache.usedBytes).toBe(120 + raw.rawPayload.length + png.rawPayload.length + 512);
    expect(cache.entries).toBe(3);
  });

  it('answers preflight and exposes the X-Circus headers', async () => {
    const s = start({ corsOrigin: 'https://viewer.example' });
    const pre = await s.app.inject({
      method: 'OPTIONS',
      url: '/mpr?series=1.2',
      headers: { origin: 'https://viewer.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://viewer.example');
    expect(pre.headers['access-control-allow-methods']).toMatch(/GET/);
    expect(String(pre.headers['access-control-allow-headers'])).toMatch(/Authorization/);
    const res = await get(s, '/status');
    expect(res.headers['access-control-allow-origin']).toBe('https://viewer.example');
    expect(res.headers['access-control-expose-headers']).toMatch(/X-Circus-Pixel-Size/);
  });
});

describe('data directory edge cases', () => {
  it('a two-digit series number is not taken for a folder of the hashed layout (404, not 422)', async () => {
    // This UID's hashed folder starts with "11", itself a valid series number.
    const uid = '1.3.6.1.4.1.9590.100.1.2.3';
    const dir = hashedDir(tmp.path, uid);
    expect(dir.slice(tmp.path.length + 1).split('/')[0]).toBe('11');
    writeSeries(dir, { uid, slices: 2 });
    const s = start();
    expect((await get(s, `/metadata?series=${uid}`)).statusCode).toBe(200);
    expectNg(await get(s, '/metadata?series=11'), 404, /not found/);
  });

  it('a malformed URL gets the contract body and CORS', async () => {
    const s = start();
    for (const url of ['/%zz', '/metadata%zz?series=1']) {
      const res = await get(s, url);
      expectNg(res, 400, /bad request/);
    }
  });

  it('a /raw client that leaves while the volume loads does not block later requests', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID), { slices: 40, rows: 64, columns: 64 });
    const s = start();
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = s.app.server.address() as { port: number };
    const { request } = await import('node:http');
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: `/raw?series=${DEFAULT_UID}` });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 5);
    });
    const later = await fetch(`http://127.0.0.1:${port}/raw?series=${DEFAULT_UID}`, { signal: AbortSignal.timeout(10_000) });
    expect(later.status).toBe(200);
    // fetch inflates the gzip: the combined stream holds every voxel plus the block headers.
    expect((await later.arrayBuffer()).byteLength).toBeGreaterThan(64 * 64 * 40 * 2);
  });

  it('a series folder with no files is not a series', async () => {
    mkdirSync(join(tmp.path, '1.2.5'));
    expectNg(await get(start(), '/metadata?series=1.2.5'), 404, /not found/);
  });
});
