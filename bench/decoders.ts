/**
 * The decoders of each compressed transfer syntax side by side, on the same frames, in one
 * thread: dcmjs-codecs against the @cornerstonejs codecs (OpenJPH, OpenJPEG, CharLS,
 * libjpeg-turbo 8-bit) that read the syntax.
 *
 *   npm run bench:decoders     (transcodes the frames under .bench-data/decoders/ once, then measures)
 *
 * Frames: ten 512 x 512 slices of the torso phantom (bench/phantom.ts, z = 15, 45 .. 285), as
 * signed 16-bit HU (-1024 .. 3071), as unsigned 12-bit (HU + 1024, for JPEG-LS near-lossless and
 * 12-bit JPEG) and windowed to 8 bits (level 40, width 400, for JPEG Baseline); transcoded with
 * dcmcrle, dcmcjpeg, dcmcjpls, gdcmconv and ojph_compress as bench/codecs.ts does. The HTJ2K
 * codestreams are conformant signed ones: ojph_compress is given the samples offset to unsigned
 * and the codestream's SIZ then says signed (ojph_compress's own signed input reads the words as
 * unsigned; see src/dicom/codecs.ts).
 *
 * Each decoder decodes every frame through src/dicom/codecs.ts (decodeFrameWith, into one
 * target array, as the workers do), checked against the source samples (lossless: exact;
 * lossy: largest error); then rounds of all ten frames, decoders interleaved round by round,
 * until each has had at least 1.5 s and 5 rounds. Printed: median ms per frame, MB/s of
 * decoded samples, and dcmjs-codecs' time over the other's (above 1: the other is faster).
 * Then the signed HTJ2K check (negative samples decoded as 32767, per decoder and kind of
 * codestream) and what a worker thread pays to start: initCodecs, then each module's
 * instantiation on first use. Figures only; nothing is asserted. About 2 minutes (2 cores),
 * plus half a minute of transcoding on the first run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  candidateDecoders,
  type DecoderName,
  decodeFrameWith,
  decoderFor,
  type FrameInfo,
  initCodecs,
  loadDecoder,
  DECODER_NAMES,
  monochromeFrameInfo,
} from '../src/dicom/codecs.js';
import { encapsulatedFrames } from '../src/dicom/frames.js';
import { parseDicom } from '../src/dicom/parser.js';
import { imageElements, writeDicom } from '../src/dicom/writer.js';
import { markSigned, offsetToUnsigned, ojphArgs } from './htj2k.js';
import { NX, NY, phantomSlices } from './phantom.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/decoders');
const SLICES = [15, 45, 75, 105, 135, 165, 195, 225, 255, 285];
const MIN_MS = 1500;
const MIN_ROUNDS = 5;
const MAX_ROUNDS = 60;

type Source = 'int16' | 'uint12' | 'uint8';

interface Case {
  key: string;
  name: string;
  ts: string;
  source: Source;
  lossless: boolean;
  /** The command that turns the Explicit VR LE file `src` into `out`. */
  tool?: (src: string, out: string) => [string, string[]];
  /** HTJ2K: ojph_compress options beyond size and depth. */
  ojph?: string[];
}

