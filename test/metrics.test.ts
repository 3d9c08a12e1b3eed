/**
 * Operations: GET /metrics (Prometheus text format, read back with a strict parser written from
 * the format's description), GET /health/live and /health/ready, and the X-Circus-Instance header
 * of --instance-name. Values are checked, not only names: request counts by route pattern and
 * status after known requests, cache figures against /status's at the same moment, load times
 * and loads in flight around a load held back by the test, WebSocket figures after a transfer.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { createServer, type Server, type ServerOptions } from '../src/server.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesSource } from '../src/sources/source.js';
import { HeldSeries } from './fixtures/held.js';
import { type Family, parseExposition, sampleValue, samples } from './fixtures/prometheus.js';
import { DEFAULT_UID, seriesFiles, TempDir, writeSeries } from './fixtures/series.js';

const SECRET = 'a secret of at least sixteen characters';

let tmp: TempDir;
const servers: Server[] = [];

beforeEach(() => {
  tmp = new TempDir();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  tmp.remove();
});

function start(flags: Record<string, unknown> = {}, options: ServerOptions = {}): Server {
  const config = loadConfig({ flags: { dataDir: tmp.path, decodeWorkers: 1, renderWorkers: 1, ...flags }, env: {} });
  const s = createServer(config, options);
  servers.push(s);
  return s;
}

const get = (s: Server, url: string, method: 'GET' | 'HEAD' | 'OPTIONS' = 'GET') => s.app.inject({ method, url });

async function scrape(s: Server, url = '/metrics'): Promise<{ text: string; families: Map<string, Family> }> {
  const res = await get(s, url);
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  expect(res.headers['cache-control']).toBe('no-store');
  return { text: res.body, families: parseExposition(res.body) };
}

/** Signed 16-bit slices of `nx` x `ny`, slice k at z = -k, as DICOM files in memory. */
const sliceFiles = (uid: string, nz: number, nx = 8, ny = 6): { name: string; bytes: Buffer }[] =>
  seriesFiles({
    uid,
    slices: nz,
    columns: nx,
    rows: ny,
    value: (x, y, k) => x + nx * y + 100 * k,
    position: (k) => [0, 0, -k],
    pixelSpacing: [1, 1],
    fileName: (k) => `slice ${k}`,
  });

function memory(uid: string, nz: number): MemorySource {
  const source = new MemorySource();
  for (const f of sliceFiles(uid, nz)) source.add(uid, f.name, f.bytes);
  return source;
}

