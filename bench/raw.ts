/**
 * The speed of /raw on realistic noisy CT, per gzip strategy, and the server's peak memory.
 *
 *   npm run bench:raw        (writes the phantom series under .bench-data/raw/ once, then measures)
 *
 * The series is bench/phantom.ts's 512 x 512 x 300 CT (signed Int16, correlated noise in every
 * tissue), stored uncompressed. For each zlib strategy (`--gzip-strategy`; `default` is the
 * baseline, measured in the same run), the built server (`node dist/cli.js serve`, as
 * `npm start` runs it; the script builds it first) is started in a process of its own, the
 * volume is loaded (not timed), and a child process downloads /raw (combined), timing it from
 * the request to the last byte: the first request, compressed on the libuv thread pool while
 * it is sent (rendered, no cache). A server is run first without being counted (the first
 * server process of a run measured about 15% slower than the others, whatever its strategy),
 * then ROUNDS rounds of a fresh server per strategy, interleaved; medians (and ranges) printed.
 * Printed: MB/s of voxels (157 MB), the ratio to the baseline's median, bytes sent against
 * voxels, and the server's CPU time per wall second during the request. In the first round the
 * same server then sends /raw twice more from the cache's volume stream region (cached), renders
 * 40 sagittal images (each its own window), and its peak RSS (VmHWM) is compared with the
 * cache's bytes in use + 250 MB. Figures only.
 */
import { fork, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inWorker } from './common.js';
import { NX, NY, NZ, PHANTOM_ROOT, PHANTOM_UID, writePhantomSeries } from './phantom.js';

const ROOT = PHANTOM_ROOT;
const UID = PHANTOM_UID;
const STRATEGIES = ['default', 'huffman', 'rle', 'filtered'] as const;

// Written in a child process, so that the phantom's slices never count in this one's memory.
if (process.argv[2] === '--write') {
  writePhantomSeries(join(ROOT, UID), UID, 'raw benchmark phantom');
  process.exit(0);
}

if (!(existsSync(join(ROOT, UID)) && readdirSync(join(ROOT, UID)).length === NZ)) {
  console.log(`writing the phantom series under ${ROOT} (once; later runs reuse it)`);
  await new Promise<void>((done, fail) =>
    fork(fileURLToPath(import.meta.url), ['--write'], { execArgv: process.execArgv, stdio: 'inherit' }).on('exit', (code) =>
      code === 0 ? done() : fail(new Error(`writing the series failed (${code})`)),
    ),
  );
}

const voxelBytes = NX * NY * NZ * 2;
const voxelMB = voxelBytes / 1e6;
const CLI = resolve(fileURLToPath(import.meta.url), '../../dist/cli.js');

/** The built server on a free loopback port, in a process of its own. */
async function startCli(flags: string[]): Promise<{ base: string; pid: number; stop: () => void }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--cache-bytes', '4G', '--log-format', 'json', ...flags], {
    env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((done, fail) => {
    let text = '';
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
      const m = /127\.0\.0\.1:(\d+)/.exec(text);
      if (m) done(Number(m[1]));
    });
    child.on('exit', (code) => fail(new Error(`the server exited (${code}): ${text.slice(0, 500)}`)));
  });
  child.stdout.resume();
  return { base: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill() };
}

/** A figure of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
const procBytes = (pid: number, key: string): number =>
  Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const cpuSeconds = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

const ROUNDS = 3;

/** One timed /raw download from `server`, with the server's CPU per wall second meanwhile. */
async function download(server: { base: string; pid: number }): Promise<{ ms: number; bytes: number; cores: number }> {
  const cpu0 = cpuSeconds(server.pid);
  const d = await inWorker({ kind: 'download', url: `${server.base}/raw?series=${UID}` });
  const cpu = cpuSeconds(server.pid) - cpu0;
  if (d.status !== 200 || d.inflatedBytes === null) throw new Error(`/raw: status ${d.status}`);
  return { ms: d.ms, bytes: d.bytes, cores: cpu / (d.ms / 1000) };
}

