/**
 * WebSocket /ws/volume against GET /series/:sid/volume, on loopback.
 *
 *   npm run bench:ws
 *
 * Two 512 x 512 x 300 signed Int16 series (157 MB of voxels each): bench:load's series
 * (bench/common.ts, uncompressed), and bench/phantom.ts's torso CT stored as RLE Lossless
 * (frames made by test/fixtures/rle.ts's encoder), written under .bench-data/ once.
 *
 * For each series:
 * - warm: one server (createServer, as the CLI composes it), the volume loaded first (not timed);
 *   then, alternating, ROUNDS whole transfers over a WebSocket (BEGIN_TRANSFER to the last
 *   image) and ROUNDS downloads of GET /series/:sid/volume (no gzip), each from a child process
 *   of its own, so that the client does not share the server's event loop. MB/s of voxels
 *   (medians) and the ratio WebSocket / HTTP.
 * - cold: ROUNDS fresh servers, each first made to transfer a few images of the other series
 *   (so that its code is as warm as in a server that has been running), then one transfer of the
 *   series, not loaded: the time to the first image against the time to the last (medians, and
 *   the ratio in percent).
 * Figures only; nothing is asserted. The checks of the bytes are the tests'.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { DataDirectorySource } from '../src/sources/dataDirectory.js';
import { SeriesIndex } from '../src/sources/seriesIndex.js';
import { rleFrame } from '../test/fixtures/rle.js';
import { ensureSeries, inWorker, LOAD_ROOT, median, NX, NY, NZ, SERIES_UID } from './common.js';
import { writePhantomSeries } from './phantom.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const RLE_ROOT = resolve(THIS_FILE, '../../.bench-data/ws');
const RLE_UID = '1.2.826.0.1.3680043.10.1453.800.1';
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const ROUNDS = 3;
const VOXEL_BYTES = NX * NY * NZ * 2;
/** Images of the other series a cold server transfers first. */
const WARM_UP_IMAGES = 20;

interface TransferTask {
  url: string;
  seriesUid: string;
  /** Only the first `images` images (a partial volume), for the warm-up. */
  images?: number;
}

interface TransferSummary {
  firstMs: number;
  totalMs: number;
  images: number;
  bytes: number;
}

/** The client side, in a child process: one transfer, timed from BEGIN_TRANSFER. */
function transfer(task: TransferTask): Promise<TransferSummary> {
  return new Promise((done, fail) => {
    const ws = new WebSocket(task.url);
    const count = task.images ?? NZ;
    let t0 = 0;
    let firstMs = -1;
    const seen = new Set<number>();
    let bytes = 0;
    ws.on('error', fail);
    ws.on('open', () => {
      const descriptor = task.images ? { partialVolumeDescriptor: { start: 1, end: task.images, delta: 1 } } : {};
      const message = JSON.stringify({ messageType: 'BEGIN_TRANSFER', transferId: 'bench', seriesUid: task.seriesUid, ...descriptor });
      t0 = performance.now();
      ws.send(Buffer.from(`${message}\n`));
    });
    ws.on('message', (data: Buffer) => {
      const end = data.indexOf(0x0a);
      const header = JSON.parse(data.subarray(0, end).toString('utf8')) as { messageType: string; imageIndex: number; message?: string };
      if (header.messageType !== 'TRANSFER_IMAGE') {
        fail(new Error(`${header.messageType}: ${header.message}`));
        return;
      }
      if (firstMs < 0) firstMs = performance.now() - t0;
      seen.add(header.imageIndex);
      bytes += data.length - end - 1;
      if (seen.size === count) {
        const totalMs = performance.now() - t0;
        ws.close();
        done({ firstMs, totalMs, images: seen.size, bytes });
      }
    });
  });
}

