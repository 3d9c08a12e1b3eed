/**
 * GET /series and the routes that serve the viewer, in process. Summaries are checked against
 * the attributes the series were written with; the index lists its series from the headers it
 * keeps, without reading the files again.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { tag } from '../src/dicom/tags.js';
import { createServer, type Server } from '../src/server.js';
import { DataDirectorySource, hashedDir } from '../src/sources/dataDirectory.js';
import { MemorySource } from '../src/sources/memorySource.js';
import { SeriesIndex } from '../src/sources/seriesIndex.js';
import { orderSummaries, type SeriesSummary, searchSummaries, studyDateText } from '../src/sources/summary.js';
import { TempDir, writeMultiFrame, writeSeries } from './fixtures/series.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const A = '1.2.826.0.1.3680043.10.1453.88.1';
const B = '1.2.826.0.1.3680043.10.1453.88.2';
const C = '1.2.826.0.1.3680043.10.1453.88.3';
const D = '1.2.826.0.1.3680043.10.1453.88.4';

function attributes(name: string | null, id: string, date: string | null, study: string) {
  return [
    ...(name !== null ? [{ tag: tag(0x0010, 0x0010), vr: 'PN', value: name }] : []),
    { tag: tag(0x0010, 0x0020), vr: 'LO', value: id },
    ...(date !== null ? [{ tag: tag(0x0008, 0x0020), vr: 'DA', value: date }] : []),
    { tag: tag(0x0008, 0x1030), vr: 'LO', value: study },
  ];
}

const SUMMARY_A: SeriesSummary = {
  seriesUid: A,
  studyUid: `${A}.0`,
  patientName: 'Doe^Jane',
  patientId: 'P-001',
  studyDate: '2024-01-02',
  studyDescription: 'Chest',
  seriesDescription: 'Axial 1 mm',
  modality: 'CT',
  images: 3,
  rows: 3,
  columns: 4,
};
const SUMMARY_B: SeriesSummary = {
  seriesUid: B,
  studyUid: `${B}.0`,
  patientName: 'Roe^Rick',
  patientId: 'P-002',
  studyDate: '2025-06-10',
  studyDescription: 'Head',
  seriesDescription: 'Brain T1',
  modality: 'MR',
  images: 2,
  rows: 6,
  columns: 5,
};
const SUMMARY_C: SeriesSummary = {
  seriesUid: C,
  studyUid: `${C}.0`,
  patientName: null,
  patientId: 'P-003',
  studyDate: null,
  studyDescription: 'Abdomen',
  seriesDescription: 'Portal venous',
  modality: 'CT',
  images: 2,
  rows: 3,
  columns: 4,
};
const SUMMARY_D: SeriesSummary = {
  seriesUid: D,
  studyUid: `${D}.0`,
  patientName: null,
  patientId: null,
  studyDate: null,
  studyDescription: null,
  seriesDescription: null,
  modality: 'CT',
  images: 4,
  rows: 2,
  columns: 3,
};

let tmp: TempDir;

/** A in the CIRCUS layout, B in the hashed one, C and the 4-frame D in a tree only the index finds. */
function writeData(root: string): void {
  writeSeries(join(root, A), {
    uid: A,
    slices: 3,
    tweak: (_k, s) => ({ ...s, seriesDescription: 'Axial 1 mm', extra: attributes('Doe^Jane', 'P-001', '20240102', 'Chest') }),
  });
  writeSeries(hashedDir(root, B), {
    uid: B,
    slices: 2,
    columns: 5,
    rows: 6,
    tweak: (_k, s) => ({ ...s, modality: 'MR', seriesDescription: 'Brain T1', extra: attributes('Roe^Rick', 'P-002', '20250610', 'Head') }),
  });
  writeSeries(join(root, 'export', 'disc1'), {
    uid: C,
    slices: 2,
    tweak: (_k, s) => ({ ...s, seriesDescription: 'Portal venous', extra: attributes(null, 'P-003', null, 'Abdomen') }),
  });
  mkdirSync(join(root, 'export', 'disc2'), { recursive: true });
  writeMultiFrame(join(root, 'export', 'disc2', 'MF'), {
    uid: D,
    columns: 3,
    rows: 2,
    frames: 4,
    layout: 'classic',
    value: (x, y, f) => x + y + f,
    position: (f) => [0, 0, 2 * f],
  });
  writeFileSync(join(root, 'export', 'README.txt'), 'not DICOM');
}

beforeAll(() => {
  tmp = new TempDir();
  writeData(join(tmp.path, 'data'));
});
afterAll(() => tmp.remove());