/** A fresh server with `strategy`, its volume loaded; `then` runs before it is stopped. */
async function withServer<T>(strategy: string, then: (server: { base: string; pid: number }) => Promise<T>): Promise<T> {
  const server = await startCli(['--data-dir', ROOT, '--gzip-strategy', strategy]);
  try {
    const meta = await fetch(`${server.base}/metadata?series=${UID}`);
    if (meta.status !== 200) throw new Error(`/metadata: ${meta.status} ${await meta.text()}`);
    return await then(server);
  } finally {
    server.stop();
  }
}

console.log(
  `/raw?series=...&format=combined of ${NX}x${NY}x${NZ} noisy CT (${voxelMB.toFixed(0)} MB of voxels), gzip level 1, whole body read by a child process:`,
);
const warm = await withServer('default', download);
console.log(`  warm-up server (default, not counted): ${warm.ms.toFixed(0)} ms, ${(voxelMB / (warm.ms / 1000)).toFixed(0)} MB/s of voxels`);
const firsts = new Map<string, { ms: number; bytes: number; cores: number }[]>(STRATEGIES.map((st) => [st, []]));
const extras = new Map<string, string[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const strategy of STRATEGIES) {
    await withServer(strategy, async (server) => {
      firsts.get(strategy)!.push(await download(server));
      if (round > 0) return;
      const lines: string[] = [];
      for (const label of ['repeated (cached)', 'repeated again (cached)']) {
        const d = await download(server);
        lines.push(
          `  ${strategy.padEnd(9)} ${label.padEnd(30)} ${d.ms.toFixed(0).padStart(6)} ms ${(voxelMB / (d.ms / 1000)).toFixed(0).padStart(6)} MB/s of voxels` +
            `  sent ${(d.bytes / 1e6).toFixed(1)} MB`,
        );
      }
      for (let i = 0; i < 40; i++) {
        const r = await fetch(`${server.base}/mpr?series=${UID}&mode=sagittal&target=${i * 12}&ww=${300 + i}&wl=40`);
        if (r.status !== 200) throw new Error(`/mpr: ${r.status}`);
        await r.arrayBuffer();
      }
      const status = (await (await fetch(`${server.base}/status`)).json()) as { cache: { usedBytes: number } };
      const peak = procBytes(server.pid, 'VmHWM');
      const used = status.cache.usedBytes;
      lines.push(
        `  ${''.padEnd(9)} server peak RSS ${(peak / 1e6).toFixed(0)} MB against cache in use ${(used / 1e6).toFixed(0)} MB + 250 MB = ` +
          `${((used + 250e6) / 1e6).toFixed(0)} MB: ${peak <= used + 250e6 ? 'within' : 'OVER'} (${((peak - used) / 1e6).toFixed(0)} MB besides the cache)`,
      );
      extras.set(strategy, lines);
    });
  }
}
const medianOf = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const baseline = voxelMB / (medianOf(firsts.get('default')!.map((d) => d.ms)) / 1000);
for (const strategy of STRATEGIES) {
  const runs = firsts.get(strategy)!;
  const ms = medianOf(runs.map((d) => d.ms));
  const rate = voxelMB / (ms / 1000);
  const bytes = runs[0].bytes;
  console.log(
    `  ${strategy.padEnd(9)} ${'first (compressed while sent)'.padEnd(30)} ${ms.toFixed(0).padStart(6)} ms ${rate.toFixed(0).padStart(6)} MB/s of voxels` +
      `  ${(rate / baseline).toFixed(2)}x default  (${ROUNDS} servers: ${runs.map((d) => d.ms.toFixed(0)).join(', ')} ms)` +
      `  sent ${(bytes / 1e6).toFixed(1)} MB (${((100 * bytes) / voxelBytes).toFixed(1)}% of the voxels)` +
      `  server CPU ${medianOf(runs.map((d) => d.cores)).toFixed(2)} cores`,
  );
  for (const line of extras.get(strategy) ?? []) console.log(line);
}
