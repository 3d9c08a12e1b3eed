/**
 * Cold load of a compressed 512 x 512 x 300 Int16 CT series, per transfer syntax, through the
 * decoding pool.
 *
 *   npm run bench:codecs     (transcodes the series under .bench-data/codecs/ once, then measures)
 *
 * The series is bench/render.ts's torso phantom (air, couch, fat, organs, bone, lungs, bowel gas,
 * CT-like correlated noise; -1024 .. 3071 HU stored as signed Int16, so negatives throughout),
 * written as Explicit VR Little Endian and transcoded, slice by slice and two tools at a time,
 * into each lossless syntax: RLE (dcmcrle), JPEG Lossless SV1 (dcmcjpeg +e1), JPEG-LS (dcmcjpls),
 * JPEG 2000 (gdcmconv --j2k) and HTJ2K (ojph_compress from the raw samples, as conformant signed
 * codestreams (bench/htj2k.ts), wrapped into DICOM here). Each syntax is its own series (own SeriesInstanceUID) under
 * .bench-data/codecs/<syntax>/<uid>/, kept and reused on later runs; when written, every file's
 * syntax is checked and the middle slice decoded (as the workers do) and compared bit for bit.
 *
 * Then, for each syntax, in a fresh process (nothing cached, its own peak RSS, the files in the
 * page cache beforehand, GLIBC_TUNABLES=glibc.malloc.hugetlb=1 as `npm start` runs the server),
 * the server is composed as the CLI does (createServer, no header index) with decodeWorkers = 1
 * and with decodeWorkers = 0 (one worker per core), and the first /metadata of the series is
 * timed; three rounds, interleaved, medians printed. The time includes starting the decoding
 * workers (from the TypeScript sources that also goes through tsx), as a server's first
 * compressed load does.
 * Printed per syntax: size on disk and compression ratio; one frame's decode task in a lone warm
 * worker, and how long one worker, and one per core started at once, take to their first frame;
 * per worker count the cold load time, MB/s of decoded voxel bytes (157.3 MB), the longest
 * event-loop stall during the load (monitorEventLoopDelay, 1 ms resolution), the slowest /status
 * answer while it loads (/status is asked every 20 ms through app.inject, each timed from when it
 * was due, so a timer held back by a busy event loop counts), CPU time of the process (every
 * thread) and peak RSS (decoding threads included); and the pool's speed-up over one worker.
 * Beside it, a native baseline measured in the same run: GDCM (Debian's python3-gdcm, in
 * /usr/bin/python3) decoding the same files in one process pinned to one core (GDCM otherwise
 * decodes JPEG 2000 on several threads; every file read with
 * gdcm.ImageReader first; only the loop over the images' GetBuffer is timed), in MB/s of decoded
 * voxels, and the pool's cold-load rate over it. GDCM 3.0 reads no HTJ2K, so for HTJ2K the
 * baseline is OpenJPH's own ojph_expand (openjph-tools) on the same codestreams, its decoding
 * time as it reports it, summed. A missing python3-gdcm or ojph_expand skips its baseline, said so.
 * Figures only; nothing is asserted. About 3 minutes, plus about 2.5 minutes of transcoding on
 * the first run (2 cores).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { decodeFrame, initCodecs } from '../src/dicom/codecs.js';
import { type DecodeTarget, DecodePool } from '../src/dicom/decodePool.js';
import { encapsulatedFrames } from '../src/dicom/frames.js';
import { parseDicom } from '../src/dicom/parser.js';
import { writeDicom } from '../src/dicom/writer.js';
import { createServer } from '../src/server.js';
import { markSigned, offsetToUnsigned, ojphArgs } from './htj2k.js';
import { phantomElements, phantomSlices } from './phantom.js';

const NX = 512;
const NY = 512;
const NZ = 300;
const ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/codecs');
const THIS_FILE = fileURLToPath(import.meta.url);
/** Tool invocations at once while transcoding. */
const TOOL_PARALLELISM = 2;
const STATUS_EVERY_MS = 20;
/** Cold loads per syntax and worker count (medians printed). */
const ROUNDS = 3;

// ---------------------------------------------------------------------------------------------
// The series, one per transfer syntax