const byUid = (list: SeriesSummary[]): SeriesSummary[] => [...list].sort((a, b) => a.seriesUid.localeCompare(b.seriesUid));

describe('sources list their series', () => {
  it('a data directory without an index: the CIRCUS and hashed layouts, each from its first file', async () => {
    const source = new DataDirectorySource(join(tmp.path, 'data'), null);
    expect(byUid(await source.listSeries())).toEqual([SUMMARY_A, SUMMARY_B]);
  });

  it('a folder whose first file is rewritten in place is summed up again', async () => {
    const root = join(tmp.path, 'rewritten');
    const uid = '1.2.826.0.1.3680043.10.1453.88.9';
    const write = (name: string) =>
      writeSeries(join(root, uid), { uid, slices: 2, tweak: (_k, s) => ({ ...s, extra: attributes(name, 'P-9', '20240102', 'Knee') }) });
    const [first] = write('Before^Name');
    const source = new DataDirectorySource(root, null);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      expect((await source.listSeries()).map((x) => x.patientName)).toEqual(['Before^Name']);
      // The same files written again in place with another patient name: no entry is added or
      // removed, so the folder's mtime stays.
      const dirTime = statSync(join(root, uid)).mtimeMs;
      expect(write('After^Name')[0]).toBe(first);
      expect(statSync(join(root, uid)).mtimeMs).toBe(dirTime);
      vi.setSystemTime(Date.now() + 5000); // past the two seconds a listing is reused
      expect((await source.listSeries()).map((x) => x.patientName)).toEqual(['After^Name']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('with the header index: every series of the tree, multi-frame files counted by frames', async () => {
    const index = new SeriesIndex(join(tmp.path, 'data'), join(tmp.path, 'list-index.sqlite'));
    try {
      await index.update();
      const source = new DataDirectorySource(join(tmp.path, 'data'), index);
      expect(byUid(await source.listSeries())).toEqual([SUMMARY_A, SUMMARY_B, SUMMARY_C, SUMMARY_D]);
    } finally {
      index.close();
    }
  });

  it('the index lists from the headers it keeps, without reading the files', async () => {
    const copy = join(tmp.path, 'copy');
    writeSeries(join(copy, 'deep', 'tree'), {
      uid: C,
      slices: 2,
      tweak: (_k, s) => ({ ...s, seriesDescription: 'Portal venous', extra: attributes(null, 'P-003', null, 'Abdomen') }),
    });
    const index = new SeriesIndex(copy, join(tmp.path, 'copy-index.sqlite'));
    try {
      await index.update();
      // The files are gone: only the index can still say what they held.
      rmSync(join(copy, 'deep'), { recursive: true });
      expect(await new DataDirectorySource(copy, index).listSeries()).toEqual([SUMMARY_C]);
    } finally {
      index.close();
    }
  });

  it('a source in memory', async () => {
    const source = new MemorySource();
    const files = writeSeries(join(tmp.path, 'memory'), {
      uid: B,
      slices: 2,
      columns: 5,
      rows: 6,
      tweak: (_k, s) => ({ ...s, modality: 'MR', seriesDescription: 'Brain T1', extra: attributes('Roe^Rick', 'P-002', '20250610', 'Head') }),
    });
    for (const f of files) source.addDicom(f, readFileSync(f));
    expect(await source.listSeries()).toEqual([SUMMARY_B]);
  });

  it('summaries are ordered newest study first and searched word by word in every attribute', () => {
    const all = [SUMMARY_D, SUMMARY_A, SUMMARY_C, SUMMARY_B];
    expect(orderSummaries(all).map((s) => s.seriesUid)).toEqual([B, A, C, D]);
    expect(searchSummaries(all, 'jane').map((s) => s.seriesUid)).toEqual([A]);
    expect(searchSummaries(all, 'MR brain').map((s) => s.seriesUid)).toEqual([B]);
    expect(searchSummaries(all, '20250610').map((s) => s.seriesUid)).toEqual([B]);
    expect(searchSummaries(all, 'doe rick')).toEqual([]);
    expect(searchSummaries(all, '  ')).toHaveLength(4);
    expect(studyDateText('19991231')).toBe('1999-12-31');
    expect(studyDateText('1999.12.31')).toBe('1999-12-31');
    expect(studyDateText('last year')).toBe('last year');
  });
});

describe('GET /series', () => {
  const servers: Server[] = [];
  const start = async (flags: Record<string, unknown> = {}, indexed = true): Promise<Server> => {
    const s = createServer(
      loadConfig({ flags: { dataDir: join(tmp.path, 'data'), indexPath: join(tmp.path, `server-${servers.length}.sqlite`), ...flags }, env: {} }),
      { useIndex: indexed, viewerDir: join(tmp.path, 'no-viewer') },
    );
    servers.push(s);
    await s.startIndexing();
    return s;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('answers every series, newest study first, with the total and the page', async () => {
    const s = await start();
    const res = await s.app.inject({ url: '/series' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({ total: 4, offset: 0, limit: 1000, series: [SUMMARY_B, SUMMARY_A, SUMMARY_C, SUMMARY_D] });
    expect(s.app.counters.series).toBe(1);
  });

  it('searches with q, pages with offset and limit, at most listLimit a page', async () => {
    const s = await start({ listLimit: 2 });
    const uids = async (url: string): Promise<[number, string[]]> => {
      const body = (await s.app.inject({ url })).json() as { total: number; series: SeriesSummary[] };
      return [body.total, body.series.map((x) => x.seriesUid)];
    };
    expect(await uids('/series?q=p-00')).toEqual([3, [B, A]]);
    expect(await uids('/series?q=p-00&offset=2')).toEqual([3, [C]]);
    expect(await uids('/series?offset=1&limit=1')).toEqual([4, [A]]);
    expect(await uids('/series?q=head%20roe')).toEqual([1, [B]]);
    expect(await uids('/series?q=nothing%20like%20it')).toEqual([0, []]);
    expect(await uids('/series?offset=9')).toEqual([4, []]);
    expect(await uids('/series?q=')).toEqual([4, [B, A]]);
    const capped = (await s.app.inject({ url: '/series?limit=50' })).json() as { limit: number; series: unknown[] };
    expect([capped.limit, capped.series.length]).toEqual([2, 2]);
  });

  it('refuses malformed parameters with the status body and a message naming them', async () => {
    const s = await start();
    for (const [url, name] of [
      ['/series?offset=-1', 'offset'],
      ['/series?limit=0', 'limit'],
      ['/series?limit=1.5', 'limit'],
      ['/series?q=a&q=b', 'q'],
    ] as const) {
      const res = await s.app.inject({ url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toEqual({ status: 'ng', message: expect.stringContaining(`'${name}'`) });
    }
  });

  it('is off in authentication mode unless allowListing is on, and needs no token then', async () => {
    const off = await start({ auth: true, tokenSecret: 'a-secret-of-sixteen-chars' });
    const refused = await off.app.inject({ url: '/series' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ status: 'ng', message: expect.stringMatching(/^series are not listed in authentication mode .*allowListing/) });
    const on = await start({ auth: true, tokenSecret: 'a-secret-of-sixteen-chars', allowListing: true });
    const listed = await on.app.inject({ url: '/series' });
    expect(listed.statusCode).toBe(200);
    expect((listed.json() as { total: number }).total).toBe(4);
  });

  it('sits under the base path', async () => {
    const s = await start({ basePath: '/rs' });
    expect((await s.app.inject({ url: '/rs/series?q=jane' })).json()).toMatchObject({ total: 1, series: [SUMMARY_A] });
    expect((await s.app.inject({ url: '/series' })).statusCode).toBe(404);
  });
});

describe('the viewer routes', () => {
  const viewerDir = (): string => {
    const dir = join(tmp.path, 'viewer-files');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>v</title>');
    writeFileSync(join(dir, 'main.js'), 'export const x = 1;\n');
    writeFileSync(join(dir, 'style.css'), 'body { color: red; }\n');
    writeFileSync(join(dir, 'notes.txt'), 'not served');
    return dir;
  };
  const servers: Server[] = [];
  const start = (flags: Record<string, unknown> = {}, dir = viewerDir()): Server => {
    const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'data'), ...flags }, env: {} }), { useIndex: false, viewerDir: dir });
    servers.push(s);
    return s;
  };
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('serves the page at / and its files under /viewer/, with their types, an ETag and a content security policy', async () => {
    const s = start();
    const page = await s.app.inject({ url: `/?series=${A}` });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toBe('<!doctype html><title>v</title>');
    expect(page.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(page.headers['cache-control']).toBe('no-cache');
    const js = await s.app.inject({ url: '/viewer/main.js' });
    expect([js.statusCode, js.headers['content-type'], js.body]).toEqual([200, 'text/javascript; charset=utf-8', 'export const x = 1;\n']);
    const css = await s.app.inject({ url: '/viewer/style.css' });
    expect([css.statusCode, css.headers['content-type']]).toEqual([200, 'text/css; charset=utf-8']);
    const again = await s.app.inject({ url: '/viewer/main.js', headers: { 'if-none-match': String(js.headers.etag) } });
    expect([again.statusCode, again.body]).toEqual([304, '']);
    const head = await s.app.inject({ method: 'HEAD', url: '/' });
    expect([head.statusCode, head.headers['content-type']]).toEqual([200, 'text/html; charset=utf-8']);
    for (const url of ['/viewer/notes.txt', '/viewer/nothing.js', '/viewer/..%2Fpackage.json']) {
      const res = await s.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json()).toEqual({ result: 'ng', message: expect.stringMatching(/unknown viewer file|unknown action/) });
    }
    expect(s.app.counters.viewer).toBe(5);
  });

  it('is public in authentication mode (the API it calls checks tokens)', async () => {
    const s = start({ auth: true, tokenSecret: 'a-secret-of-sixteen-chars' });
    expect((await s.app.inject({ url: '/' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/viewer/main.js' })).statusCode).toBe(200);
  });

  it('under a base path: /rs is sent to /rs/ (the page resolves API URLs against its folder)', async () => {
    const s = start({ basePath: '/rs' });
    const bare = await s.app.inject({ url: `/rs?series=${A}&ww=80` });
    expect(bare.statusCode).toBe(302);
    expect(bare.headers.location).toBe(`/rs/?series=${A}&ww=80`);
    expect((await s.app.inject({ url: '/rs/' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/rs/viewer/main.js' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/' })).statusCode).toBe(404);
  });

  it('is left out with viewer off, and says so when it is not built', async () => {
    const off = start({ viewer: false });
    const none = await off.app.inject({ url: '/' });
    expect(none.statusCode).toBe(404);
    expect(none.json()).toEqual({ result: 'ng', message: 'unknown action /' });
    const unbuilt = start({}, join(tmp.path, 'empty-viewer'));
    const res = await unbuilt.app.inject({ url: '/' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ result: 'ng', message: 'the viewer is not built (run npm run build)' });
  });

  it('config: viewer on and listing off by default; --no-viewer on the command line turns the viewer off', async () => {
    const defaults = loadConfig({ env: {} });
    expect([defaults.viewer, defaults.allowListing, defaults.listLimit]).toEqual([true, false, 1000]);
    expect(loadConfig({ env: { CIRCUS_RS_VIEWER: 'false', CIRCUS_RS_ALLOW_LISTING: 'true' } })).toMatchObject({ viewer: false, allowListing: true });

    // Off: no route at /. On: the page, or (when dist/viewer is not built yet) the viewer's own 404.
    const off = await serveOnce(['--no-viewer']);
    expect(off.viewer).toEqual({ status: 404, message: 'unknown action /' });
    expect(off.stdout).not.toMatch(/viewer/);
    const on = await serveOnce([]);
    expect(on.viewer).toEqual(on.viewer.status === 200 ? { status: 200 } : { status: 404, message: 'the viewer is not built (run npm run build)' });
    expect(on.stdout).toMatch(/^ {2}http:\/\/127\.0\.0\.1:\d+\/ {2}the viewer: series list/m);
  }, 60_000);

  /** Runs `circus-rs serve` on a free port, asks for / and stops it. */
  async function serveOnce(args: string[]): Promise<{ stdout: string; viewer: { status: number; message?: string } }> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CIRCUS_RS_')) env[k] = v;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(ROOT, 'src/cli.ts'),
        'serve',
        ...[
          '--data-dir',
          join(tmp.path, 'data'),
          '--port',
          '0',
          '--log-level',
          'warn',
          '--index-path',
          join(tmp.path, `cli-${Math.random()}.sqlite`),
        ],
        ...args,
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    try {
      const port = await new Promise<number>((resolvePort, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${stdout}`)), 30_000);
        child.stdout!.on('data', (c: Buffer) => {
          stdout += c.toString();
          const m = /serving .* at http:\/\/127\.0\.0\.1:(\d+)\n(.*\n)+/.exec(stdout);
          if (m && stdout.includes('/status')) {
            clearTimeout(timer);
            resolvePort(Number(m[1]));
          }
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/`);
      const body = await res.text();
      return {
        stdout,
        viewer: res.status === 200 ? { status: 200 } : { status: res.status, message: (JSON.parse(body) as { message: string }).message },
      };
    } finally {
      child.kill('SIGTERM');
    }
  }
});
