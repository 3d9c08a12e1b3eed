/**
 * What bench/http.ts and bench/orthanc.ts share:
 * - the signed 512 x 512 x 300 Int16 series that bench/load.ts writes under .bench-data/load
 *   (the same UID, files and voxels, written here when bench:load has not run yet);
 * - the server, started in this process exactly as the CLI composes it;
 * - load generation with autocannon in a child process (bench/loadWorker.ts), so that the
 *   load generator does not share the server's event loop, and whole-body downloads timed there
 *   too.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { imageElements, writeDicom } from '../src/dicom/writer.js';
import { createServer, type Server, type ServerOptions } from '../src/server.js';

export const NX = 512;
export const NY = 512;
export const NZ = 300;
export const LOAD_ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/load');
/** bench/load.ts's "signed" variant. */
export const SERIES_UID = '1.2.826.0.1.3680043.10.1453.300.1';

/** The file of slice k (z = k: InstanceNumber k + 1 increases with z) in the series folder. */
export const sliceFileName = (k: number): string => `CT${String(k).padStart(4, '0')}.dcm`;

/** Writes the signed series bench/load.ts measures, unless its 300 files are there; returns its folder. */
export const ensureSeries = (): string => ensureLoadSeries(SERIES_UID, true, 0);

/**
 * A 512 x 512 x 300 series under .bench-data/load: a body disc of soft tissue in air, stored
 * signed, or unsigned with `intercept` (-1024 gives Int16 HU); written once, then reused.
 */
export function ensureLoadSeries(uid: string, signed: boolean, intercept: number): string {
  const dir = join(LOAD_ROOT, uid);
  if (existsSync(dir) && readdirSync(dir).length === NZ) return dir;
  mkdirSync(dir, { recursive: true });
  for (let k = 0; k < NZ; k++) {
    const pixels = signed ? new Int16Array(NX * NY) : new Uint16Array(NX * NY);
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        const r = Math.hypot(x - 256, y - 256);
        pixels[x + y * NX] = (r < 200 ? 40 + ((x * 7 + y * 13 + k * 3) % 50) : -1000) - intercept;
      }
    }
    const elements = imageElements({
      rows: NY,
      columns: NX,
      bitsAllocated: 16,
      signed,
      pixels,
      seriesInstanceUid: uid,
      sopInstanceUid: `${uid}.${k + 1}`,
      instanceNumber: k + 1,
      imagePositionPatient: [-200, -200, -k * 0.625],
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
      pixelSpacing: [0.78125, 0.78125],
      sliceThickness: 0.625,
      rescaleIntercept: intercept,
      rescaleSlope: 1,
      windowCenter: 40,
      windowWidth: 400,
    });
    writeFileSync(join(dir, sliceFileName(k)), writeDicom(elements));
  }
  return dir;
}

/**
 * Starts the server on a free loopback port, as `circus-rs serve` would with these options
 * (`options` may replace parts of it, such as the renderer, for comparisons).
 */
export async function startServer(
  dataDir: string,
  options: ServerOptions = {},
  flags: Record<string, unknown> = {},
): Promise<{ server: Server; base: string }> {
  const config = loadConfig({ flags: { dataDir, cacheBytes: '4G', logLevel: 'silent', ...flags }, env: {} });
  const server = createServer(config, { useIndex: false, warmWorkers: true, ...options });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.app.server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}` };
}

/** What the worker is asked to do. */
export type WorkerTask =
  | {
      kind: 'autocannon';
      base: string;
      /** Paths cycled through, one per request (all connections share one counter). */
      paths: string[];
      connections: number;
      seconds: number;
      headers?: Record<string, string>;
    }
  | { kind: 'download'; url: string; headers?: Record<string, string> };

export interface LoadSummary {
  requestsPerSecond: number;
  total: number;
  latencyP50: number;
  latencyP99: number;
  latencyMax: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  bytesPerSecond: number;
  seconds: number;
}

export interface DownloadSummary {
  status: number;
  ms: number;
  bytes: number;
  contentEncoding: string | null;
  /** Bytes after gunzip (measured after the timing), when the body was gzip. */
  inflatedBytes: number | null;
}

/** Runs one task in a fresh child process (node with this process's loader flags, i.e. tsx). */
export function inWorker(task: WorkerTask & { kind: 'autocannon' }): Promise<LoadSummary>;
export function inWorker(task: WorkerTask & { kind: 'download' }): Promise<DownloadSummary>;
export function inWorker(task: WorkerTask): Promise<LoadSummary | DownloadSummary> {
  const worker = resolve(fileURLToPath(import.meta.url), '../loadWorker.ts');
  return new Promise((resolvePromise, reject) => {
    const child = fork(worker, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let answer: LoadSummary | DownloadSummary | null = null;
    child.on('message', (m) => {
      answer = m as LoadSummary | DownloadSummary;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (answer && code === 0) resolvePromise(answer);
      else reject(new Error(`load worker exited with code ${code} without an answer`));
    });
    child.send(task);
  });
}

/** One line of an autocannon run. */
export function loadLine(label: string, r: LoadSummary): string {
  return (
    `  ${label.padEnd(40)} ${r.requestsPerSecond.toFixed(0).padStart(6)} req/s` +
    `   p50 ${r.latencyP50.toFixed(1).padStart(6)} ms   p99 ${r.latencyP99.toFixed(1).padStart(6)} ms` +
    `   ${(r.bytesPerSecond / r.requestsPerSecond / 1024).toFixed(1).padStart(6)} KiB/response` +
    `   errors ${r.errors}   non-2xx ${r.non2xx}   (${r.total} requests in ${r.seconds.toFixed(1)} s)`
  );
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * This process's peak resident memory so far against what it may hold: the cache's bytes in use
 * at its fullest (volumes, volume streams, rendered images; `cacheBytes`) plus 250 MB.
 */
export function peakMemoryLine(cacheBytes: number): string {
  const peak = process.resourceUsage().maxRSS * 1024;
  const allowed = cacheBytes + 250e6;
  return (
    `peak RSS ${(peak / 1e6).toFixed(0)} MB against cache in use ${(cacheBytes / 1e6).toFixed(0)} MB + 250 MB = ${(allowed / 1e6).toFixed(0)} MB` +
    ` (${peak <= allowed ? 'within' : 'OVER'}; ${((peak - cacheBytes) / 1e6).toFixed(0)} MB besides the cache)`
  );
}
