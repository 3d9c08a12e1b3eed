/**
 * Time to the first image of a cold series against its whole cold load, per transfer syntax.
 *
 *   npm run bench:firstimage
 *
 * The series are those bench:codecs measures: its 512 x 512 x 300 signed Int16 torso phantom,
 * uncompressed (Explicit VR LE) and transcoded into each compressed syntax it covers, under
 * .bench-data/codecs/<syntax>/<uid>/. When they are not all there, bench/codecs.ts is run
 * first to write them (it then also prints its own figures; later runs reuse the files).
 *
 * For each syntax, in fresh processes (the files in the page cache beforehand;
 * GLIBC_TUNABLES=glibc.malloc.hugetlb=1), the server is composed as the CLI composes it
 * (createServer, its decoding and rendering workers started at start-up), with and without its
 * header index (the CLI's default; built before the clock starts, so the header pass takes
 * each file's header from it instead of reading the file), and
 * made to serve another series first (bench:load's signed series, bench/common.ts: /metadata and
 * one image), so that its code is as warm as in a server that has been running; then one cold
 * request for the measured series is timed:
 * - first image: `/mpr?mode=axial&target=150&ww=400&wl=40` (the middle slice, with a window, so
 *   it may be answered before the rest of the series is read), from the request to the whole
 *   PNG; the same process then times an image of slice 60 asked for right after (moved to the
 *   front of the load under way: the middle slice is also where a load starts when nothing has
 *   asked for another, see src/dicom/sliceQueue.ts), and the time until the volume is complete
 *   (`/metadata`);
 * - whole load: `/metadata` (which needs every slice), in a process of its own.
 * Rounds alternate the two kinds and the syntaxes; medians (and ranges) of ROUNDS are printed,
 * with the ratio first image / whole load (the aim: at most 10 % on every syntax).
 * Figures only; nothing is asserted.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { parseDicom } from '../src/dicom/parser.js';
import { describeTransferSyntax } from '../src/dicom/tags.js';
import { createServer } from '../src/server.js';
import { DataDirectorySource } from '../src/sources/dataDirectory.js';
import { SeriesIndex } from '../src/sources/seriesIndex.js';
import { ensureSeries as ensureWarmUpSeries, LOAD_ROOT, median, SERIES_UID as WARM_UP_UID } from './common.js';
import { NZ } from './phantom.js';

const CODECS_ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/codecs');
const CODECS_BENCH = resolve(fileURLToPath(import.meta.url), '../codecs.ts');
const THIS_FILE = fileURLToPath(import.meta.url);
const ROUNDS = 3;
/** Time given to the workers the server starts at start-up, before the warm-up requests. */
const SETTLE_MS = 2000;
const TARGET = Math.floor(NZ / 2);
const SECOND_TARGET = 60;
const WINDOW = 'ww=400&wl=40';

interface Series {
  /** The folder bench:codecs names the syntax by. */
  key: string;
  name: string;
  ts: string;
  uid: string;
  /** The data directory (holding the series folder). */
  dataDir: string;
}

/** The series bench:codecs wrote, uncompressed first; null when any is missing or incomplete. */
function codecSeries(): Series[] | null {
  if (!existsSync(CODECS_ROOT)) return null;
  const keys = readdirSync(CODECS_ROOT);
  if (keys.length === 0 || keys.some((k) => k.endsWith('.partial'))) return null;
  const out: Series[] = [];
  for (const key of keys) {
    const dataDir = join(CODECS_ROOT, key);
    const [uid] = readdirSync(dataDir);
    const files = uid ? readdirSync(join(dataDir, uid)).sort() : [];
    if (files.length !== NZ) return null;
    const ts = parseDicom(readFileSync(join(dataDir, uid, files[0])), { untilPixelData: true }).transferSyntaxUid;
    out.push({ key, name: describeTransferSyntax(ts).replace(/ \([0-9.]+\)$/, ''), ts, uid, dataDir });
  }
  const native = (s: Series): number => (s.ts === '1.2.840.10008.1.2.1' ? 0 : 1);
  return out.sort((a, b) => native(a) - native(b) || a.ts.localeCompare(b.ts, 'en', { numeric: true }));
}

interface Measurement {
  /** Whole load: /metadata; first: the first image (then `completeMs` to the whole volume). */
  kind: 'whole' | 'first';
  ms: number;
  completeMs: number | null;
  secondMs: number | null;
  bytes: number;
}

