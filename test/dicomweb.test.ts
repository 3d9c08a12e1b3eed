/**
 * Series from a DICOMweb PACS: Debian's Orthanc with its DICOMweb plugin, started here on a
 * loopback port with a generated configuration (HTTP Basic authentication on, so every request
 * proves the configured header is sent), with the test series uploaded through its REST API.
 * What the server answers from the PACS must equal, byte for byte, what it answers from the same
 * files in a folder, for an uncompressed and a compressed (RLE) series. A PACS that is down,
 * slow or answers garbage must give a 502 or 504 with a clear message, never a hang; the
 * failure-mode PACSes are tiny local HTTP servers, since Orthanc does not misbehave on demand.
 * Orthanc is required (CI installs it): without it every test fails with a message saying so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { tag } from '../src/dicom/tags.js';
import type { WriteElement } from '../src/dicom/writer.js';
import { createServer, type Server } from '../src/server.js';
import { DicomwebSource } from '../src/sources/dicomweb.js';
import { InstanceCache } from '../src/sources/instanceCache.js';
import { inCi } from './conformance/pydicomEnv.js';
import { dicomwebPlugin, Orthanc, orthancBinary } from './fixtures/orthanc.js';
import { rleFrame } from './fixtures/rle.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
/** Uncompressed, compressed, in the folder and the PACS with different voxels, large (for stopping Orthanc mid-load). */
const PLAIN = '1.2.826.0.1.3680043.8.498.71';
const RLE = '1.2.826.0.1.3680043.8.498.72';
const BOTH = '1.2.826.0.1.3680043.8.498.73';
const LARGE = '1.2.826.0.1.3680043.8.498.74';
const UNKNOWN = '1.2.826.0.1.3680043.8.498.79';
const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const CLI = join(ROOT, 'src/cli.ts');
const USER = 'circus';
const PASSWORD = 'pacs-secret-7';

let tmp: TempDir;
let orthanc: Orthanc;

/*
 * Without Debian's Orthanc and its DICOMweb plugin the suites are skipped with a message; in CI
 * (where .ci/run installs them) they fail instead.
 */
const orthancMissing =
  orthancBinary() === null ? 'Orthanc is not installed' : dicomwebPlugin() === null ? 'the Orthanc DICOMweb plugin is not installed' : null;
const suite = orthancMissing === null || inCi ? describe : describe.skip;
if (orthancMissing !== null && !inCi) {
  console.warn(`DICOMweb tests skipped: ${orthancMissing} (apt-get install orthanc orthanc-dicomweb; the suites fail instead when CI is set)`);
}
/** The reference: the same files in a folder. */
let reference: Server;
/** Folder (holding BOTH with its own voxels) first, then the PACS. */
let onPacs: Server;
const servers: Server[] = [];
const files = new Map<string, string[]>();

