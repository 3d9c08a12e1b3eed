/**
 * Requests per second and latency of the image actions, and the speed of /raw, over real HTTP.
 *
 *   npm run bench:http            (writes the series under .bench-data/ once, then measures)
 *
 * The server runs in this process as `circus-rs serve` composes it (createServer, listen on a
 * free loopback port, cacheBytes 4G, huge pages as `npm start` sets them), on the signed
 * 512 x 512 x 300 Int16 series of bench/load.ts. After the volume is loaded and each route has
 * been warmed, autocannon runs in a child process (so the load generator does not share the
 * server's event loop; on this 2-core machine it does share the cores) with 16 connections for
 * 10 s against:
 *   - /mpr axial and sagittal, /oblique a≈0.5 b=axial and b=coronal, rendered every time (each
 *     request its own window level or angle, so the server's cache of rendered images never
 *     answers), on the pool of rendering workers, then again on a second server that renders on
 *     its event loop (the baseline, same process, same run), with the ratio of the two and the
 *     ratio of each plane to axial;
 *   - /mpr axial, ww=400 wl=40, target cycling over all 300 slices (after the first pass from
 *     the cache of rendered images, as when a viewer scrolls back);
 *   - /mpr sagittal, the same window, target cycling over all 512 planes (likewise);
 *   - /oblique a=0.5 b=axial, cursor at the centre, one image asked again and again;
 * and prints requests/s, latency p50/p99, mean response size, errors and non-2xx, and the
 * server's event-loop utilisation and CPU time per wall second (1.0 = one core) during the run.
 * Then /raw (the combined stream, gzip level 1 by default): the first request, compressed while
 * sent, and a repeated one, sent from the cache, each timed in the child process from the
 * request to the last byte, as MB/s of voxels; the longest event-loop stall of the server during
 * the first is printed too. Figures only; nothing is asserted.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { inProcessRenderer } from '../src/services/renderPool.js';
import { ensureSeries, inWorker, LOAD_ROOT, loadLine, NX, NY, NZ, SERIES_UID, startServer, type LoadSummary } from './common.js';

const CONNECTIONS = 16;
const SECONDS = 10;
const WINDOW = 'ww=400&wl=40';
const series = SERIES_UID;

const dir = ensureSeries();
execFileSync('sh', ['-c', 'cat "$0"/* > /dev/null', dir]); // page cache warm, from another process

const { server, base } = await startServer(LOAD_ROOT);
try {
  const thp = /hugetlb=1/.test(process.env.GLIBC_TUNABLES ?? '') ? 'huge pages' : 'default malloc';
  console.log(`circus-rs at ${base} (${thp}), series ${NX}x${NY}x${NZ} Int16, ${CONNECTIONS} connections, ${SECONDS} s per run`);
  console.log(`  load average before the runs ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores`);

  const t0 = performance.now();
  const meta = await fetch(`${base}/metadata?series=${series}`);
  if (meta.status !== 200) throw new Error(`/metadata: ${meta.status} ${await meta.text()}`);
  await meta.arrayBuffer();
  console.log(`  cold /metadata (loads the volume)          ${(performance.now() - t0).toFixed(0)} ms`);

  // Every run's path list; a slice order that jumps around so consecutive requests do not share cache lines.
  const stepped = (n: number, step: number): number[] => Array.from({ length: n }, (_, i) => (i * step) % n);
  const cursor = [(NX - 1) / 2, (NY - 1) / 2, (NZ - 1) / 2].join(',');
  // Rendered images are cached: runs that must render every time give each request its own
  // window level (or angle), so no two requests share an image.
  const fresh = 30000;
  const rendered: { label: string; paths: string[] }[] = [
    {
      label: '/mpr axial, rendered every time',
      paths: Array.from({ length: fresh }, (_, i) => `/mpr?series=${series}&mode=axial&target=${(i * 97) % NZ}&ww=400&wl=${40 + i / 1000}`),
    },
    {
      label: '/mpr sagittal, rendered every time',
      paths: Array.from({ length: fresh }, (_, i) => `/mpr?series=${series}&mode=sagittal&target=${(i * 97) % NX}&ww=400&wl=${40 + i / 1000}`),
    },
    {
      label: '/oblique a≈0.5 b=axial, rendered every time',
      paths: Array.from({ length: fresh }, (_, i) => `/oblique?series=${series}&a=${0.5 + i / 1e6}&b=axial&c=${cursor}&${WINDOW}`),
    },
    {
      label: '/oblique a≈0.5 b=coronal, rendered',
      paths: Array.from({ length: fresh }, (_, i) => `/oblique?series=${series}&a=${0.5 + i / 1e6}&b=coronal&c=${cursor}&${WINDOW}`),
    },
  ];
  const runs: { label: string; paths: string[] }[] = [
    ...rendered,
    {
      label: '/mpr axial, 300 slices revisited (cache)',
      paths: stepped(NZ, 97).map((t) => `/mpr?series=${series}&mode=axial&target=${t}&${WINDOW}`),
    },
    {
      label: '/mpr sagittal, 512 planes revisited (cache)',
      paths: stepped(NX, 97).map((t) => `/mpr?series=${series}&mode=sagittal&target=${t}&${WINDOW}`),
    },
    { label: '/oblique a=0.5 b=axial, one image (cache)', paths: [`/oblique?series=${series}&a=0.5&b=axial&c=${cursor}&${WINDOW}`] },
  ];

  // Warm-up: every route answers 200 with a PNG, and the JIT has seen each path.
  for (const run of runs) {
    for (let i = 0; i < 40; i++) {
      const res = await fetch(base + run.paths[i % run.paths.length]);
      const body = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200 || res.headers.get('content-type') !== 'image/png' || body[1] !== 0x50) {
        throw new Error(`warm-up ${run.paths[0]}: ${res.status} ${new TextDecoder().decode(body.subarray(0, 200))}`);
      }
    }
  }
  await inWorker({ kind: 'autocannon', base, paths: runs[0].paths, connections: CONNECTIONS, seconds: 3 });

  console.log('autocannon, images rendered on the pool of rendering workers:');
  const pooled = new Map<string, number>();
  for (const run of runs) pooled.set(run.label, (await measure(base, run)).requestsPerSecond);

  // The baseline: the same requests to a server that renders on its event loop.
  const single = await startServer(LOAD_ROOT, { renderer: inProcessRenderer });
  try {
    const m = await fetch(`${single.base}/metadata?series=${series}`);
    if (m.status !== 200) throw new Error(`/metadata (baseline server): ${m.status}`);
    await m.arrayBuffer();
    for (const run of rendered) for (let i = 0; i < 40; i++) await (await fetch(single.base + run.paths[i])).arrayBuffer();
    console.log('autocannon, baseline: images rendered on the event loop (a second server in this process):');
    const baseline = new Map<string, number>();
    for (const run of rendered) baseline.set(run.label, (await measure(single.base, run)).requestsPerSecond);
    console.log('rendered every time: pool against event loop, and each plane against axial (pool):');
    const axial = pooled.get(rendered[0].label)!;
    for (const run of rendered) {
      const p = pooled.get(run.label)!;
      console.log(
        `  ${run.label.padEnd(40)} ${p.toFixed(0).padStart(6)} req/s vs ${baseline.get(run.label)!.toFixed(0).padStart(6)} req/s = ${(p / baseline.get(run.label)!).toFixed(2)}x` +
          `   vs axial ${(p / axial).toFixed(2)}x`,
      );
    }
  } finally {
    await single.server.close();
  }

  console.log('/raw (combined, gzip, whole body read by the child process):');
  const voxelMB = (NX * NY * NZ * 2) / 1e6;
  const rawUrl = `${base}/raw?series=${series}`;
  for (const label of ['first request (compressed while sent)', 'repeated (from the cache)', 'repeated again']) {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const d = await inWorker({ kind: 'download', url: rawUrl });
    delay.disable();
    if (d.status !== 200) throw new Error(`/raw: status ${d.status}`);
    console.log(
      `  ${label.padEnd(40)} ${d.ms.toFixed(0).padStart(6)} ms  ${(voxelMB / (d.ms / 1000)).toFixed(0).padStart(5)} MB/s of voxels` +
        `   ${(d.bytes / 1e6).toFixed(1)} MB sent (${d.contentEncoding}), voxels / sent ${((NX * NY * NZ * 2) / d.bytes).toFixed(2)}` +
        `   inflates to ${d.inflatedBytes} bytes   server's longest event-loop stall ${(delay.max / 1e6).toFixed(1)} ms`,
    );
  }
  const status = (await (await fetch(`${base}/status`)).json()) as { counter: Record<string, number>; cache: Record<string, number> };
  console.log(`server counters: ${JSON.stringify(status.counter)}; cache ${(status.cache.usedBytes / 1e6).toFixed(0)} MB used`);
} finally {
  await server.close();
}

/** One autocannon run against `base`, printed with the server's event-loop and CPU use. */
async function measure(base: string, run: { label: string; paths: string[] }): Promise<LoadSummary> {
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  const r: LoadSummary = await inWorker({ kind: 'autocannon', base, paths: run.paths, connections: CONNECTIONS, seconds: SECONDS });
  const wall = (performance.now() - w0) * 1000;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  console.log(loadLine(run.label, r));
  console.log(
    `  ${''.padEnd(40)} server: event loop ${(elu.utilization * 100).toFixed(0)}% busy, CPU ${((cpu.user + cpu.system) / wall).toFixed(2)} cores (all threads)`,
  );
  return r;
}