const CASES: Case[] = [
  { key: 'rle', name: 'RLE Lossless', ts: '1.2.840.10008.1.2.5', source: 'int16', lossless: true, tool: (s, o) => ['dcmcrle', [s, o]] },
  {
    key: 'jpeg-sv1',
    name: 'JPEG Lossless SV1',
    ts: '1.2.840.10008.1.2.4.70',
    source: 'int16',
    lossless: true,
    tool: (s, o) => ['dcmcjpeg', ['+e1', s, o]],
  },
  {
    key: 'jpeg-ll',
    name: 'JPEG Lossless',
    ts: '1.2.840.10008.1.2.4.57',
    source: 'int16',
    lossless: true,
    tool: (s, o) => ['dcmcjpeg', ['+el', s, o]],
  },
  {
    key: 'jpeg-12',
    name: 'JPEG Extended 12-bit',
    ts: '1.2.840.10008.1.2.4.51',
    source: 'uint12',
    lossless: false,
    tool: (s, o) => ['dcmcjpeg', ['+ee', '+q', '95', s, o]],
  },
  {
    key: 'jpeg-8',
    name: 'JPEG Baseline 8-bit',
    ts: '1.2.840.10008.1.2.4.50',
    source: 'uint8',
    lossless: false,
    tool: (s, o) => ['dcmcjpeg', ['+eb', '+q', '95', s, o]],
  },
  { key: 'jls', name: 'JPEG-LS Lossless', ts: '1.2.840.10008.1.2.4.80', source: 'int16', lossless: true, tool: (s, o) => ['dcmcjpls', [s, o]] },
  {
    key: 'jls-near',
    name: 'JPEG-LS near (2)',
    ts: '1.2.840.10008.1.2.4.81',
    source: 'uint12',
    lossless: false,
    tool: (s, o) => ['dcmcjpls', ['+en', '+md', '2', s, o]],
  },
  {
    key: 'j2k',
    name: 'JPEG 2000 Lossless',
    ts: '1.2.840.10008.1.2.4.90',
    source: 'int16',
    lossless: true,
    tool: (s, o) => ['gdcmconv', ['--j2k', s, o]],
  },
  {
    key: 'j2k-lossy',
    name: 'JPEG 2000 lossy',
    ts: '1.2.840.10008.1.2.4.91',
    source: 'int16',
    lossless: false,
    tool: (s, o) => ['gdcmconv', ['--j2k', '--lossy', '-q', '80', s, o]],
  },
  { key: 'htj2k', name: 'HTJ2K Lossless', ts: '1.2.840.10008.1.2.4.201', source: 'int16', lossless: true, ojph: ['-reversible', 'true'] },
  {
    key: 'htj2k-rpcl',
    name: 'HTJ2K Lossless RPCL',
    ts: '1.2.840.10008.1.2.4.202',
    source: 'int16',
    lossless: true,
    ojph: ['-reversible', 'true', '-prog_order', 'RPCL'],
  },
  {
    key: 'htj2k-lossy',
    name: 'HTJ2K lossy',
    ts: '1.2.840.10008.1.2.4.203',
    source: 'int16',
    lossless: false,
    ojph: ['-reversible', 'false', '-qstep', '0.0005'],
  },
];

const SOURCES: Record<Source, { bitsAllocated: 8 | 16; bitsStored: number; signed: boolean }> = {
  int16: { bitsAllocated: 16, bitsStored: 16, signed: true },
  uint12: { bitsAllocated: 16, bitsStored: 12, signed: false },
  uint8: { bitsAllocated: 8, bitsStored: 8, signed: false },
};

const frameInfo = (source: Source): FrameInfo => monochromeFrameInfo(NY, NX, SOURCES[source]);

const sourcePath = (source: Source): string => join(ROOT, `source-${source}.raw`);
const fileName = (z: number): string => `z${String(z).padStart(3, '0')}.dcm`;
const caseDir = (c: Case): string => join(ROOT, c.key);
const complete = (c: Case): boolean => existsSync(caseDir(c)) && readdirSync(caseDir(c)).length === SLICES.length;
const run = (cmd: string, args: string[]): void => {
  execFileSync(cmd, args, { stdio: 'pipe' });
};