const authorization = (): string => `Authorization: Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

function start(flags: Record<string, unknown>): Server {
  const config = loadConfig({ flags: { cacheBytes: '512M', decodeWorkers: 1, renderWorkers: 1, ...flags }, env: {} });
  const server = createServer(config, { useIndex: false });
  servers.push(server);
  return server;
}

/** A server on an empty folder and the PACS, with the credentials, and `flags`. */
const pacsServer = (flags: Record<string, unknown> = {}): Server =>
  start({ dataDir: join(tmp.path, 'empty'), dicomwebUrl: orthanc.dicomweb, dicomwebHeaders: [authorization()], ...flags });

async function get(
  server: Server,
  url: string,
): Promise<{ status: number; type: string | undefined; body: Buffer; json: () => Record<string, unknown> }> {
  const res = await server.app.inject({ method: 'GET', url });
  return { status: res.statusCode, type: res.headers['content-type'] as string | undefined, body: res.rawPayload, json: () => res.json() };
}

/** Expects `url` to answer 200 from both servers with the same type and bytes. */
async function expectSame(a: Server, b: Server, url: string): Promise<void> {
  const [x, y] = await Promise.all([get(a, url), get(b, url)]);
  expect(x.status, `${url}: ${x.body.toString().slice(0, 300)}`).toBe(200);
  expect(y.status, `${url}: ${y.body.toString().slice(0, 300)}`).toBe(200);
  expect(y.type).toBe(x.type);
  expect(y.body.equals(x.body), `${url}: the bodies differ`).toBe(true);
}

/** Adds patient and study attributes to every slice (what GET /series shows). */
const patient =
  (name: string) =>
  (_k: number, elements: WriteElement[]): WriteElement[] => [
    ...elements,
    { tag: tag(0x0010, 0x0010), vr: 'PN', value: name },
    { tag: tag(0x0010, 0x0020), vr: 'LO', value: 'PID-7' },
    { tag: tag(0x0008, 0x0020), vr: 'DA', value: '20240131' },
  ];

beforeAll(async () => {
  if (suite === describe.skip) return;
  tmp = new TempDir('circus-rs-dicomweb-');
  const ref = join(tmp.path, 'reference');
  mkdirSync(join(tmp.path, 'empty'));
  const local = join(tmp.path, 'local');
  files.set(
    PLAIN,
    writeSeries(join(ref, PLAIN), {
      uid: PLAIN,
      columns: 40,
      rows: 30,
      slices: 24,
      value: (x, y, k) => 3 * x - 5 * y + 40 * k - 300,
      rescaleIntercept: () => -1024,
      rescaleSlope: () => 1,
      windowCenter: 40,
      windowWidth: 400,
      tweakElements: patient('Plain^Patient'),
    }),
  );
  files.set(
    RLE,
    writeSeries(join(ref, RLE), {
      uid: RLE,
      columns: 36,
      rows: 28,
      slices: 16,
      transferSyntax: RLE_LOSSLESS,
      encode: (pixels) => rleFrame(pixels as Int16Array),
      value: (x, y, k) => 7 * x - 11 * y + 90 * k - 500,
    }),
  );
  // BOTH: the folder's voxels (in the reference and in the folder of `onPacs`), and the PACS's own.
  writeSeries(join(ref, BOTH), { uid: BOTH, slices: 4, value: (x, y, k) => x + y + k });
  writeSeries(join(local, BOTH), { uid: BOTH, slices: 4, value: (x, y, k) => x + y + k });
  files.set(BOTH, writeSeries(join(tmp.path, 'pacs-only', BOTH), { uid: BOTH, slices: 4, value: (x, y, k) => 1000 - x - y - k }));
  // 39 MB: long enough a stream for Orthanc to be stopped in its middle.
  files.set(LARGE, writeSeries(join(ref, LARGE), { uid: LARGE, columns: 256, rows: 256, slices: 300, value: (x, y, k) => (x * y + k) % 2000 }));

  orthanc = await Orthanc.start({ users: { [USER]: PASSWORD } });
  await orthanc.upload([...files.values()].flat());
  reference = start({ dataDir: ref });
  onPacs = pacsServer({ dataDir: local });
}, 180_000);

afterAll(async () => {
  for (const s of servers) await s.close().catch(() => {});
  await orthanc?.remove();
  tmp?.remove();
});

suite('a series from the PACS', () => {
  it.each([
    ['uncompressed', PLAIN],
    ['RLE-compressed', RLE],
  ])('answers metadata, MPR in every plane and the raw volume of an %s series as the folder does', async (_, uid) => {
    await expectSame(reference, onPacs, `/metadata?series=${uid}`);
    for (const mode of ['axial', 'coronal', 'sagittal']) {
      await expectSame(reference, onPacs, `/mpr?series=${uid}&mode=${mode}`);
      await expectSame(reference, onPacs, `/mpr?series=${uid}&mode=${mode}&target=3&ww=600&wl=-100`);
    }
    await expectSame(reference, onPacs, `/oblique?series=${uid}&a=0.4&b=axial&c=10,10,5&ww=500&wl=0`);
    await expectSame(reference, onPacs, `/raw?series=${uid}`);
    await expectSame(reference, onPacs, `/series/${uid}/metadata`);
  });

  it('retrieves a series none of whose instances is cached in one stream, each instance as stored (transfer-syntax=*)', async () => {
    const source = onPacs.dicomweb!;
    const found = await source.find(RLE);
    expect(found).not.toBeNull();
    const stored = new Map(files.get(RLE)!.map((p) => [readFileSync(p).toString('latin1'), p]));
    const before = source.stats();
    for (const instance of found!.instances) {
      const bytes = await instance.bytes();
      expect(stored.has(bytes.toString('latin1')), `${instance.name} is not one of the files uploaded`).toBe(true);
      // A second read is served from the bytes retrieved.
      const part = Buffer.alloc(16);
      expect(await instance.read(part, 128)).toBe(16);
      expect(part.subarray(0, 4).toString('latin1')).toBe('DICM');
      const input = await instance.forWorker();
      expect(input.kind).toBe('bytes');
      expect(Buffer.from((input as { bytes: Uint8Array }).bytes).equals(bytes)).toBe(true);
    }
    const after = source.stats();
    expect(after.retrieved - before.retrieved).toBe(16);
    expect(after.requests - before.requests).toBe(1);
    expect(after.failures).toBe(before.failures);
  });

  it('lists instances by InstanceNumber through every QIDO-RS page', async () => {
    const paged = new DicomwebSource({ url: orthanc.dicomweb, headers: [authorization()], timeoutMs: 10_000, concurrency: 2, pageSize: 5 });
    const whole = new DicomwebSource({ url: orthanc.dicomweb, headers: [authorization()], timeoutMs: 10_000, concurrency: 2 });
    const a = (await paged.find(PLAIN))!.instances.map((i) => i.name);
    const b = (await whole.find(PLAIN))!.instances.map((i) => i.name);
    expect(a).toHaveLength(24);
    expect(new Set(a).size).toBe(24);
    expect(a).toEqual(b);
    expect(paged.stats().requests).toBe(1 + 5); // the study, then 5 pages of at most 5
  });

  it('lists the series of the PACS with their patient, study and series attributes', async () => {
    const list = await onPacs.dicomweb!.listSeries();
    expect(list.find((s) => s.seriesUid === PLAIN)).toMatchObject({
      seriesUid: PLAIN,
      studyUid: `${PLAIN}.0`,
      patientName: 'Plain^Patient',
      patientId: 'PID-7',
      studyDate: '2024-01-31',
      modality: 'CT',
      images: 24,
    });
    expect(list.map((s) => s.seriesUid).sort()).toEqual([PLAIN, RLE, BOTH, LARGE].sort());
    // Page by page: limit and offset reach the PACS.
    const pages = [0, 2].map((offset) => onPacs.dicomweb!.list({ limit: 2, offset }));
    const [a, b] = await Promise.all(pages);
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    expect(new Set([...a, ...b].map((s) => s.seriesUid)).size).toBe(4);
    // GET /series: the folder's series first, then the PACS's others, each once, searchable.
    const res = await get(onPacs, '/series');
    expect(res.status, res.body.toString()).toBe(200);
    const listed = res.json() as { total: number; series: { seriesUid: string; seriesDescription: string | null }[] };
    expect(listed.total).toBe(4);
    expect(listed.series.map((s) => s.seriesUid).sort()).toEqual([PLAIN, RLE, BOTH, LARGE].sort());
    const found = (await get(onPacs, '/series?q=plain%20pid-7')).json() as { series: { seriesUid: string }[] };
    expect(found.series.map((s) => s.seriesUid)).toEqual([PLAIN]);
  });

  it('is ready while the PACS answers', async () => {
    const res = await get(onPacs, '/health/ready');
    expect(res.status, res.body.toString()).toBe(200);
  });

  it('answers 404 for a series the PACS does not have, in both APIs', async () => {
    const old = await get(onPacs, `/metadata?series=${UNKNOWN}`);
    expect(old.status).toBe(404);
    expect(old.json()).toEqual({ result: 'ng', message: `series ${UNKNOWN} is not found` });
    const current = await get(onPacs, `/series/${UNKNOWN}/metadata`);
    expect(current.status).toBe(404);
    expect(current.json().status).toBe('ng');
  });

  it('takes a series from the folder first, never asking the PACS for it', async () => {
    const before = onPacs.dicomweb!.stats().requests;
    await expectSame(reference, onPacs, `/raw?series=${BOTH}`);
    expect(onPacs.dicomweb!.stats().requests).toBe(before);
    // The PACS's own copy has other voxels: the folder's were served.
    const pacsOnly = pacsServer();
    const fromPacs = await get(pacsOnly, `/raw?series=${BOTH}&format=voxels`);
    const fromFolder = await get(reference, `/raw?series=${BOTH}&format=voxels`);
    expect(fromPacs.status).toBe(200);
    expect(fromPacs.body.equals(fromFolder.body)).toBe(false);
  });

  it('is a 502 naming the refusal when the PACS wants credentials that are not given', async () => {
    const bare = start({ dataDir: join(tmp.path, 'empty'), dicomwebUrl: orthanc.dicomweb });
    const res = await get(bare, `/metadata?series=${PLAIN}`);
    expect(res.status).toBe(502);
    expect(res.json()).toEqual({ result: 'ng', message: expect.stringMatching(/refused GET \/series \(401\).*dicomwebHeaders/) });
  });
});

/** A local HTTP server answering with `handle`; its sockets are destroyed when it is closed. */
async function tinyServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: HttpServer = createHttpServer(handle);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/dicom-web`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** QIDO-RS answers for one series of two instances, as a well-behaved PACS gives them. */
function qido(req: IncomingMessage, res: ServerResponse, uid: string): boolean {
  const url = req.url ?? '';
  const json = (body: unknown): void => {
    res.writeHead(200, { 'Content-Type': 'application/dicom+json' });
    res.end(JSON.stringify(body));
  };
  if (url.startsWith('/dicom-web/series?')) {
    json([{ '0020000D': { vr: 'UI', Value: [`${uid}.0`] }, '0020000E': { vr: 'UI', Value: [uid] } }]);
    return true;
  }
  if (/\/instances\?/.test(url)) {
    json([1, 2].map((n) => ({ '00080018': { vr: 'UI', Value: [`${uid}.${n}`] }, '00200013': { vr: 'IS', Value: [n] } })));
    return true;
  }
  return false;
}