/** One transfer by a child process of its own. */
function inClient(task: TransferTask): Promise<TransferSummary> {
  return new Promise((done, fail) => {
    const child = fork(THIS_FILE, ['--client'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let answer: TransferSummary | null = null;
    child.on('message', (m) => {
      answer = m as TransferSummary;
    });
    child.on('error', fail);
    child.on('exit', (code) => (answer && code === 0 ? done(answer) : fail(new Error(`the client exited with code ${code}`))));
    child.send(task);
  });
}

/** bench/phantom.ts's CT as RLE Lossless (literal runs), written once. */
function ensureRleSeries(): string {
  const dir = join(RLE_ROOT, RLE_UID);
  if (existsSync(dir) && readdirSync(dir).length === NZ) return RLE_ROOT;
  console.log(`writing the RLE series under ${RLE_ROOT} (once; later runs reuse it)`);
  writePhantomSeries(dir, RLE_UID, 'ws benchmark phantom, RLE Lossless', (pixels) => ({
    transferSyntax: RLE_LOSSLESS,
    encapsulated: [rleFrame(pixels)],
  }));
  return RLE_ROOT;
}

interface Subject {
  label: string;
  uid: string;
}

/**
 * A server (as the CLI composes it) on a free loopback port, serving both series; with `indexed`,
 * each folder has a header index, brought up to date before the server starts.
 */
async function start(indexed = false): Promise<{ server: Server; http: string; ws: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'circus-rs-bench-ws-'));
  const indexes = indexed ? [new SeriesIndex(LOAD_ROOT, join(dir, 'load.sqlite')), new SeriesIndex(RLE_ROOT, join(dir, 'rle.sqlite'))] : [];
  for (const index of indexes) await index.update();
  const load = new DataDirectorySource(LOAD_ROOT, indexes[0] ?? null);
  const rle = new DataDirectorySource(RLE_ROOT, indexes[1] ?? null);
  const source = { find: (uid: string) => (uid === RLE_UID ? rle.find(uid) : load.find(uid)) };
  const config = loadConfig({ flags: { dataDir: LOAD_ROOT, cacheBytes: '4G', logLevel: 'silent' }, env: {} });
  const server = createServer(config, { useIndex: false, warmWorkers: true, source });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.app.server.address() as { port: number };
  const stop = async (): Promise<void> => {
    await server.close();
    for (const index of indexes) index.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { server, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws/volume`, stop };
}

const mbps = (ms: number): number => VOXEL_BYTES / 1e6 / (ms / 1000);
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`;

async function warm(subject: Subject): Promise<void> {
  const { server, http, ws, stop } = await start();
  try {
    await server.volumes.get(subject.uid);
    // GET /series/:sid/volume is compared with when this build serves it.
    const probe = await fetch(`${http}/series/${subject.uid}/volume?start=1&end=1&delta=1`);
    await probe.arrayBuffer();
    const httpRoute = probe.status === 200;
    const wsMs: number[] = [];
    const httpMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t = await inClient({ url: ws, seriesUid: subject.uid });
      if (t.bytes !== VOXEL_BYTES) throw new Error(`the transfer sent ${t.bytes} bytes, not ${VOXEL_BYTES}`);
      wsMs.push(t.totalMs);
      if (!httpRoute) continue;
      const d = await inWorker({ kind: 'download', url: `${http}/series/${subject.uid}/volume` });
      if (d.status !== 200 || d.bytes !== VOXEL_BYTES) throw new Error(`GET /series/:sid/volume: status ${d.status}, ${d.bytes} bytes`);
      httpMs.push(d.ms);
    }
    const wsRate = mbps(median(wsMs));
    console.log(
      `  ${subject.label.padEnd(14)} warm  WebSocket ${median(wsMs).toFixed(0).padStart(5)} ms (${spread(wsMs)}) ${wsRate.toFixed(0).padStart(5)} MB/s`,
    );
    if (httpRoute) {
      const httpRate = mbps(median(httpMs));
      console.log(
        `  ${''.padEnd(14)}       HTTP      ${median(httpMs).toFixed(0).padStart(5)} ms (${spread(httpMs)}) ${httpRate.toFixed(0).padStart(5)} MB/s` +
          `   WebSocket / HTTP ${(wsRate / httpRate).toFixed(2)}`,
      );
    } else {
      console.log(`  ${''.padEnd(14)}       HTTP      GET /series/:sid/volume is not served: not compared`);
    }
  } finally {
    await stop();
  }
}

async function cold(subject: Subject, other: Subject, indexed: boolean): Promise<void> {
  const first: number[] = [];
  const total: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const { ws, stop } = await start(indexed);
    try {
      await inClient({ url: ws, seriesUid: other.uid, images: WARM_UP_IMAGES });
      const t = await inClient({ url: ws, seriesUid: subject.uid });
      if (t.bytes !== VOXEL_BYTES) throw new Error(`the transfer sent ${t.bytes} bytes, not ${VOXEL_BYTES}`);
      first.push(t.firstMs);
      total.push(t.totalMs);
    } finally {
      await stop();
    }
  }
  const ratio = (100 * median(first)) / median(total);
  console.log(
    `  ${subject.label.padEnd(14)} cold, headers ${indexed ? 'from the index' : 'from the files'}  first image ${median(first).toFixed(0).padStart(5)} ms (${spread(first)})` +
      `   whole transfer ${median(total).toFixed(0).padStart(5)} ms (${spread(total)})   first / whole ${ratio.toFixed(1)}%`,
  );
}

async function main(): Promise<void> {
  ensureSeries();
  ensureRleSeries();
  const subjects: Subject[] = [
    { label: 'uncompressed', uid: SERIES_UID },
    { label: 'RLE Lossless', uid: RLE_UID },
  ];
  console.log(
    `/ws/volume against GET /series/:sid/volume, ${NX}x${NY}x${NZ} Int16 (${(VOXEL_BYTES / 1e6).toFixed(0)} MB of voxels), loopback, ` +
      `clients in child processes, medians of ${ROUNDS} rounds (range):`,
  );
  for (const s of subjects) await warm(s);
  for (const indexed of [false, true]) for (const [i, s] of subjects.entries()) await cold(s, subjects[1 - i], indexed);
}

if (process.argv[2] === '--client') {
  process.once('message', (task: TransferTask) => {
    transfer(task).then(
      (summary) => process.send!(summary, () => process.exit(0)),
      (err: unknown) => {
        console.error('ws client:', err);
        process.exit(1);
      },
    );
  });
} else {
  await main();
}