/** The samples of each source, slices in SLICES order, little-endian. */
function sources(): Record<Source, Buffer> {
  const all: Source[] = ['int16', 'uint12', 'uint8'];
  if (all.every((s) => existsSync(sourcePath(s))))
    return Object.fromEntries(all.map((s) => [s, readFileSync(sourcePath(s))])) as Record<Source, Buffer>;
  const plane = NX * NY;
  const int16 = new Int16Array(plane * SLICES.length);
  const uint12 = new Uint16Array(plane * SLICES.length);
  const uint8 = new Uint8Array(plane * SLICES.length);
  let z = 0;
  for (const slice of phantomSlices()) {
    const k = SLICES.indexOf(z++);
    if (k < 0) continue;
    for (let i = 0; i < plane; i++) {
      const hu = slice[i];
      int16[k * plane + i] = hu;
      uint12[k * plane + i] = Math.min(4095, Math.max(0, hu + 1024));
      uint8[k * plane + i] = Math.min(255, Math.max(0, Math.round(((hu - (40 - 200)) / 400) * 255)));
    }
  }
  mkdirSync(ROOT, { recursive: true });
  const out = { int16: Buffer.from(int16.buffer), uint12: Buffer.from(uint12.buffer), uint8: Buffer.from(uint8.buffer) };
  for (const s of all) writeFileSync(sourcePath(s), out[s]);
  return out;
}

const frameBytes = (source: Source): number => NX * NY * (SOURCES[source].bitsAllocated / 8);
const sliceOf = (src: Record<Source, Buffer>, source: Source, k: number): Buffer =>
  src[source].subarray(k * frameBytes(source), (k + 1) * frameBytes(source));

function elements(c: Case, k: number, pixels: Buffer) {
  const s = SOURCES[c.source];
  const uid = `1.2.826.0.1.3680043.10.1453.700.${CASES.indexOf(c) + 1}`;
  return imageElements({
    rows: NY,
    columns: NX,
    bitsAllocated: s.bitsAllocated,
    bitsStored: s.bitsStored,
    signed: s.signed,
    pixels:
      s.bitsAllocated === 8
        ? new Uint8Array(pixels)
        : s.signed
          ? new Int16Array(new Uint8Array(pixels).buffer)
          : new Uint16Array(new Uint8Array(pixels).buffer),
    seriesInstanceUid: uid,
    sopInstanceUid: `${uid}.${k + 1}`,
    instanceNumber: k + 1,
    imagePositionPatient: [-200, -200, -SLICES[k] * 0.625],
    imageOrientationPatient: [1, 0, 0, 0, 1, 0],
    pixelSpacing: [0.78125, 0.78125],
  });
}

/**
 * A conformant signed 16-bit HTJ2K codestream of `pixels` (Int16 LE) from ojph_compress
 * (bench/htj2k.ts). With `rawWords`, ojph_compress is handed the words themselves with
 * -signed true instead, which it reads as unsigned (0 .. 65535 under a signed header).
 */
function ojphSigned16(pixels: Uint8Array, work: string, options: string[], rawWords = false): Buffer {
  const raw = join(work, 'frame.yuv');
  const out = join(work, 'frame.j2c');
  writeFileSync(raw, rawWords ? pixels : offsetToUnsigned(pixels));
  const args = ojphArgs(raw, out, NX, NY, options);
  if (rawWords) args[args.indexOf('-signed') + 1] = 'true';
  run('ojph_compress', args);
  const j2c = readFileSync(out);
  return rawWords ? j2c : markSigned(j2c);
}

