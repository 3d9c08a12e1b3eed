/**
 * Load test: viewers scrolling through several series at once, with a cache budget smaller
 * than the data, for a bounded time.
 *
 *   npm run bench:loadtest -- [--viewers 16] [--seconds 30] [--budget 96M]
 *
 * The server runs in a child process exactly as `circus-rs serve` runs (its peak RSS is read
 * from /proc); the viewers run here on keep-alive connections. Each viewer opens a series
 * (/metadata), scrolls axial slices one by one, now and then takes a coronal or sagittal MPR or
 * an oblique, and rarely downloads the whole volume (/raw). Printed: requests/s, latency
 * percentiles per action, errors (any status but 200), cache evictions and the server's peak RSS
 * against the budget.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'node:http';
import { imageElements, writeDicom } from '../src/dicom/writer.js';
import type { CacheStats } from '../src/services/budgetCache.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const VIEWERS = Number(arg('viewers', '16'));
const SECONDS = Number(arg('seconds', '30'));
const BUDGET = arg('budget', '96M');
const ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/loadtest');
const NX = 256;
const NY = 256;
const NZ = 200;
const SERIES = [1, 2, 3, 4, 5].map((i) => `1.2.826.0.1.3680043.10.1453.500.${i}`);

function ensureData(): void {
  for (const [s, uid] of SERIES.entries()) {
    const dir = join(ROOT, uid);
    if (existsSync(dir) && readdirSync(dir).length === NZ) continue;
    mkdirSync(dir, { recursive: true });
    for (let k = 0; k < NZ; k++) {
      const pixels = new Uint16Array(NX * NY);
      for (let y = 0; y < NY; y++)
        for (let x = 0; x < NX; x++) {
          const r = Math.hypot(x - 128, y - 128);
          pixels[x + NX * y] = r < 100 + s * 5 ? 1064 + ((x * 7 + y * 5 + k * 3) % 60) : r < 110 + s * 5 ? 2200 : 24;
        }
      const elements = imageElements({
        rows: NY,
        columns: NX,
        bitsAllocated: 16,
        bitsStored: 12,
        signed: false,
        pixels,
        seriesInstanceUid: uid,
        sopInstanceUid: `${uid}.${k + 1}`,
        instanceNumber: k + 1,
        imagePositionPatient: [-128, -128, -k],
        imageOrientationPatient: [1, 0, 0, 0, 1, 0],
        pixelSpacing: [1, 1],
        rescaleIntercept: -1024,
        rescaleSlope: 1,
      });
      writeFileSync(join(dir, `${k}.dcm`), writeDicom(elements));
    }
  }
}

interface Result {
  action: string;
  ms: number;
  status: number;
}

function get(agent: Agent, port: number, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function viewer(id: number, port: number, until: number, results: Result[]): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let r = id * 7919 + 1;
  const rand = (): number => {
    r = (r * 1103515245 + 12345) & 0x7fffffff;
    return r / 0x7fffffff;
  };
  const time = async (action: string, path: string): Promise<void> => {
    const t0 = performance.now();
    let status = 0;
    try {
      status = (await get(agent, port, path)).status;
    } catch {
      status = -1;
    }
    results.push({ action, ms: performance.now() - t0, status });
  };
  while (Date.now() < until) {
    const uid = SERIES[Math.floor(rand() * SERIES.length)];
    await time('metadata', `/metadata?series=${uid}`);
    let z = Math.floor(rand() * NZ);
    for (let step = 0; step < 40 && Date.now() < until; step++) {
      z = (z + 1) % NZ;
      const roll = rand();
      if (roll < 0.75) await time('mpr axial', `/mpr?series=${uid}&mode=axial&target=${z}&ww=400&wl=40`);
      else if (roll < 0.85) await time('mpr coronal', `/mpr?series=${uid}&mode=coronal&target=${z % NY}`);
      else if (roll < 0.995) await time('oblique', `/oblique?series=${uid}&a=${(rand() * 3).toFixed(3)}&b=axial&c=128,128,${z}`);
      else await time('raw', `/raw?series=${uid}`);
    }
  }
  agent.destroy();
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function main(): Promise<void> {
  ensureData();
  const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'serve', '--data-dir', ROOT, '--port', '0', '--cache-bytes', BUDGET, '--log-level', 'warn'],
    {
      env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((ok, fail) => {
    let out = '';
    server.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /at http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) ok(Number(m[1]));
    });
    server.on('exit', (code) => fail(new Error(`server exited with ${code}`)));
  });
  const results: Result[] = [];
  const started = Date.now();
  const until = started + SECONDS * 1000;
  let peakRss = 0;
  const rssTimer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
      if (m) peakRss = Number(m[1]) * 1024;
    } catch {
      /* the server ended */
    }
  }, 200);
  await Promise.all(Array.from({ length: VIEWERS }, (_, i) => viewer(i, port, until, results)));
  const elapsed = (Date.now() - started) / 1000;
  const agent = new Agent();
  const status = await new Promise<{ cache: CacheStats }>((ok) => {
    request({ host: '127.0.0.1', port, path: '/status', agent }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => ok(JSON.parse(body)));
    }).end();
  });
  clearInterval(rssTimer);
  server.kill('SIGTERM');

  const budget = status.cache.budgetBytes;
  console.log(
    `load test: ${VIEWERS} viewers, ${SECONDS} s, ${SERIES.length} series of ${NX}x${NY}x${NZ} Int16 (${((SERIES.length * NX * NY * NZ * 2) / 1e6).toFixed(0)} MB of voxels), cache budget ${(budget / 1e6).toFixed(0)} MB`,
  );
  console.log(`  requests ${results.length} in ${elapsed.toFixed(1)} s = ${(results.length / elapsed).toFixed(0)} requests/s`);
  for (const action of [...new Set(results.map((r) => r.action))].sort()) {
    const ms = results
      .filter((r) => r.action === action)
      .map((r) => r.ms)
      .sort((a, b) => a - b);
    console.log(
      `  ${action.padEnd(12)} n=${String(ms.length).padStart(6)}  p50 ${percentile(ms, 0.5).toFixed(1)} ms  p99 ${percentile(ms, 0.99).toFixed(1)} ms  max ${ms[ms.length - 1].toFixed(0)} ms`,
    );
  }
  const errors = results.filter((r) => r.status !== 200);
  const byStatus: Record<number, number> = {};
  for (const e of errors) byStatus[e.status] = (byStatus[e.status] ?? 0) + 1;
  console.log(`  errors ${errors.length} ${JSON.stringify(byStatus)}`);
  console.log(
    `  cache: evictions ${status.cache.evictions}, misses ${status.cache.misses}, hits ${status.cache.hits}, used ${(status.cache.usedBytes / 1e6).toFixed(0)} MB`,
  );
  console.log(
    `  server peak RSS ${(peakRss / 1e6).toFixed(0)} MB = budget ${(budget / 1e6).toFixed(0)} MB + ${((peakRss - budget) / 1e6).toFixed(0)} MB`,
  );
}

await main();