interface Syntax {
  key: string;
  name: string;
  ts: string;
  uid: string;
  /** Slices written (all NZ unless a syntax's encoder is too slow for the benchmark). */
  slices: number;
  /** The command that turns the Explicit VR LE file `src` into `out`; null: `src` is the file. */
  tool: ((src: string, out: string) => [string, string[]]) | null;
  /** Encodes raw samples instead of a DICOM file (HTJ2K): the command from `raw` (offset to unsigned) to `out`. */
  rawTool?: (raw: string, out: string) => [string, string[]];
}

const SYNTAXES: Syntax[] = (
  [
    { key: 'explicit-le', name: 'Explicit VR LE', ts: '1.2.840.10008.1.2.1', tool: null },
    { key: 'rle', name: 'RLE Lossless', ts: '1.2.840.10008.1.2.5', tool: (src, out) => ['dcmcrle', [src, out]] },
    { key: 'jpeg-ll-sv1', name: 'JPEG Lossless SV1', ts: '1.2.840.10008.1.2.4.70', tool: (src, out) => ['dcmcjpeg', ['+e1', src, out]] },
    { key: 'jpeg-ls', name: 'JPEG-LS Lossless', ts: '1.2.840.10008.1.2.4.80', tool: (src, out) => ['dcmcjpls', [src, out]] },
    { key: 'j2k', name: 'JPEG 2000 Lossless', ts: '1.2.840.10008.1.2.4.90', tool: (src, out) => ['gdcmconv', ['--j2k', src, out]] },
    {
      // Conformant signed codestreams (bench/htj2k.ts); the key changed with them, so series
      // written before from the words as given (read as unsigned) are not reused.
      key: 'htj2k-signed',
      name: 'HTJ2K Lossless',
      ts: '1.2.840.10008.1.2.4.201',
      tool: null,
      rawTool: (raw, out) => ['ojph_compress', ojphArgs(raw, out, NX, NY, ['-reversible', 'true', '-prog_order', 'LRCP'])],
    },
  ] satisfies Omit<Syntax, 'uid' | 'slices'>[]
).map((s, i) => ({ ...s, uid: `1.2.826.0.1.3680043.10.1453.600.${i + 1}`, slices: NZ }));

const seriesDir = (s: Syntax): string => join(ROOT, s.key, s.uid);
const sliceName = (k: number): string => `CT${String(k).padStart(4, '0')}.dcm`;
const isComplete = (s: Syntax): boolean => existsSync(seriesDir(s)) && readdirSync(seriesDir(s)).length === s.slices;
const exec = promisify(execFile);

/** Runs `fn` over 0 .. n - 1 with at most `limit` calls in flight. */
async function forEachLimit(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

function sliceElements(s: Syntax, k: number, pixels: Int16Array) {
  return phantomElements(s.uid, k, pixels, `codecs benchmark phantom, ${s.name}`);
}

/**
 * Decodes slice k of the written series in this thread (the worker's code path: parse, split
 * frames, decodeFrame) and compares it with the phantom's samples.
 */
async function checkSlice(s: Syntax, dir: string, k: number, expected: Int16Array): Promise<void> {
  const parsed = parseDicom(readFileSync(join(dir, sliceName(k))));
  if (parsed.transferSyntaxUid !== s.ts) throw new Error(`${s.name}: ${sliceName(k)} is in ${parsed.transferSyntaxUid}, not ${s.ts}`);
  const px = parsed.pixelData!;
  let bytes: Uint8Array;
  if (px.fragments) {
    await initCodecs();
    const [frame] = encapsulatedFrames(parsed.dataset.buf, px, 1);
    const info = {
      rows: NY,
      columns: NX,
      bitsAllocated: 16,
      bitsStored: 16,
      pixelRepresentation: 1,
      samplesPerPixel: 1,
      photometricInterpretation: 'MONOCHROME2',
      planarConfiguration: 0,
    };
    bytes = decodeFrame(s.ts, frame, info);
  } else {
    bytes = parsed.dataset.buf.subarray(px.offset, px.offset + px.length);
  }
  const got = new Int16Array(new Uint8Array(bytes).buffer, 0, NX * NY); // a copy: Buffer.slice would share the file's buffer
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== expected[i]) throw new Error(`${s.name}: slice ${k} decodes to ${got[i]} at ${i}, not ${expected[i]}`);
  }
}

