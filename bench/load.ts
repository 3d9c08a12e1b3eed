/**
 * Cold and cached load of a 512 x 512 x 300 Int16 series through /metadata.
 *
 *   npm run bench:load            (writes the series under .bench-data/ once, then measures)
 *
 * Prints, for a signed series (read straight into place) and an unsigned one with intercept
 * -1024 (converted to Int16 in place): the cold load time and MB/s of the first /metadata,
 * the cached /metadata time, the longest event-loop stall during the cold load, and the peak
 * RSS against the voxel bytes. The baseline, measured in the same process, is reading every
 * file of the series with fs.readFile and nothing else.
 * Each variant runs in a fresh process so peak RSS belongs to it alone, once with glibc's
 * default allocator settings and once with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent
 * huge pages for large buffers, as `npm start` and the circus-rs command run the server).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { createServer } from '../src/server.js';
import { ensureLoadSeries, LOAD_ROOT as ROOT, NX, NY, NZ } from './common.js';

const VARIANTS = {
  signed: { uid: '1.2.826.0.1.3680043.10.1453.300.1', signed: true, intercept: 0 },
  unsigned: { uid: '1.2.826.0.1.3680043.10.1453.300.2', signed: false, intercept: -1024 },
} as const;
type Variant = keyof typeof VARIANTS;

function ensureSeries(variant: Variant): string {
  const { uid, signed, intercept } = VARIANTS[variant];
  return ensureLoadSeries(uid, signed, intercept);
}

async function measure(variant: Variant): Promise<void> {
  const { uid } = VARIANTS[variant];
  const dir = join(ROOT, uid);
  const files = readdirSync(dir).map((f) => join(dir, f));
  // Warm the page cache from another process, so this one allocates nothing before the load.
  execFileSync('sh', ['-c', 'cat "$0"/* > /dev/null', dir]);

  const config = loadConfig({ flags: { dataDir: ROOT, cacheBytes: '4G', logLevel: 'silent' }, env: {} });
  const server = createServer(config, { useIndex: false });
  const rssBefore = process.memoryUsage().rss;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const c0 = performance.now();
  const cold = await server.app.inject({ url: `/metadata?series=${uid}` });
  const coldMs = performance.now() - c0;
  delay.disable();
  if (cold.statusCode !== 200) throw new Error(`cold /metadata: ${cold.statusCode} ${cold.body}`);
  const meta = cold.json() as { voxelCount: number[]; pixelFormat: number };
  const voxelBytes = NX * NY * NZ * 2;

  const cached: number[] = [];
  for (let i = 0; i < 200; i++) {
    const s = performance.now();
    await server.app.inject({ url: `/metadata?series=${uid}` });
    cached.push(performance.now() - s);
  }
  cached.sort((a, b) => a - b);
  const peakRss = process.resourceUsage().maxRSS * 1024;
  await server.close();

  // The baseline, after the load so its buffers do not count in the load's peak RSS.
  const t0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < files.length; i += 16) {
    const chunk = await Promise.all(files.slice(i, i + 16).map((f) => readFile(f)));
    for (const b of chunk) bytes += b.length;
  }
  const baselineMs = performance.now() - t0;

  const mb = voxelBytes / 1e6;
  const line = (k: string, v: string) => console.log(`  ${k.padEnd(34)} ${v}`);
  const thp = /hugetlb=1/.test(process.env.GLIBC_TUNABLES ?? '') ? 'huge pages' : 'default malloc';
  console.log(
    `${variant} series (${thp}) ${meta.voxelCount.join('x')} pixelFormat ${meta.pixelFormat} (${mb.toFixed(1)} MB of voxels, ${(bytes / 1e6).toFixed(1)} MB of files)`,
  );
  line('baseline: readFile of every file', `${baselineMs.toFixed(1)} ms (${(bytes / 1e6 / (baselineMs / 1000)).toFixed(0)} MB/s)`);
  line('cold /metadata (whole series)', `${coldMs.toFixed(1)} ms (${(mb / (coldMs / 1000)).toFixed(0)} MB/s of voxels)`);
  line('cold load / baseline', `${(coldMs / baselineMs).toFixed(2)}x`);
  line(
    'cached /metadata, median',
    `${(cached[cached.length >> 1] * 1000).toFixed(0)} us (${(mb / (cached[cached.length >> 1] / 1000) / 1000).toFixed(0)} GB/s equivalent)`,
  );
  line('longest event-loop stall in load', `${(delay.max / 1e6).toFixed(1)} ms`);
  line('RSS before load', `${(rssBefore / 1e6).toFixed(0)} MB`);
  line('peak RSS', `${(peakRss / 1e6).toFixed(0)} MB = voxels ${mb.toFixed(0)} MB + ${((peakRss - voxelBytes) / 1e6).toFixed(0)} MB`);
}

const arg = process.argv[2];
if (arg === '--measure') {
  await measure(process.argv[3] as Variant);
} else {
  for (const variant of Object.keys(VARIANTS) as Variant[]) {
    ensureSeries(variant);
    for (const tunables of ['', 'glibc.malloc.hugetlb=1']) {
      execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', variant], {
        stdio: 'inherit',
        env: { ...process.env, GLIBC_TUNABLES: tunables },
      });
    }
  }
}