suite('a PACS that misbehaves', () => {
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of closers) await close();
  });
  const misbehaving = async (handle: (req: IncomingMessage, res: ServerResponse) => void, flags: Record<string, unknown> = {}): Promise<Server> => {
    const pacs = await tinyServer(handle);
    closers.push(pacs.close);
    return start({ dataDir: join(tmp.path, 'empty'), dicomwebUrl: pacs.url, dicomwebTimeoutMs: 800, ...flags });
  };

  it('is a 502 when QIDO-RS answers something that is not DICOM JSON', async () => {
    const server = await misbehaving((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html><body>Welcome to nginx!</body></html>');
    });
    const res = await get(server, `/metadata?series=${PLAIN}`);
    expect(res.status).toBe(502);
    expect(res.json().message).toMatch(
      /^DICOMweb PACS http:\/\/127\.0\.0\.1:\d+\/dicom-web answered GET \/series with something that is not DICOM JSON: "<html>/,
    );
    const current = await get(server, `/series/${PLAIN}/metadata`);
    expect(current.status).toBe(502);
    expect(current.json().status).toBe('ng');
  });

  it('is a 502 when WADO-RS answers garbage, and when it answers another instance', async () => {
    const junk = await misbehaving((req, res) => {
      if (qido(req, res, PLAIN)) return;
      res.writeHead(200, { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=b0' });
      res.end('this is not a multipart body');
    });
    const a = await get(junk, `/metadata?series=${PLAIN}`);
    expect(a.status).toBe(502);
    expect(a.json().message).toMatch(/answered GET \/studies\/[\d.]+\/series\/[\d.]+ with a malformed body: the body has no delimiter --b0/);

    const other = readFileSync(files.get(RLE)![0]);
    const wrong = await misbehaving((req, res) => {
      if (qido(req, res, PLAIN)) return;
      res.writeHead(200, { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=b1' });
      res.end(Buffer.concat([Buffer.from('--b1\r\nContent-Type: application/dicom\r\n\r\n'), other, Buffer.from('\r\n--b1--\r\n')]));
    });
    const b = await get(wrong, `/metadata?series=${PLAIN}`);
    expect(b.status).toBe(502);
    expect(b.json().message).toMatch(/an instance that is not the one asked for: its SOPInstanceUID is /);
  });

  it('is a 504 within the timeout when the PACS never answers', async () => {
    const server = await misbehaving(() => {}); // accepts, reads, never answers
    const t0 = performance.now();
    const res = await get(server, `/metadata?series=${PLAIN}`);
    const ms = performance.now() - t0;
    expect(res.status).toBe(504);
    expect(res.json().message).toMatch(/did not answer GET \/series within 800 ms \(dicomwebTimeoutMs\)/);
    expect(ms).toBeGreaterThanOrEqual(750);
    expect(ms).toBeLessThan(5000);
  });

  it('is a 504 when a retrieval stops halfway through its body', async () => {
    const server = await misbehaving((req, res) => {
      if (qido(req, res, PLAIN)) return;
      res.writeHead(200, { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=b2' });
      res.write('--b2\r\nContent-Type: application/dicom\r\n\r\n');
      res.write(Buffer.alloc(1000)); // and nothing more
    });
    const t0 = performance.now();
    const res = await get(server, `/mpr?series=${PLAIN}&mode=axial`);
    expect(res.status).toBe(504);
    expect(res.json().message).toMatch(/did not answer GET \/studies\/.* within 800 ms/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('is configured from the command line: every --dicomweb-header given is sent, and a bad one refused', async () => {
    const seen: (string | string[] | undefined)[][] = [];
    const pacs = await tinyServer((req, res) => {
      seen.push([req.headers.authorization, req.headers['x-site'], req.headers.accept]);
      res.writeHead(200, { 'Content-Type': 'application/dicom+json' });
      res.end('[]');
    });
    closers.push(pacs.close);
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CIRCUS_RS_')) env[k] = v;
    const args = ['--import', 'tsx', CLI, 'serve', '--data-dir', join(tmp.path, 'empty'), '--port', '0', '--log-level', 'silent'];
    const child = spawn(
      process.execPath,
      [...args, '--dicomweb-url', pacs.url, '--dicomweb-header', 'Authorization: Bearer abc,def', '--dicomweb-header', 'X-Site: ward 7'],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let err = '';
      child.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
      });
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /at http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`the server exited with ${code}: ${err}`)));
      });
      const res = await fetch(`http://127.0.0.1:${port}/metadata?series=${UNKNOWN}`);
      expect(res.status).toBe(404);
      expect(seen).toEqual([['Bearer abc,def', 'ward 7', 'application/dicom+json, application/json']]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
    }
    // A header that is not "Name: value" stops the server at start, its value unshown.
    const bad = spawnSync(process.execPath, [...args, '--dicomweb-url', pacs.url, '--dicomweb-header', 'Bearer secret-token'], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('every entry must be an HTTP header "Name: value", got (hidden)');
    expect(bad.stderr).not.toContain('secret-token');
  });

  it('fails a load whose retrieval fails, and the next request retrieves again', async () => {
    // In front of Orthanc: the first retrieval of the series has its connection cut after its first bytes.
    let cut = 0;
    const proxy = await tinyServer((req, res) => {
      const path = (req.url ?? '').replace(/^\/dicom-web/, '');
      const upstream = httpRequest(`${orthanc.dicomweb}${path}`, { headers: { ...req.headers, host: `127.0.0.1:${orthanc.port}` } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (cut === 0 && path.endsWith(`/series/${PLAIN}`)) {
          cut++;
          up.once('data', (chunk: Buffer) => {
            res.write(chunk.subarray(0, 1000));
            setTimeout(() => req.socket.destroy(), 20);
          });
          return;
        }
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end();
    });
    closers.push(proxy.close);
    const server = start({ dataDir: join(tmp.path, 'empty'), dicomwebUrl: proxy.url, dicomwebHeaders: [authorization()] });
    const first = await get(server, `/metadata?series=${PLAIN}`);
    expect(cut).toBe(1);
    expect(first.status).toBe(502);
    expect(first.json().message).toMatch(
      /(broke off its answer to|cannot be reached for) GET \/studies\/[\d.]+\/series\/1\.2\.826\.0\.1\.3680043\.8\.498\.71: /,
    );
    // The failed load left nothing behind: the next request loads the series again, whole.
    await expectSame(reference, server, `/metadata?series=${PLAIN}`);
    await expectSame(reference, server, `/raw?series=${PLAIN}`);
    expect(server.dicomweb!.stats()).toMatchObject({ retrieved: 24, failures: 1 });
  });
});

const dcmFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.dcm'));
const bytesIn = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

suite('the instance cache, and Orthanc stopped', () => {
  it('keeps retrieved instances on disk and reads them back, checking each', async () => {
    const dir = join(tmp.path, 'cache');
    const first = pacsServer({ instanceCacheDir: dir, instanceCacheBytes: '64M' });
    await expectSame(reference, first, `/raw?series=${PLAIN}`);
    await first.close();
    expect(dcmFiles(dir)).toHaveLength(24);
    expect(readdirSync(dir)).toContain(`${PLAIN}.series.json`);

    // A file cut short (a crash mid-write, a full disk) is refused and retrieved again.
    const victim = join(dir, dcmFiles(dir)[5]);
    const size = statSync(victim).size;
    truncateSync(victim, size - 100);
    const second = pacsServer({ instanceCacheDir: dir, instanceCacheBytes: '64M' });
    await expectSame(reference, second, `/raw?series=${PLAIN}`);
    // Some instances cached: the others are retrieved one request each (after the two searches).
    expect(second.dicomweb!.stats()).toMatchObject({ retrieved: 1, fromCache: 23, requests: 3 });
    // Read where it lies: a file that goes (evicted for other instances) under a load is retrieved instead.
    const instances = (await second.dicomweb!.find(PLAIN))!.instances;
    const before = second.dicomweb!.stats();
    expect(await instances[3].size()).toBe(statSync(join(dir, `${instances[3].name}.dcm`)).size);
    rmSync(join(dir, `${instances[3].name}.dcm`));
    expect(readFileSync(files.get(PLAIN)!.find((f) => readFileSync(f).includes(instances[3].name))!).equals(await instances[3].bytes())).toBe(true);
    expect(second.dicomweb!.stats().retrieved - before.retrieved).toBe(1);
    await second.close();
    expect(statSync(victim).size).toBe(size);

    // Compressed instances: whole when they end with their pixel data's delimiter, refused when cut short.
    const rle = pacsServer({ instanceCacheDir: dir, instanceCacheBytes: '64M' });
    await expectSame(reference, rle, `/raw?series=${RLE}`);
    await rle.close();
    const cut = readdirSync(dir).find((f) => f.startsWith(`${RLE}.`) && f.endsWith('.dcm'))!;
    truncateSync(join(dir, cut), statSync(join(dir, cut)).size - 4);
    const again = pacsServer({ instanceCacheDir: dir, instanceCacheBytes: '64M' });
    await expectSame(reference, again, `/raw?series=${RLE}`);
    expect(again.dicomweb!.stats()).toMatchObject({ retrieved: 1, fromCache: 15 });
    expect(again.dicomweb!.cacheStats()).toMatchObject({ rejected: 1 });
    await again.close();
  });

  it('keeps the cache under its byte bound, evicting the least recently used', async () => {
    const dir = join(tmp.path, 'small-cache');
    const one = statSync(files.get(LARGE)![0]).size;
    const bound = 1024 * 1024; // about 8 of the 300 instances
    const server = pacsServer({ instanceCacheDir: dir, instanceCacheBytes: bound });
    await expectSame(reference, server, `/metadata?series=${LARGE}`);
    await server.close();
    // Full up to the last instance that fits, the series' list kept with the instances most recently read.
    expect(bytesIn(dir)).toBeLessThanOrEqual(bound);
    expect(bytesIn(dir)).toBeGreaterThan(bound - 2 * one);
    expect(readdirSync(dir)).toContain(`${LARGE}.series.json`);
    const held = dcmFiles(dir).length;
    expect(server.dicomweb!.cacheStats()).toMatchObject({ files: held + 1, bytes: bytesIn(dir), evicted: 300 - held });
    // Opened with a smaller bound, it evicts at once, the least recently used first; stray files are not its business.
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    const used = new Map(readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs]));
    const smaller = await InstanceCache.open(dir, one * 3);
    expect(smaller.stats().bytes).toBeLessThanOrEqual(one * 3);
    expect(bytesIn(dir) - 'kept'.length).toBe(smaller.stats().bytes);
    const kept = readdirSync(dir).filter((f) => f !== 'notes.txt');
    const gone = [...used.keys()].filter((f) => f !== 'notes.txt' && !kept.includes(f));
    expect(kept.length).toBeGreaterThan(0);
    expect(gone.length).toBeGreaterThan(0);
    expect(Math.min(...kept.map((f) => used.get(f)!))).toBeGreaterThanOrEqual(Math.max(...gone.map((f) => used.get(f)!)));
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('kept');
  });

  it('is a 502 or 504 when Orthanc is stopped mid-load, and the server goes on serving other series', async () => {
    const server = pacsServer({ dataDir: join(tmp.path, 'local'), dicomwebTimeoutMs: 5000 });
    const loading = get(server, `/metadata?series=${LARGE}`);
    const deadline = Date.now() + 30_000;
    while (server.dicomweb!.stats().retrieved < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    await orthanc.stop('SIGKILL');
    const at = server.dicomweb!.stats().retrieved;
    expect(at).toBeLessThan(300);
    const res = await loading;
    expect([502, 504]).toContain(res.status);
    expect(res.json().message).toMatch(/^DICOMweb PACS http:\/\/127\.0\.0\.1:\d+\/dicom-web (cannot be reached|did not answer|broke off)/);
    // The folder's series is served; the PACS's fails fast, and is tried again each time.
    await expectSame(reference, server, `/raw?series=${BOTH}`);
    const again = await get(server, `/metadata?series=${LARGE}`);
    expect(again.status).toBe(502);
    const ready = await get(server, '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.json().reason).toMatch(/^DICOMweb PACS http:\/\/127\.0\.0\.1:\d+\/dicom-web cannot be reached for GET \/series/);
    expect(again.json().message).toMatch(/cannot be reached for GET \/series: .*ECONNREFUSED|cannot be reached/);
  });

  it('serves a series whose instances are all in the cache while the PACS is down', async () => {
    expect(orthanc.running).toBe(false);
    const server = pacsServer({ instanceCacheDir: join(tmp.path, 'cache'), instanceCacheBytes: '64M' });
    await expectSame(reference, server, `/raw?series=${PLAIN}`);
    await expectSame(reference, server, `/mpr?series=${PLAIN}&mode=coronal`);
    expect(server.dicomweb!.stats()).toMatchObject({ retrieved: 0, fromCache: 24 });
    // A series that is not in the cache is still a 502.
    expect((await get(server, `/metadata?series=${BOTH}`)).status).toBe(502);
    rmSync(join(tmp.path, 'cache'), { recursive: true, force: true });
  });
});