/** Writes and transcodes every series not already complete under ROOT. */
async function ensureSeries(): Promise<void> {
  // HTJ2K series written before the codestreams were conformant (signed input read as unsigned).
  rmSync(join(ROOT, 'htj2k'), { recursive: true, force: true });
  const missing = SYNTAXES.filter((s) => !isComplete(s));
  if (missing.length === 0) return;
  console.log(`writing ${missing.map((s) => s.name).join(', ')} under ${ROOT} (once; later runs reuse them)`);
  let t = performance.now();
  const slices = [...phantomSlices()];
  const sample = slices[Math.floor(NZ / 2)];
  console.log(`  phantom: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  for (const s of missing) {
    t = performance.now();
    const partial = join(ROOT, `${s.key}.partial`);
    rmSync(partial, { recursive: true, force: true });
    rmSync(join(ROOT, s.key), { recursive: true, force: true });
    const dir = join(partial, s.uid);
    const work = join(partial, 'work');
    mkdirSync(dir, { recursive: true });
    mkdirSync(work, { recursive: true });
    await forEachLimit(s.slices, TOOL_PARALLELISM, async (k) => {
      const pixels = slices[k];
      const target = join(dir, sliceName(k));
      if (s.rawTool) {
        const raw = join(work, `${k}.yuv`);
        const out = join(work, `${k}.j2c`);
        writeFileSync(raw, offsetToUnsigned(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength)));
        const [cmd, args] = s.rawTool(raw, out);
        await exec(cmd, args);
        const elements = sliceElements(s, k, new Int16Array(0));
        writeFileSync(target, writeDicom(elements, { transferSyntax: s.ts, encapsulated: [markSigned(readFileSync(out))] }));
        rmSync(raw);
        rmSync(out);
      } else if (s.tool) {
        const src = join(work, sliceName(k));
        writeFileSync(src, writeDicom(sliceElements(s, k, pixels)));
        const [cmd, args] = s.tool(src, target);
        await exec(cmd, args);
        rmSync(src);
      } else {
        writeFileSync(target, writeDicom(sliceElements(s, k, pixels)));
      }
    });
    rmSync(work, { recursive: true, force: true });
    // Every file is in the syntax, and the middle slice decodes bit-exactly.
    for (let k = 0; k < s.slices; k++) {
      const ts = parseDicom(readFileSync(join(dir, sliceName(k)))).transferSyntaxUid;
      if (ts !== s.ts) throw new Error(`${s.name}: ${sliceName(k)} is in ${ts}, not ${s.ts}`);
    }
    await checkSlice(s, dir, Math.floor(NZ / 2), sample);
    renameSync(partial, join(ROOT, s.key));
    console.log(`  ${s.name.padEnd(20)} ${s.slices} slices in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
}

// ---------------------------------------------------------------------------------------------
// One cold load, in a fresh process

interface Measurement {
  key: string;
  workers: number;
  poolSize: number;
  loadMs: number;
  stallMs: number;
  statusWorstMs: number;
  statusPolls: number;
  peakRss: number;
  /** CPU seconds of the whole process (every thread) during the load, user and system. */
  userS: number;
  systemS: number;
  voxelCount: number[];
}

async function measure(key: string, workers: number): Promise<Measurement> {
  const s = SYNTAXES.find((x) => x.key === key)!;
  const dataDir = join(ROOT, s.key);
  // Warm the page cache from another process, so this one allocates nothing before the load.
  execFileSync('sh', ['-c', 'cat "$0"/* > /dev/null', seriesDir(s)]);
  const config = loadConfig({ flags: { dataDir, cacheBytes: '4G', logLevel: 'silent', decodeWorkers: workers }, env: {} });
  const server = createServer(config, { useIndex: false });
  await server.app.ready();

  // /status every 20 ms during the load, each timed from when it was due.
  let loading = true;
  let statusWorstMs = 0;
  let statusPolls = 0;
  const poller = (async () => {
    let due = performance.now();
    while (loading) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!loading) break;
      const res = await server.app.inject({ url: '/status' });
      const done = performance.now();
      if (res.statusCode !== 200) throw new Error(`/status: ${res.statusCode}`);
      statusWorstMs = Math.max(statusWorstMs, done - due);
      statusPolls++;
      due = done + STATUS_EVERY_MS;
    }
  })();

  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const cpu0 = process.resourceUsage();
  const t0 = performance.now();
  const res = await server.app.inject({ url: `/metadata?series=${s.uid}` });
  const loadMs = performance.now() - t0;
  const cpu1 = process.resourceUsage();
  delay.disable();
  loading = false;
  await poller;
  if (res.statusCode !== 200) throw new Error(`${s.name}: cold /metadata: ${res.statusCode} ${res.body}`);
  const meta = res.json() as { voxelCount: number[] };
  const peakRss = process.resourceUsage().maxRSS * 1024;
  await server.close();
  return {
    key,
    workers,
    poolSize: workers > 0 ? workers : availableParallelism(),
    loadMs,
    stallMs: delay.max / 1e6,
    statusWorstMs,
    statusPolls,
    peakRss,
    userS: (cpu1.userCPUTime - cpu0.userCPUTime) / 1e6,
    systemS: (cpu1.systemCPUTime - cpu0.systemCPUTime) / 1e6,
    voxelCount: meta.voxelCount,
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding cost of one frame, in workers started as the pool starts its workers

interface WorkerTiming {
  /** From new Worker to its first frame decoded (thread, tsx, WebAssembly, one decode). */
  firstMs: number;
  /** The same for `cores` workers started at once (the pool's cold start), until the last one's first frame. */
  firstAllMs: number;
  /** Median of one frame's decode task once the worker is warm (after 40 tasks). */
  frameMs: number;
}

/**
 * A decoding pool of `size` workers (started from the sources as the server starts them);
 * decode(k) decodes slice k as one task into a slice of shared memory, as a load does.
 */
function startPool(s: Syntax, size: number): { decode: (k: number) => Promise<void>; close: () => Promise<void> } {
  const pool = new DecodePool(size);
  const voxels = NX * NY;
  const target = (): DecodeTarget => ({
    buffer: new SharedArrayBuffer(voxels * 2),
    format: PixelFormat.Int16,
    byteOffsets: [0],
    voxels,
    bits: { bitsAllocated: 16, bitsStored: 16, highBit: 15, pixelRepresentation: 1 },
  });
  const decode = async (k: number): Promise<void> => {
    await pool.decode({ kind: 'file', path: join(seriesDir(s), sliceName(k)) }, [0], 1 << 30, target());
  };
  return { decode, close: () => pool.close() };
}

async function timeWorker(s: Syntax): Promise<WorkerTiming> {
  // Several at once first (as a cold pool starts), then one alone, which is then timed warm.
  const cores = availableParallelism();
  let t0 = performance.now();
  const all = startPool(s, cores);
  await Promise.all(Array.from({ length: cores }, (_, i) => all.decode(i)));
  const firstAllMs = performance.now() - t0;
  await all.close();
  t0 = performance.now();
  const w = startPool(s, 1);
  try {
    await w.decode(0);
    const firstMs = performance.now() - t0;
    const slice = (i: number): number => (i * 37) % s.slices;
    for (let i = 1; i <= 40; i++) await w.decode(slice(i));
    const times: number[] = [];
    for (let i = 41; i <= 81; i++) {
      const t = performance.now();
      await w.decode(slice(i));
      times.push(performance.now() - t);
    }
    return { firstMs, firstAllMs, frameMs: median(times) };
  } finally {
    await w.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Native baseline: GDCM (python3-gdcm) decoding the same files on one core; OpenJPH's
// ojph_expand for HTJ2K, which GDCM 3.0 does not read

const PYTHON = '/usr/bin/python3';
/** The pool's cold-load rate aimed at, as a multiple of the native one-core rate. */
const TARGET = 1.5;

/**
 * Pinned to one core, reads every file of each folder given, then times GetBuffer over them;
 * one JSON line a folder.
 */
const GDCM_SCRIPT = `
import glob, json, os, sys, time
import gdcm
gdcm.Trace.SetWarning(False)
gdcm.Trace.SetError(False)
# One core: GDCM has OpenJPEG decode JPEG 2000 on several threads otherwise.
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
for folder in sys.argv[1:]:
    readers = []
    for path in sorted(glob.glob(os.path.join(folder, '*.dcm'))):
        r = gdcm.ImageReader()
        r.SetFileName(path)
        if not r.Read():
            break
        readers.append(r)
    else:
        t0 = time.perf_counter()
        total = 0
        for r in readers:
            total += len(r.GetImage().GetBuffer())
        seconds = time.perf_counter() - t0
        print(json.dumps({'folder': folder, 'frames': len(readers), 'bytes': total, 'seconds': seconds}))
        continue
    print(json.dumps({'folder': folder, 'error': 'GDCM cannot read ' + path}))
`;

interface Baseline {
  /** Who decoded (GDCM, or OpenJPH for HTJ2K). */
  by: string;
  mbPerS?: number;
  /** Why there is no figure. */
  skipped?: string;
}

function gdcmBaselines(syntaxes: Syntax[]): Map<string, Baseline> {
  const result = new Map<string, Baseline>();
  try {
    execFileSync(PYTHON, ['-c', 'import gdcm'], { stdio: 'pipe' });
  } catch {
    for (const s of syntaxes) result.set(s.key, { by: 'GDCM', skipped: `${PYTHON} cannot import gdcm (Debian's python3-gdcm): baseline skipped` });
    return result;
  }
  const out = execFileSync(PYTHON, ['-c', GDCM_SCRIPT, ...syntaxes.map(seriesDir)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { folder: string; bytes?: number; seconds?: number; error?: string });
  for (const s of syntaxes) {
    const line = lines.find((l) => l.folder === seriesDir(s));
    if (!line || line.error || !line.bytes || !line.seconds) result.set(s.key, { by: 'GDCM', skipped: line?.error ?? 'no answer from GDCM' });
    else result.set(s.key, { by: 'GDCM', mbPerS: line.bytes / 1e6 / line.seconds });
  }
  return result;
}

/** OpenJPH's ojph_expand on each slice's codestream: the decoding times it prints, summed. */
function ojphBaseline(s: Syntax): Baseline {
  try {
    execFileSync('which', ['ojph_expand'], { stdio: 'pipe' });
  } catch {
    return { by: 'ojph_expand', skipped: 'ojph_expand (openjph-tools) is not installed: baseline skipped' };
  }
  const work = mkdtempSync(join(tmpdir(), 'circus-ojph-'));
  try {
    let seconds = 0;
    for (let k = 0; k < s.slices; k++) {
      const parsed = parseDicom(readFileSync(join(seriesDir(s), sliceName(k))));
      const j2c = join(work, 'frame.j2c');
      writeFileSync(j2c, encapsulatedFrames(parsed.dataset.buf, parsed.pixelData!, 1)[0]);
      const printed = execFileSync('ojph_expand', ['-i', j2c, '-o', join(work, 'frame.raw')], { encoding: 'utf8' });
      const elapsed = /Elapsed time = ([0-9.e+-]+)/.exec(printed);
      if (!elapsed) return { by: 'ojph_expand', skipped: `ojph_expand printed no time: ${printed.trim()}` };
      seconds += Number(elapsed[1]);
    }
    return { by: 'ojph_expand', mbPerS: (NX * NY * 2 * s.slices) / 1e6 / seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Main

function runChild(args: string[]): unknown {
  const out = execFileSync(process.execPath, [...process.execArgv, THIS_FILE, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
    maxBuffer: 1 << 20,
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`child ${args.join(' ')} printed no result:\n${out}`);
  return JSON.parse(line.slice('RESULT '.length));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const mode = process.argv[2];
if (mode === '--measure') {
  const result = await measure(process.argv[3], Number(process.argv[4]));
  console.log(`RESULT ${JSON.stringify(result)}`);
} else if (mode === '--worker') {
  const s = SYNTAXES.find((x) => x.key === process.argv[3])!;
  console.log(`RESULT ${JSON.stringify(await timeWorker(s))}`);
} else {
  await ensureSeries();
  const cores = availableParallelism();
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
  const pad = (v: string, n: number): string => v.padStart(n);
  const load0 = loadavg()[0];

  console.log(
    `\ncold load of a ${NX}x${NY}x${NZ} signed Int16 CT phantom per transfer syntax (${cores} cores; pool = decodeWorkers 0 = ${cores} workers)`,
  );
  console.log(`each load in a fresh process, files in the page cache, GLIBC_TUNABLES=glibc.malloc.hugetlb=1; ${ROUNDS} rounds, interleaved`);

  // Rounds of every syntax and worker count, interleaved, so a passing disturbance touches
  // one run of several configurations rather than every run of one.
  const runs = new Map<string, Measurement[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    const t = performance.now();
    for (const s of SYNTAXES) {
      for (const workers of [1, 0]) {
        const m = runChild(['--measure', s.key, String(workers)]) as Measurement;
        if (m.voxelCount.join('x') !== `${NX}x${NY}x${s.slices}`) throw new Error(`${s.name}: voxelCount ${m.voxelCount.join('x')}`);
        runs.set(`${s.key}/${workers}`, [...(runs.get(`${s.key}/${workers}`) ?? []), m]);
      }
    }
    console.log(`  round ${round} of ${ROUNDS}: ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const timings = new Map(SYNTAXES.filter((s) => s.tool || s.rawTool).map((s) => [s.key, runChild(['--worker', s.key]) as WorkerTiming]));

  console.log("\nfiles on disk, and one frame decoded by a lone worker (the pool's code: read, parse, decode, copy out)");
  console.log(
    `  ${'syntax'.padEnd(20)} ${pad('transfer syntax', 23)} ${pad('slices', 6)} ${pad('on disk', 11)} ${pad('ratio', 6)} ${pad('frame', 9)} ${pad('x slices', 8)} ${pad('start 1', 9)} ${pad(`start ${cores}`, 9)}`,
  );
  for (const s of SYNTAXES) {
    const dir = seriesDir(s);
    const fileBytes = readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
    const voxelBytes = NX * NY * s.slices * 2;
    const w = timings.get(s.key);
    console.log(
      `  ${s.name.padEnd(20)} ${pad(s.ts, 23)} ${pad(String(s.slices), 6)} ${pad(mb(fileBytes), 8)} MB ${pad((voxelBytes / fileBytes).toFixed(2), 5)}x` +
        (w
          ? ` ${pad(w.frameMs.toFixed(1), 6)} ms ${pad(((w.frameMs * s.slices) / 1000).toFixed(2), 6)} s ${pad(w.firstMs.toFixed(0), 6)} ms ${pad(w.firstAllMs.toFixed(0), 6)} ms`
          : '   (not encoded)'),
    );
  }
  console.log('  ratio: voxel bytes / file bytes; frame: median of 41 one-frame tasks after 40 of warm-up; x slices: that for the whole series;');
  console.log(
    `  start 1: new Worker to its first frame (thread, tsx from the sources, WebAssembly compiled, one decode); start ${cores}: ${cores} at once, to the last one's`,
  );

  const head = `${pad('load', 9)} ${pad('range', 11)} ${pad('rate', 9)} ${pad('stall', 8)} ${pad('/status', 8)} ${pad('cpu u+s', 11)} ${pad('peak RSS', 8)}`;
  console.log(`\ncold /metadata of ${mb(NX * NY * NZ * 2)} MB of voxels (fewer for a syntax with fewer slices)`);
  console.log(`  ${''.padEnd(20)} ${`decodeWorkers 1`.padEnd(head.length)} | ${`decodeWorkers 0 (${cores} workers)`.padEnd(head.length)} |`);
  console.log(`  ${'syntax'.padEnd(20)} ${head} | ${head} | speed-up`);
  for (const s of SYNTAXES) {
    const voxelMB = (NX * NY * s.slices * 2) / 1e6;
    const part = (ms: Measurement[]): string => {
      const load = median(ms.map((m) => m.loadMs));
      const lo = Math.min(...ms.map((m) => m.loadMs));
      const hi = Math.max(...ms.map((m) => m.loadMs));
      return (
        `${pad(load.toFixed(0), 6)} ms ${pad(`${lo.toFixed(0)}-${hi.toFixed(0)}`, 11)} ${pad((voxelMB / (load / 1000)).toFixed(0), 4)} MB/s` +
        ` ${pad(Math.max(...ms.map((m) => m.stallMs)).toFixed(1), 5)} ms ${pad(Math.max(...ms.map((m) => m.statusWorstMs)).toFixed(1), 5)} ms` +
        ` ${pad(median(ms.map((m) => m.userS)).toFixed(1), 4)}+${median(ms.map((m) => m.systemS))
          .toFixed(1)
          .padEnd(3)} s ${pad(mb(median(ms.map((m) => m.peakRss))), 5)} MB`
      );
    };
    const one = runs.get(`${s.key}/1`)!;
    const pool = runs.get(`${s.key}/0`)!;
    const speedup = median(one.map((m) => m.loadMs)) / median(pool.map((m) => m.loadMs));
    const gain =
      s.tool || s.rawTool ? `${pad(speedup.toFixed(2), 5)}x` : `  n/a (nothing to decode: the pool is unused, ${speedup.toFixed(2)}x is noise)`;
    console.log(`  ${s.name.padEnd(20)} ${part(one)} | ${part(pool)} | ${gain}`);
  }
  console.log(`  load: median of ${ROUNDS} cold loads (range: fastest-slowest); rate: decoded voxel bytes / median load;`);
  console.log(
    `  stall: longest event-loop delay in any of the loads; /status: slowest poll (every ${STATUS_EVERY_MS} ms, from when due) in any of them;`,
  );
  console.log('  cpu u+s: median user + system CPU seconds of the process (all threads) in the load; peak RSS: median');

  // The native baseline, measured now, after the loads, on the same files.
  const decoded = SYNTAXES.filter((s) => s.tool || s.rawTool);
  const baselines = gdcmBaselines(decoded);
  for (const s of decoded) {
    const b = baselines.get(s.key)!;
    if (b.mbPerS === undefined && s.rawTool) {
      const ojph = ojphBaseline(s);
      baselines.set(s.key, { ...ojph, by: 'OpenJPH ojph_expand (GDCM could not read the files)' });
    }
  }
  const rate = (s: Syntax, workers: number): number =>
    (NX * NY * s.slices * 2) / 1e6 / (median(runs.get(`${s.key}/${workers}`)!.map((m) => m.loadMs)) / 1000);
  console.log(`
cold load against a native decoder on one core (same files; target: the pool at least ${TARGET}x the native rate)`);
  console.log(
    `  ${'syntax'.padEnd(20)} ${pad('1 worker', 10)} ${pad(`pool (${cores})`, 10)} ${pad('native', 10)} ${pad('pool/native', 11)} ${pad('1 worker/native', 15)}  native decoder`,
  );
  for (const s of decoded) {
    const b = baselines.get(s.key)!;
    const one = rate(s, 1);
    const pool = rate(s, 0);
    const figures =
      b.mbPerS === undefined
        ? `${pad('-', 10)} ${pad('-', 11)} ${pad('-', 15)}  ${b.skipped}`
        : `${pad(b.mbPerS.toFixed(0), 5)} MB/s ${pad(`${(pool / b.mbPerS).toFixed(2)}x`, 11)} ${pad(`${(one / b.mbPerS).toFixed(2)}x`, 15)}  ${b.by}` +
          `${pool / b.mbPerS >= TARGET ? '' : `  (below ${TARGET}x)`}`;
    console.log(`  ${s.name.padEnd(20)} ${pad(one.toFixed(0), 5)} MB/s ${pad(pool.toFixed(0), 5)} MB/s ${figures}`);
  }
  console.log('  1 worker, pool: decoded voxel bytes / median cold load (files read, parsed, decoded, volume built);');
  console.log('  native: decoded bytes / time of the decoding loop alone (GDCM: ImageReader for every file first, then GetBuffer of each');
  console.log('  image timed; ojph_expand: the decoding time it prints per codestream, summed), one process, one core');
  console.log(`  load average (1 min) before / after: ${load0.toFixed(2)} / ${loadavg()[0].toFixed(2)} (other work on the machine shows as noise)`);
}