function ensureFrames(src: Record<Source, Buffer>): void {
  const missing = CASES.filter((c) => !complete(c));
  if (missing.length === 0) return;
  console.log(`transcoding ${missing.map((c) => c.key).join(', ')} under ${ROOT} (once; later runs reuse them)`);
  for (const c of missing) {
    const t = performance.now();
    const partial = join(ROOT, `${c.key}.partial`);
    const work = join(ROOT, `${c.key}.work`);
    rmSync(partial, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    mkdirSync(work, { recursive: true });
    SLICES.forEach((z, k) => {
      const pixels = sliceOf(src, c.source, k);
      const target = join(partial, fileName(z));
      if (c.ojph) {
        const j2c = ojphSigned16(pixels, work, c.ojph);
        const e = elements(c, k, Buffer.alloc(0));
        writeFileSync(target, writeDicom(e, { transferSyntax: c.ts, encapsulated: [j2c] }));
      } else {
        const plain = join(work, 'plain.dcm');
        writeFileSync(plain, writeDicom(elements(c, k, pixels)));
        const [cmd, args] = c.tool!(plain, target);
        run(cmd, args);
      }
      const ts = parseDicom(readFileSync(target)).transferSyntaxUid;
      if (ts !== c.ts) throw new Error(`${c.name}: ${fileName(z)} is in ${ts}, not ${c.ts}`);
    });
    rmSync(work, { recursive: true, force: true });
    rmSync(caseDir(c), { recursive: true, force: true });
    renameSync(partial, caseDir(c));
    console.log(`  ${c.name.padEnd(22)} ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
}

const encodedFrames = (c: Case): Uint8Array[] =>
  SLICES.map((z) => {
    const parsed = parseDicom(readFileSync(join(caseDir(c), fileName(z))));
    return encapsulatedFrames(parsed.dataset.buf, parsed.pixelData!, 1)[0];
  });

/** Sample i of a little-endian frame of the source's layout. */
const sampleAt = (source: Source, bytes: Uint8Array, i: number): number => {
  if (source === 'uint8') return bytes[i];
  const word = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  return source === 'int16' ? (word << 16) >> 16 : word & 0xfff;
};

/** Decodes every frame once with `name`: the largest error against the source, or why it failed. */
function check(
  name: DecoderName,
  c: Case,
  frames: Uint8Array[],
  src: Record<Source, Buffer>,
  target: Uint8Array,
): { maxError: number } | { error: string } {
  const info = frameInfo(c.source);
  let maxError = 0;
  for (let k = 0; k < frames.length; k++) {
    try {
      decodeFrameWith(name, c.ts, frames[k], info, target);
    } catch (err) {
      return { error: (err as Error).message };
    }
    const expected = sliceOf(src, c.source, k);
    for (let i = 0; i < NX * NY; i++) {
      const e = Math.abs(sampleAt(c.source, target, i) - sampleAt(c.source, expected, i));
      if (e > maxError) maxError = e;
    }
  }
  return { maxError };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Timing {
  name: DecoderName;
  status: string;
  ok: boolean;
  msPerFrame: number;
  rounds: number;
}

function measureCase(c: Case, src: Record<Source, Buffer>): { timings: Timing[]; encodedBytes: number } {
  const frames = encodedFrames(c);
  const info = frameInfo(c.source);
  const target = new Uint8Array(frameBytes(c.source));
  const timings: Timing[] = [];
  const runnable: Timing[] = [];
  for (const name of candidateDecoders(c.ts)) {
    loadDecoder(name);
    const result = check(name, c, frames, src, target);
    const t: Timing = { name, status: '', ok: false, msPerFrame: Number.NaN, rounds: 0 };
    if ('error' in result) {
      const why = result.error.split(`${name}: `).pop() ?? result.error;
      t.status = `refused (${why})`;
    } else {
      t.ok = c.lossless ? result.maxError === 0 : true;
      t.status = result.maxError === 0 ? 'exact' : `max error ${result.maxError}`;
      runnable.push(t);
    }
    timings.push(t);
  }
  // Rounds of all frames, decoders interleaved, so a passing disturbance touches them alike.
  const times = new Map<DecoderName, number[]>(runnable.map((t) => [t.name, []]));
  const spent = new Map<DecoderName, number>(runnable.map((t) => [t.name, 0]));
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (round >= MIN_ROUNDS && runnable.every((t) => spent.get(t.name)! >= MIN_MS)) break;
    for (const t of runnable) {
      const t0 = performance.now();
      for (const f of frames) decodeFrameWith(t.name, c.ts, f, info, target);
      const ms = performance.now() - t0;
      times.get(t.name)!.push(ms / frames.length);
      spent.set(t.name, spent.get(t.name)! + ms);
    }
  }
  for (const t of runnable) {
    t.msPerFrame = median(times.get(t.name)!);
    t.rounds = times.get(t.name)!.length;
  }
  return { timings, encodedBytes: frames.reduce((n, f) => n + f.length, 0) };
}

// ---------------------------------------------------------------------------------------------
// Signed HTJ2K: what each decoder makes of conformant codestreams and of ojph_compress's own
// signed input

function signedCheck(src: Record<Source, Buffer>): void {
  const work = join(ROOT, 'signed.work');
  mkdirSync(work, { recursive: true });
  const info = frameInfo('int16');
  const target = new Uint8Array(frameBytes('int16'));
  const pixels = sliceOf(src, 'int16', 4);
  const expected = new Int16Array(new Uint8Array(pixels).buffer);
  let negatives = 0;
  for (const v of expected) if (v < 0) negatives++;
  console.log(
    `\nsigned HTJ2K, slice z = ${SLICES[4]} (${negatives} of ${expected.length} samples negative): decoded signed as the codestream says, and as decodeFrame returns it`,
  );
  const kinds: [string, Buffer][] = [
    ['conformant (offset input, SIZ signed)', ojphSigned16(pixels, work, ['-reversible', 'true'])],
    ['ojph_compress -signed true, raw words', ojphSigned16(pixels, work, ['-reversible', 'true'], true)],
  ];
  rmSync(work, { recursive: true, force: true });
  for (const [kind, j2c] of kinds) {
    for (const name of ['dcmjs-codecs', 'openjph'] as DecoderName[]) {
      const count = (restore: boolean): string => {
        decodeFrameWith(name, '1.2.840.10008.1.2.4.201', j2c, info, target, { restoreOutOfRange: restore });
        const got = new Int16Array(target.buffer, target.byteOffset, expected.length);
        let max = 0;
        let wrong = 0;
        for (let i = 0; i < expected.length; i++) {
          if (got[i] !== expected[i]) wrong++;
          if (expected[i] < 0 && got[i] === 32767) max++;
        }
        return `${String(max).padStart(6)} negatives as 32767, ${String(wrong).padStart(6)} wrong`;
      };
      console.log(`  ${kind.padEnd(40)} ${name.padEnd(13)} signed: ${count(false)}   with out-of-range words restored: ${count(true)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What a worker thread pays to start

interface Startup {
  importMs: number;
  initMs: number;
  instantiateMs: Record<string, number>;
}

const CODECS_URL = new URL('../src/dicom/codecs.ts', import.meta.url);

function startupOnce(): Promise<Startup & { totalMs: number }> {
  const t0 = performance.now();
  // Started as DecodePool starts a worker from the sources (tsx registered first).
  const code = `
    const { parentPort } = require('node:worker_threads');
    const t0 = performance.now();
    import('tsx/esm/api').then(async (tsx) => {
      tsx.register();
      const codecs = await import(${JSON.stringify(CODECS_URL.href)});
      const t1 = performance.now();
      await codecs.initCodecs();
      const t2 = performance.now();
      const instantiateMs = {};
      for (const name of ${JSON.stringify(DECODER_NAMES.filter((n) => n !== 'dcmjs-codecs'))}) {
        const t = performance.now();
        codecs.loadDecoder(name);
        instantiateMs[name] = performance.now() - t;
      }
      parentPort.postMessage({ importMs: t1 - t0, initMs: t2 - t1, instantiateMs });
    });`;
  const worker = new Worker(code, { eval: true });
  return new Promise((ok, fail) => {
    worker.once('message', (m: Startup) => {
      const totalMs = performance.now() - t0;
      worker.terminate().then(() => ok({ ...m, totalMs }), fail);
    });
    worker.once('error', fail);
  });
}

async function startup(): Promise<void> {
  const runs: (Startup & { totalMs: number })[] = [];
  for (let i = 0; i < 5; i++) runs.push(await startupOnce());
  const m = (f: (r: Startup & { totalMs: number }) => number): string => median(runs.map(f)).toFixed(0).padStart(4);
  console.log('\nworker thread start-up (median of 5 fresh workers, from the TypeScript sources through tsx as the pool starts them)');
  console.log(`  new Worker to codecs.ts imported (thread, tsx, dcmjs-codecs' script): ${m((r) => r.importMs)} ms`);
  console.log(`  initCodecs (dcmjs-codecs instantiated, the other modules compiled):    ${m((r) => r.initMs)} ms`);
  for (const name of Object.keys(runs[0].instantiateMs)) {
    console.log(`  first frame of a syntax decoded by ${name.padEnd(14)} instantiates it: ${m((r) => r.instantiateMs[name])} ms`);
  }
  console.log(`  whole (new Worker to every module ready):                              ${m((r) => r.totalMs)} ms`);
}

// ---------------------------------------------------------------------------------------------

const load0 = loadavg()[0];
const src = sources();
ensureFrames(src);
await initCodecs();

const short = (ts: string): string => ts.replace('1.2.840.10008.1.2.', '.');
const cell = (t: Timing | undefined, mb: number): string =>
  !t
    ? ''.padEnd(36)
    : t.rounds === 0
      ? t.status.slice(0, 36).padEnd(36)
      : `${t.msPerFrame.toFixed(2).padStart(7)} ms ${(mb / t.msPerFrame).toFixed(0).padStart(5)} MB/s ${t.status.padEnd(14).slice(0, 14)}`;

console.log(`\none thread, ${SLICES.length} frames of ${NX}x${NY} per syntax; ms per frame (median of rounds) and MB/s of decoded samples`);
console.log(
  `  ${'syntax'.padEnd(22)} ${'ts'.padEnd(6)} ${'ratio'.padStart(6)}  ${'dcmjs-codecs'.padEnd(36)} ${'other'.padEnd(14)} ${''.padEnd(36)} ${'dcmjs/other'.padStart(11)}  used`,
);
const failures: string[] = [];
for (const c of CASES) {
  const { timings, encodedBytes } = measureCase(c, src);
  const mb = frameBytes(c.source) / 1000; // decoded MB per frame, so MB / ms * 1000 = MB/s
  const ratio = (frameBytes(c.source) * SLICES.length) / encodedBytes;
  const base = timings.find((t) => t.name === 'dcmjs-codecs');
  const others = timings.filter((t) => t.name !== 'dcmjs-codecs');
  const chosen = decoderFor(c.ts);
  const head = `  ${c.name.padEnd(22)} ${short(c.ts).padEnd(6)} ${`${ratio.toFixed(2)}:1`.padStart(6)}  ${cell(base, mb)}`;
  if (others.length === 0) console.log(`${head} ${'(none)'.padEnd(14)} ${''.padEnd(36)} ${''.padStart(11)}  ${chosen}`);
  others.forEach((t, i) => {
    const speedUp = base && base.rounds > 0 && t.rounds > 0 ? `${(base.msPerFrame / t.msPerFrame).toFixed(2)}x` : '-';
    const line = `${i === 0 ? head : `  ${''.padEnd(22)} ${''.padEnd(6)} ${''.padStart(6)}  ${''.padEnd(36)}`} ${t.name.padEnd(14)} ${cell(t, mb)} ${speedUp.padStart(11)}`;
    console.log(`${line}  ${i === 0 ? chosen : ''}`);
  });
  for (const t of timings) if (t.rounds === 0 || !t.ok) failures.push(`${c.name} / ${t.name}: ${t.status}`);
}
console.log('  ratio: source bytes / encoded bytes; check: exact (lossless and equal to the source) or the largest error against it;');
console.log("  dcmjs/other: dcmjs-codecs time over the other decoder's (above 1: the other is faster); used: the decoder codecs.ts picks");
if (failures.length > 0) console.log(`  refused or not exact:\n${failures.map((f) => `    ${f}`).join('\n')}`);

signedCheck(src);
await startup();
console.log(`\nload average (1 min) before / after: ${load0.toFixed(2)} / ${loadavg()[0].toFixed(2)} (other work on the machine shows as noise)`);