describe('GET /metrics: requests', () => {
  it('counts requests by route pattern, method and status, never by series, with latency histograms', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ instanceName: 'replica-7' });
    for (let i = 0; i < 5; i++) expect((await get(s, `/mpr?series=${DEFAULT_UID}&mode=axial&target=${i}`)).statusCode).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(s, '/mpr?series=not-a-uid')).statusCode).toBe(400);
    expect((await get(s, `/series/${DEFAULT_UID}/metadata`)).statusCode).toBe(200);
    expect((await get(s, '/no-such-action')).statusCode).toBe(404);
    expect((await get(s, '/status', 'HEAD')).statusCode).toBe(200);
    expect((await get(s, '/status', 'OPTIONS')).statusCode).toBe(204);

    const { text, families } = await scrape(s);
    const count = (route: string, status: string, method = 'GET') =>
      sampleValue(families, 'circus_rs_http_requests_total', { route, method, status });
    expect(families.get('circus_rs_http_requests_total')?.type).toBe('counter');
    expect(count('/mpr', '200')).toBe(5);
    expect(count('/mpr', '400')).toBe(2);
    expect(count('/series/:sid/metadata', '200')).toBe(1);
    expect(count('unmatched', '404')).toBe(1);
    expect(count('/status', '200', 'HEAD')).toBe(1);
    expect(count('*', '204', 'OPTIONS')).toBe(1);
    // The scrape itself is counted once it is answered.
    expect(count('/metrics', '200')).toBeUndefined();
    expect(samples(families, 'circus_rs_http_requests_total').reduce((n, x) => n + x.value, 0)).toBe(11);
    // A series UID is never a label.
    expect(text).not.toContain(DEFAULT_UID);

    const h = families.get('circus_rs_http_request_duration_seconds');
    expect(h?.type).toBe('histogram');
    const mpr = { route: '/mpr', method: 'GET', status: '200' };
    expect(sampleValue(families, 'circus_rs_http_request_duration_seconds_count', mpr)).toBe(5);
    expect(sampleValue(families, 'circus_rs_http_request_duration_seconds_sum', mpr)).toBeGreaterThan(0);
    const bounds = samples(families, 'circus_rs_http_request_duration_seconds_bucket')
      .filter((b) => b.labels.route === '/mpr' && b.labels.status === '200')
      .map((b) => b.labels.le);
    expect(bounds).toEqual(['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    expect(sampleValue(families, 'circus_rs_http_request_duration_seconds_bucket', { ...mpr, le: '10' })).toBe(5);

    expect(sampleValue(families, 'circus_rs_info', { instance: 'replica-7' })).toBe(1);
    expect(samples(families, 'circus_rs_info')[0].labels.version).toMatch(/^\d+\.\d+\.\d+/);
    // The process's own metrics come along.
    expect(families.get('process_cpu_user_seconds_total')?.type).toBe('counter');
    expect(families.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(sampleValue(families, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const again = await scrape(s);
    expect(sampleValue(again.families, 'circus_rs_http_requests_total', { route: '/metrics', method: 'GET', status: '200' })).toBe(1);
  });

  it('labels routes below the base path; /metrics is served under it and public in authentication mode', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ basePath: '/rs', auth: true, tokenSecret: SECRET });
    expect((await get(s, `/rs/metadata?series=${DEFAULT_UID}`)).statusCode).toBe(401);
    expect((await get(s, '/metrics')).statusCode).toBe(404);
    const { families } = await scrape(s, '/rs/metrics');
    expect(sampleValue(families, 'circus_rs_http_requests_total', { route: '/metadata', status: '401' })).toBe(1);
    expect(sampleValue(families, 'circus_rs_http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
    // Without an instance name the info metric says so with an empty label.
    expect(sampleValue(families, 'circus_rs_info', { instance: '' })).toBe(1);
  });

  it('two apps in one process count their own requests', async () => {
    const a = start();
    const b = start();
    for (let i = 0; i < 3; i++) await get(a, '/status');
    await get(b, '/status');
    const count = async (s: Server) => sampleValue((await scrape(s)).families, 'circus_rs_http_requests_total', { route: '/status', status: '200' });
    expect(await count(a)).toBe(3);
    expect(await count(b)).toBe(1);
  });
});