async function measure(kind: 'whole' | 'first', key: string, indexed: boolean): Promise<Measurement> {
  const s = codecSeries()!.find((x) => x.key === key)!;
  execFileSync('sh', ['-c', 'cat "$0"/* > /dev/null', join(s.dataDir, s.uid)]);
  const config = loadConfig({ flags: { dataDir: s.dataDir, cacheBytes: '4G', logLevel: 'silent' }, env: {} });
  const indexDir = mkdtempSync(join(tmpdir(), 'circus-rs-firstimage-'));
  const index = indexed ? new SeriesIndex(s.dataDir, join(indexDir, 'index.sqlite')) : null;
  await index?.update();
  // The measured series' folder, and bench:load's for the warm-up.
  const measured = new DataDirectorySource(s.dataDir, index);
  const warmUp = new DataDirectorySource(LOAD_ROOT, null);
  const source = { find: async (uid: string) => (uid === WARM_UP_UID ? warmUp.find(uid) : measured.find(uid)) };
  const server = createServer(config, { useIndex: false, warmWorkers: true, source });
  await server.app.ready();
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  for (const url of [`/metadata?series=${WARM_UP_UID}`, `/mpr?series=${WARM_UP_UID}&mode=axial&target=100&ww=400&wl=40`]) {
    const res = await server.app.inject({ url });
    if (res.statusCode !== 200) throw new Error(`warm-up ${url}: ${res.statusCode} ${res.body}`);
  }
  const t0 = performance.now();
  if (kind === 'whole') {
    const res = await server.app.inject({ url: `/metadata?series=${s.uid}` });
    const ms = performance.now() - t0;
    if (res.statusCode !== 200) throw new Error(`${s.name}: /metadata: ${res.statusCode} ${res.body}`);
    await server.close();
    index?.close();
    rmSync(indexDir, { recursive: true, force: true });
    return { kind, ms, completeMs: null, secondMs: null, bytes: res.rawPayload.length };
  }
  const url = (z: number): string => `/mpr?series=${s.uid}&mode=axial&target=${z}&${WINDOW}`;
  const res = await server.app.inject({ url: url(TARGET) });
  const ms = performance.now() - t0;
  if (res.statusCode !== 200) throw new Error(`${s.name}: first image: ${res.statusCode} ${res.body}`);
  const t1 = performance.now();
  const second = await server.app.inject({ url: url(SECOND_TARGET) });
  const secondMs = performance.now() - t1;
  if (second.statusCode !== 200) throw new Error(`${s.name}: second image: ${second.statusCode} ${second.body}`);
  const meta = await server.app.inject({ url: `/metadata?series=${s.uid}` });
  const completeMs = performance.now() - t0;
  if (meta.statusCode !== 200) throw new Error(`${s.name}: /metadata after the image: ${meta.statusCode} ${meta.body}`);
  await server.close();
  index?.close();
  rmSync(indexDir, { recursive: true, force: true });
  return { kind, ms, completeMs, secondMs, bytes: res.rawPayload.length };
}

function runChild(kind: string, key: string, indexed: boolean): Measurement {
  const out = execFileSync(process.execPath, [...process.execArgv, THIS_FILE, '--measure', kind, key, indexed ? 'indexed' : 'files'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`child ${kind} ${key} printed no result:\n${out}`);
  return JSON.parse(line.slice('RESULT '.length)) as Measurement;
}

if (process.argv[2] === '--measure') {
  const m = await measure(process.argv[3] as 'whole' | 'first', process.argv[4], process.argv[5] === 'indexed');
  console.log(`RESULT ${JSON.stringify(m)}`);
} else {
  ensureWarmUpSeries();
  let series = codecSeries();
  if (!series) {
    console.log(`the series of bench:codecs are not all under ${CODECS_ROOT}: running bench/codecs.ts, which writes them (once)\n`);
    execFileSync(process.execPath, [...process.execArgv, CODECS_BENCH], { stdio: 'inherit' });
    series = codecSeries();
    if (!series) throw new Error(`bench/codecs.ts did not leave complete series under ${CODECS_ROOT}`);
  }
  const load0 = loadavg()[0];
  console.log(
    `first axial image (target ${TARGET}, ${WINDOW}) of a cold 512x512x${NZ} series against its whole cold load (/metadata), per transfer syntax`,
  );
  console.log(
    `${availableParallelism()} cores; each measured request in a fresh process whose server (workers started as the CLI starts them) has served another series first;`,
  );
  console.log(`files in the page cache, huge pages; ${ROUNDS} rounds, interleaved\n`);
  const runs = new Map<string, Measurement[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    const t = performance.now();
    for (const s of series) {
      for (const indexed of [false, true]) {
        for (const kind of round % 2 ? ['first', 'whole'] : ['whole', 'first']) {
          const k = `${s.key}/${kind}/${indexed}`;
          runs.set(k, [...(runs.get(k) ?? []), runChild(kind, s.key, indexed)]);
        }
      }
    }
    console.log(`  round ${round} of ${ROUNDS}: ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const pad = (v: string, n: number): string => v.padStart(n);
  const cell = (xs: number[]): string =>
    `${pad(median(xs).toFixed(0), 6)} ms ${pad(`${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}`, 11)}`;
  for (const indexed of [false, true]) {
    console.log(indexed ? '\nheaders from the index (as `circus-rs serve` runs once its index is built):' : '\nheaders read from the files:');
    console.log(
      `  ${'syntax'.padEnd(26)} ${'first image'.padEnd(21)} ${'whole load'.padEnd(21)} ${pad('ratio', 6)}   ${'then complete'.padEnd(9)} ${pad(`image ${SECOND_TARGET} next`, 14)}`,
    );
    for (const s of series) {
      const first = runs.get(`${s.key}/first/${indexed}`)!;
      const whole = runs.get(`${s.key}/whole/${indexed}`)!;
      const ratio = median(first.map((m) => m.ms)) / median(whole.map((m) => m.ms));
      console.log(
        `  ${s.name.slice(0, 26).padEnd(26)} ${cell(first.map((m) => m.ms))} ${cell(whole.map((m) => m.ms))} ${pad((ratio * 100).toFixed(1), 5)}%` +
          `   ${pad(median(first.map((m) => m.completeMs!)).toFixed(0), 6)} ms ${pad(median(first.map((m) => m.secondMs!)).toFixed(0), 9)} ms`,
      );
    }
  }
  console.log('  first image: request to the whole PNG; whole load: request to the /metadata answer (median, fastest-slowest);');
  console.log('  ratio: median first image / median whole load; then complete: from the first request until /metadata answers in');
  console.log(
    `  the same process; image ${SECOND_TARGET} next: an image of slice ${SECOND_TARGET} asked for right after the first (moved to the front of the load)`,
  );
  console.log(`  load average (1 min) before / after: ${load0.toFixed(2)} / ${loadavg()[0].toFixed(2)} (other work on the machine shows as noise)`);
}