describe('GET /metrics: cache, loads, pools', () => {
  it('cache bytes, entries, hits, misses and evictions by region equal /status figures at the same moment', async () => {
    // Four 5 MiB volumes under a 16 MiB budget: the fourth load evicts the first.
    const uids = [1, 2, 3, 4].map((i) => `1.2.826.0.1.3680043.10.1453.901.${i}`);
    for (const uid of uids) writeSeries(join(tmp.path, uid), { uid, columns: 256, rows: 256, slices: 40 });
    const s = start({ cacheBytes: '16M' });
    for (const uid of uids) {
      expect((await get(s, `/metadata?series=${uid}`)).statusCode).toBe(200);
      expect((await get(s, `/mpr?series=${uid}&mode=axial&target=3`)).statusCode).toBe(200);
      expect((await get(s, `/mpr?series=${uid}&mode=axial&target=3`)).statusCode).toBe(200);
    }
    expect((await get(s, '/metadata?series=1.2.826.0.1.3680043.10.1453.901.99')).statusCode).toBe(404);

    const status = (await get(s, '/status')).json() as {
      cache: {
        budgetBytes: number;
        reservedBytes: number;
        evictions: number;
        regions: Record<string, { count: number; bytes: number; hits: number; misses: number; evictions: number }>;
      };
    };
    const { families } = await scrape(s);
    const regions = Object.keys(status.cache.regions).sort();
    expect(regions).toEqual(['images', 'volumeStreams', 'volumes']);
    for (const region of regions) {
      const r = status.cache.regions[region];
      expect(sampleValue(families, 'circus_rs_cache_bytes', { region }), region).toBe(r.bytes);
      expect(sampleValue(families, 'circus_rs_cache_entries', { region }), region).toBe(r.count);
      expect(sampleValue(families, 'circus_rs_cache_hits_total', { region }), region).toBe(r.hits);
      expect(sampleValue(families, 'circus_rs_cache_misses_total', { region }), region).toBe(r.misses);
      expect(sampleValue(families, 'circus_rs_cache_evictions_total', { region }), region).toBe(r.evictions);
    }
    expect(status.cache.regions.volumes.evictions).toBeGreaterThan(0);
    expect(status.cache.regions.volumes.count).toBe(3);
    expect(status.cache.regions.images.hits).toBe(4);
    expect(sampleValue(families, 'circus_rs_cache_budget_bytes')).toBe(16 * 1024 * 1024);
    expect(sampleValue(families, 'circus_rs_cache_reserved_bytes')).toBe(status.cache.reservedBytes);
    expect(families.get('circus_rs_cache_evictions_total')?.type).toBe('counter');

    // Four loads that completed, one that failed (no such series); none under way.
    expect(sampleValue(families, 'circus_rs_volume_load_duration_seconds_count', { outcome: 'ok' })).toBe(4);
    expect(sampleValue(families, 'circus_rs_volume_load_duration_seconds_count', { outcome: 'error' })).toBe(1);
    expect(sampleValue(families, 'circus_rs_volume_load_duration_seconds_sum', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(sampleValue(families, 'circus_rs_volume_loads_in_flight')).toBe(0);

    // The worker pools as configured (one thread each), idle.
    for (const pool of ['decoding', 'rendering']) {
      expect(sampleValue(families, 'circus_rs_worker_pool_size', { pool }), pool).toBe(1);
      expect(sampleValue(families, 'circus_rs_worker_pool_queued', { pool }), pool).toBe(0);
      expect(sampleValue(families, 'circus_rs_worker_pool_busy', { pool }), pool).toBe(0);
    }
    expect(sampleValue(families, 'circus_rs_worker_pool_workers', { pool: 'rendering' })).toBe(1);
  });

  it('shows a load in flight while it is held back, and its time once it ends', async () => {
    const uid = '1.2.826.0.1.3680043.10.1453.902.1';
    const held = new HeldSeries(uid, sliceFiles(uid, 6));
    const s = start({}, { source: held, useIndex: false });
    const pending = get(s, `/metadata?series=${uid}`);
    await held.whenAsked('slice 0');
    const during = (await scrape(s)).families;
    expect(sampleValue(during, 'circus_rs_volume_loads_in_flight')).toBe(1);
    expect(sampleValue(during, 'circus_rs_volume_load_duration_seconds_count', { outcome: 'ok' })).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 50));
    held.release();
    expect((await pending).statusCode).toBe(200);
    const after = (await scrape(s)).families;
    expect(sampleValue(after, 'circus_rs_volume_loads_in_flight')).toBe(0);
    expect(sampleValue(after, 'circus_rs_volume_load_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    // Held for 50 ms at least: the observation is the load's whole time, in seconds.
    expect(sampleValue(after, 'circus_rs_volume_load_duration_seconds_sum', { outcome: 'ok' })).toBeGreaterThanOrEqual(0.05);
    expect(sampleValue(after, 'circus_rs_volume_load_duration_seconds_bucket', { outcome: 'ok', le: '0.025' })).toBe(0);
  });
});

describe('GET /metrics: WebSocket /ws/volume', () => {
  it('counts sockets, transfers and images sent, and agrees with /status', async () => {
    const uid = '1.2.826.0.1.3680043.10.1453.903.1';
    const nz = 7;
    const s = start({ instanceName: 'ws-replica' }, { source: memory(uid, nz), useIndex: false });
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = s.app.server.address() as { port: number };
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/volume`);
    const upgraded = new Promise<string | undefined>((resolve) => ws.once('upgrade', (res) => resolve(res.headers['x-circus-instance'] as string)));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    // The upgrade's answer names the instance too.
    expect(await upgraded).toBe('ws-replica');
    let images = 0;
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        if (data.subarray(0, data.indexOf(0x0a)).toString().includes('TRANSFER_IMAGE') && ++images === nz) resolve();
      }),
    );
    ws.send(Buffer.from(`${JSON.stringify({ messageType: 'BEGIN_TRANSFER', transferId: 't1', seriesUid: uid })}\n`));
    await done;
    const status = (await get(s, '/status')).json() as { volumeSockets: { sockets: number; transfers: number; imagesSent: number } };
    const open = (await scrape(s)).families;
    expect(sampleValue(open, 'circus_rs_ws_sockets')).toBe(status.volumeSockets.sockets);
    expect(sampleValue(open, 'circus_rs_ws_sockets')).toBe(1);
    expect(sampleValue(open, 'circus_rs_ws_transfers')).toBe(status.volumeSockets.transfers);
    expect(sampleValue(open, 'circus_rs_ws_transfers_total')).toBe(1);
    expect(sampleValue(open, 'circus_rs_ws_sockets_opened_total')).toBe(1);
    expect(sampleValue(open, 'circus_rs_ws_images_sent_total')).toBe(status.volumeSockets.imagesSent);
    expect(sampleValue(open, 'circus_rs_ws_images_sent_total')).toBe(nz);

    ws.close();
    let closed = open;
    for (let i = 0; i < 200 && sampleValue(closed, 'circus_rs_ws_sockets') !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      closed = (await scrape(s)).families;
    }
    // Open sockets go down; what was sent stays counted.
    expect(sampleValue(closed, 'circus_rs_ws_sockets')).toBe(0);
    expect(sampleValue(closed, 'circus_rs_ws_images_sent_total')).toBe(nz);
    expect(sampleValue(closed, 'circus_rs_ws_sockets_opened_total')).toBe(1);
  });
});

describe('GET /health/live and /health/ready', () => {
  it('both answer 200 on a server that can serve, without a token in authentication mode, never cached', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ auth: true, tokenSecret: SECRET });
    for (const url of ['/health/live', '/health/ready']) {
      const res = await get(s, url);
      expect(res.statusCode, url).toBe(200);
      expect(res.json(), url).toEqual({ status: 'ok' });
      expect(res.headers['cache-control'], url).toBe('no-store');
      expect(res.headers['content-type'], url).toMatch(/^application\/json/);
      expect((await get(s, url, 'HEAD')).statusCode, `HEAD ${url}`).toBe(200);
    }
  });

  it('ready is 503 with the reason when the header index cannot be opened; live stays 200', async () => {
    writeFileSync(join(tmp.path, 'a-file'), 'not a folder');
    const s = start({ indexPath: join(tmp.path, 'a-file', 'index.sqlite') });
    const res = await get(s, '/health/ready');
    expect(res.statusCode).toBe(503);
    const body = res.json() as { status: string; reason: string };
    expect(body.status).toBe('unavailable');
    expect(body.reason).toMatch(/header index .*a-file\/index\.sqlite cannot be opened/);
    expect((await get(s, '/health/live')).statusCode).toBe(200);
  });

  it('ready is 503 once the data directory cannot be read, and 200 again when it is back', async () => {
    const data = join(tmp.path, 'data');
    mkdirSync(data);
    const s = start({ dataDir: data }, { useIndex: false });
    expect((await get(s, '/health/ready')).statusCode).toBe(200);
    rmSync(data, { recursive: true });
    const res = await get(s, '/health/ready');
    expect(res.statusCode).toBe(503);
    expect((res.json() as { reason: string }).reason).toMatch(/^data directory .*data cannot be read: ENOENT/);
    mkdirSync(data);
    expect((await get(s, '/health/ready')).statusCode).toBe(200);
  });

  it('ready asks a source that can say whether it is reachable, within two seconds', async () => {
    let answer: () => Promise<string | null> = async () => 'the archive refuses connections';
    const source: SeriesSource & { readiness(): Promise<string | null> } = { find: async () => null, readiness: () => answer() };
    const s = start({}, { source, useIndex: false });
    let res = await get(s, '/health/ready');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'unavailable', reason: 'the archive refuses connections' });
    answer = async () => null;
    expect((await get(s, '/health/ready')).statusCode).toBe(200);
    answer = () => new Promise(() => {});
    const t0 = Date.now();
    res = await get(s, '/health/ready');
    expect(res.statusCode).toBe(503);
    expect((res.json() as { reason: string }).reason).toBe('the series source did not answer within 2000 ms');
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('while shutting down, ready is 503 and live 200, when every other route is refused', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ instanceName: 'r-closing' }, { useIndex: false });
    expect((await get(s, '/health/ready')).statusCode).toBe(200);
    s.app.closing = true; // what close() sets first, before the server stops listening
    const ready = await get(s, '/health/ready');
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ status: 'unavailable', reason: 'the server is shutting down' });
    expect(ready.headers['x-circus-instance']).toBe('r-closing');
    const live = await get(s, '/health/live');
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
    expect((await get(s, `/metadata?series=${DEFAULT_UID}`)).statusCode).toBe(503);
    expect((await get(s, '/status')).statusCode).toBe(503);
  });

  it('are served under the base path only', async () => {
    const s = start({ basePath: '/images/rs' }, { useIndex: false });
    expect((await get(s, '/images/rs/health/live')).statusCode).toBe(200);
    expect((await get(s, '/images/rs/health/ready')).statusCode).toBe(200);
    expect((await get(s, '/health/live')).statusCode).toBe(404);
    expect((await get(s, '/health/ready')).statusCode).toBe(404);
  });
});

describe('--instance-name and X-Circus-Instance', () => {
  it('names the instance on every response, errors, preflight and parser-level refusals included; browsers may read it', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = start({ instanceName: 'rs-2.example' });
    for (const [url, method, status] of [
      [`/metadata?series=${DEFAULT_UID}`, 'GET', 200],
      ['/mpr?series=bad', 'GET', 400],
      ['/nowhere', 'GET', 404],
      ['/status', 'OPTIONS', 204],
      ['/status', 'HEAD', 200],
    ] as const) {
      const res = await get(s, url, method);
      expect(res.statusCode, `${method} ${url}`).toBe(status);
      expect(res.headers['x-circus-instance'], `${method} ${url}`).toBe('rs-2.example');
      expect(String(res.headers['access-control-expose-headers']).split(/,\s*/)).toContain('X-Circus-Instance');
    }
    // A request Node's HTTP parser refuses is answered by the server's own 400, named too.
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = s.app.server.address() as { port: number };
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      socket.on('data', (c) => (text += c.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toMatch(/\r\nX-Circus-Instance: rs-2\.example\r\n/);
    // A WebSocket upgrade refused (here: an unknown path) is named as well as one accepted.
    const refused = await new Promise<{ status: number; instance: unknown }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/elsewhere`);
      ws.on('error', () => {});
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, instance: res.headers['x-circus-instance'] });
      });
    });
    expect(refused).toEqual({ status: 404, instance: 'rs-2.example' });
  });

  it('sends no header without a name; refuses names that cannot be a header value', async () => {
    const s = start();
    expect((await get(s, '/status')).headers['x-circus-instance']).toBeUndefined();
    for (const bad of ['two words', 'a\nb', 'x'.repeat(65), 'naïve']) {
      expect(() => loadConfig({ flags: { instanceName: bad }, env: {} }), JSON.stringify(bad)).toThrow(ConfigError);
    }
    expect(loadConfig({ env: { CIRCUS_RS_INSTANCE_NAME: 'rs-1' } }).instanceName).toBe('rs-1');
    expect(() => loadConfig({ flags: { instanceName: 'two words' }, env: {} })).toThrow(
      /option instanceName \(--instance-name, CIRCUS_RS_INSTANCE_NAME\)/,
    );
  });
});

describe('the exposition reader the tests use', () => {
  it('refuses what a Prometheus server would refuse', () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 3\n';
    expect(sampleValue(parseExposition(ok), 'a_total', { x: '1' })).toBe(3);
    for (const bad of [
      'a_total 3\n', // no TYPE or HELP
      '# TYPE a_total counter\na_total{x=1} 3\n', // unquoted label value
      '# TYPE a_total counter\na_total{x="1"} three\n', // not a number
      '# TYPE a_total counter\na_total -1\n', // a negative counter
      '# TYPE a gauge\n# TYPE b gauge\na 1\n', // a family split
      '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', // a series twice
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf differs from _count
      '# TYPE a gauge\na 1', // no final line feed
    ]) {
      expect(() => parseExposition(bad), JSON.stringify(bad)).toThrow();
    }
  });
});
