/**
 * Compressed transfer syntaxes, end to end: series generated in code are transcoded by dcmtk
 * (dcmcjpeg, dcmcjpls, dcmcrle), GDCM (gdcmconv) and OpenJPH (ojph_compress, wrapped here into
 * DICOM), served (frames decoded in the server's worker pool), and /raw compared with the
 * original values: bit-exact for every lossless syntax, within a stated tolerance for lossy ones.
 * Signed 16-bit data with negative values is used throughout, HTJ2K included: conformant signed
 * codestreams, and those ojph_compress writes from signed raw input, whose samples are the
 * words read as unsigned (src/dicom/codecs.ts restores them). Each syntax is decoded by the
 * decoder src/dicom/codecs.ts chooses for it (checked frame by frame in this thread), and
 * frames that cannot be decoded are refused with DicomParseError, however often.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import {
  canDecode,
  type DecoderName,
  decodedFrameBytes,
  declaredFrameSize,
  decodeFrame,
  decodeFrameInto,
  decodeFrameWith,
  decoderFor,
  decoderInstances,
  decoderUsage,
  type FrameInfo,
  initCodecs,
  monochromeFrameInfo,
} from '../../src/dicom/codecs.js';
import { encapsulatedFrames } from '../../src/dicom/frames.js';
import { DicomParseError, parseDicom } from '../../src/dicom/parser.js';
import { writeDicom, imageElements } from '../../src/dicom/writer.js';
import { createServer, type Server } from '../../src/server.js';
import { TempDir, writeSeries } from '../fixtures/series.js';
import { describeWithTools } from './pydicomEnv.js';

const NX = 48;
const NY = 40;
const NZ = 5;

/** CT-like signed values: air, tissue and bone, with texture, -1024 .. 1900. */
const signed16 = (x: number, y: number, k: number): number => {
  const r = Math.hypot(x - 24, y - 20);
  if (r > 18) return -1000 - ((x * 7 + y * 3 + k) % 24);
  if (r > 15) return 1200 + ((x * 13 + y * 7 + k * 5) % 700);
  return 20 + ((x * 31 + y * 17 + k * 11) % 90) - 45;
};
const unsigned12 = (x: number, y: number, k: number): number => (x * 83 + y * 29 + k * 301) % 4096;
const unsigned8 = (x: number, y: number, k: number): number => (x * 5 + y * 3 + k * 17) % 256;

interface Case {
  ts: string;
  name: string;
  source: 'signed16' | 'unsigned12' | 'unsigned8';
  /** Transcodes one file in place; `raw` is the file's samples for encoders that take raw input. */
  transcode: (file: string, dir: string) => void;
  /** Largest absolute error allowed (0: lossless). */
  tolerance: number;
}

const run = (cmd: string, args: string[]): void => {
  execFileSync(cmd, args, { stdio: 'pipe' });
};
const inPlace =
  (cmd: string, args: string[]) =>
  (file: string): void => {
    run(cmd, [...args, file, `${file}.out`]);
    run('mv', [`${file}.out`, file]);
  };

/**
 * HTJ2K with OpenJPH's encoder from the file's raw samples, wrapped into DICOM here. Conformant:
 * the signed samples are handed over offset to unsigned (ojph_compress takes the offset off
 * again before coding) and the codestream's SIZ then says signed, as a signed encoder writes it.
 * `rawWords`: the two's complement words themselves with -signed true, which ojph_compress reads
 * as unsigned (values 0 .. 65535 under a signed 16-bit header).
 */
const htj2k =
  (ts: string, extra: string[], rawWords = false) =>
  (file: string, dir: string): void => {
    const parsed = parseDicom(readFileSync(file));
    const px = parsed.pixelData!;
    const samples = new Uint8Array(parsed.dataset.buf.subarray(px.offset, px.offset + px.length));
    if (!rawWords) for (let i = 1; i < samples.length; i += 2) samples[i] ^= 0x80;
    const rawPath = join(dir, 'frame.yuv');
    writeFileSync(rawPath, samples);
    const out = join(dir, 'frame.j2c');
    run('ojph_compress', [
      '-i',
      rawPath,
      '-o',
      out,
      '-dims',
      `{${NX},${NY}}`,
      '-num_comps',
      '1',
      '-signed',
      rawWords ? 'true' : 'false',
      '-bit_depth',
      '16',
      '-downsamp',
      '{1,1}',
      ...extra,
    ]);
    const j2c = readFileSync(out);
    // SOC, then SIZ: Ssiz of the first component (bit 7: signed) is byte 42.
    expect(j2c.readUInt16BE(0) === 0xff4f && j2c.readUInt16BE(2) === 0xff51, 'SIZ right after SOC').toBe(true);
    expect(j2c[42] & 0x7f, 'Ssiz depth').toBe(15);
    if (!rawWords) j2c[42] |= 0x80;
    const elements = imageElements({
      rows: NY,
      columns: NX,
      bitsAllocated: 16,
      signed: true,
      pixels: new Int16Array(0),
      seriesInstanceUid: parsed.dataset.string(0x0020000e)!,
      sopInstanceUid: parsed.dataset.string(0x00080018)!,
      instanceNumber: parsed.dataset.number(0x00200013),
      imagePositionPatient: parsed.dataset.numbers(0x00200032),
      imageOrientationPatient: parsed.dataset.numbers(0x00200037),
      pixelSpacing: parsed.dataset.numbers(0x00280030),
    });
    writeFileSync(file, writeDicom(elements, { transferSyntax: ts, encapsulated: [j2c] }));
  };

const CASES: Case[] = [
  { ts: '1.2.840.10008.1.2.4.70', name: 'JPEG Lossless SV1 (dcmcjpeg)', source: 'signed16', transcode: inPlace('dcmcjpeg', ['+e1']), tolerance: 0 },
  { ts: '1.2.840.10008.1.2.4.57', name: 'JPEG Lossless (dcmcjpeg +el)', source: 'signed16', transcode: inPlace('dcmcjpeg', ['+el']), tolerance: 0 },
  { ts: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless (dcmcjpls)', source: 'signed16', transcode: inPlace('dcmcjpls', []), tolerance: 0 },
  { ts: '1.2.840.10008.1.2.5', name: 'RLE Lossless (dcmcrle)', source: 'signed16', transcode: inPlace('dcmcrle', []), tolerance: 0 },
  {
    ts: '1.2.840.10008.1.2.4.90',
    name: 'JPEG 2000 Lossless (gdcmconv)',
    source: 'signed16',
    transcode: inPlace('gdcmconv', ['--j2k']),
    tolerance: 0,
  },
  {
    ts: '1.2.840.10008.1.2.4.201',
    name: 'HTJ2K Lossless (ojph, LRCP)',
    source: 'signed16',
    transcode: htj2k('1.2.840.10008.1.2.4.201', ['-reversible', 'true', '-prog_order', 'LRCP']),
    tolerance: 0,
  },
  {
    ts: '1.2.840.10008.1.2.4.201',
    name: 'HTJ2K Lossless, signed raw input read as unsigned words (ojph -signed true)',
    source: 'signed16',
    transcode: htj2k('1.2.840.10008.1.2.4.201', ['-reversible', 'true'], true),
    tolerance: 0,
  },
  {
    ts: '1.2.840.10008.1.2.4.202',
    name: 'HTJ2K Lossless RPCL (ojph)',
    source: 'signed16',
    transcode: htj2k('1.2.840.10008.1.2.4.202', ['-reversible', 'true', '-prog_order', 'RPCL']),
    tolerance: 0,
  },
  {
    ts: '1.2.840.10008.1.2.4.70',
    name: 'JPEG Lossless SV1, 12-bit unsigned',
    source: 'unsigned12',
    transcode: inPlace('dcmcjpeg', ['+e1']),
    tolerance: 0,
  },
  { ts: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless, 12-bit unsigned', source: 'unsigned12', transcode: inPlace('dcmcjpls', []), tolerance: 0 },
  { ts: '1.2.840.10008.1.2.4.90', name: 'JPEG 2000 Lossless, 8-bit', source: 'unsigned8', transcode: inPlace('gdcmconv', ['--j2k']), tolerance: 0 },
  // Lossy: tolerances are about 1.5 times the largest error these encoder settings gave here
  // (J2K 25 and HTJ2K 42 on a range of 2924; JPEG 12-bit 7 of 4095; baseline 6 of 255).
  {
    ts: '1.2.840.10008.1.2.4.91',
    name: 'JPEG 2000 lossy (gdcmconv --lossy)',
    source: 'signed16',
    transcode: inPlace('gdcmconv', ['--j2k', '--lossy', '-q', '80']),
    tolerance: 40,
  },
  {
    ts: '1.2.840.10008.1.2.4.203',
    name: 'HTJ2K lossy (ojph irreversible)',
    source: 'signed16',
    transcode: htj2k('1.2.840.10008.1.2.4.203', ['-reversible', 'false', '-qstep', '0.0005']),
    tolerance: 60,
  },
  {
    ts: '1.2.840.10008.1.2.4.203',
    name: 'HTJ2K lossy, signed raw input read as unsigned words',
    source: 'signed16',
    transcode: htj2k('1.2.840.10008.1.2.4.203', ['-reversible', 'false', '-qstep', '0.0005'], true),
    tolerance: 60,
  },
  {
    ts: '1.2.840.10008.1.2.4.51',
    name: 'JPEG Extended 12-bit (dcmcjpeg +ee)',
    source: 'unsigned12',
    transcode: inPlace('dcmcjpeg', ['+ee', '+q', '95']),
    tolerance: 12,
  },
  {
    ts: '1.2.840.10008.1.2.4.81',
    name: 'JPEG-LS near-lossless (dcmcjpls +en, error 2)',
    source: 'unsigned12',
    transcode: inPlace('dcmcjpls', ['+en', '+md', '2']),
    tolerance: 2,
  },
  {
    ts: '1.2.840.10008.1.2.4.50',
    name: 'JPEG Baseline 8-bit (dcmcjpeg +eb)',
    source: 'unsigned8',
    transcode: inPlace('dcmcjpeg', ['+eb', '+q', '95']),
    tolerance: 10,
  },
];

const SOURCES = {
  signed16: { value: signed16, signed: true, bitsAllocated: 16 as const, bitsStored: 16 },
  unsigned12: { value: unsigned12, signed: false, bitsAllocated: 16 as const, bitsStored: 12 },
  unsigned8: { value: unsigned8, signed: false, bitsAllocated: 8 as const, bitsStored: 8 },
};

/** The decoder of each syntax (the fastest that passes these suites; see src/dicom/codecs.ts). */
const CHOSEN: Record<string, DecoderName> = {
  '1.2.840.10008.1.2.4.50': 'libjpeg-turbo',
  '1.2.840.10008.1.2.4.51': 'dcmjs-codecs',
  '1.2.840.10008.1.2.4.57': 'dcmjs-codecs',
  '1.2.840.10008.1.2.4.70': 'dcmjs-codecs',
  '1.2.840.10008.1.2.4.80': 'charls',
  '1.2.840.10008.1.2.4.81': 'charls',
  '1.2.840.10008.1.2.4.90': 'dcmjs-codecs',
  '1.2.840.10008.1.2.4.91': 'dcmjs-codecs',
  '1.2.840.10008.1.2.4.201': 'openjph',
  '1.2.840.10008.1.2.4.202': 'openjph',
  '1.2.840.10008.1.2.4.203': 'openjph',
  '1.2.840.10008.1.2.5': 'dcmjs-codecs',
};

const frameInfoOf = (source: keyof typeof SOURCES): FrameInfo => monochromeFrameInfo(NY, NX, SOURCES[source]);

/** Bytes that no decoder reads as a frame: random, a marker and garbage, a truncated header. */
const GARBAGE: Uint8Array[] = [
  new Uint8Array(0),
  Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919 + (i >> 3)) & 255),
  Uint8Array.from([0xff, 0xd8, 0xff, 0xf7, 0x00, 0x0b, 0x10, 0x00, 0x28, 0x00, 0x30]),
  Uint8Array.from([0xff, 0x4f, 0xff, 0x51, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30]),
  // Headers that declare this image (48 x 40, one component) and then garbage: they reach the decoders.
  Uint8Array.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, NY, 0x00, NX, 0x01, 0x01, 0x11, 0x00, 0x13, 0x57, 0x9b, 0xff, 0xd9]),
  Uint8Array.from([0xff, 0xd8, 0xff, 0xf7, 0x00, 0x0b, 0x10, 0x00, NY, 0x00, NX, 0x01, 0x01, 0x11, 0x00, 0x13, 0x57, 0x9b, 0xff, 0xd9]),
];

/** A stream that declares `width` x `height` with one component, and nothing else worth decoding. */
const declaring = (sof: number, width: number, height: number): Uint8Array =>
  Uint8Array.from([0xff, 0xd8, 0xff, sof, 0x00, 0x0b, 0x10, height >> 8, height & 255, width >> 8, width & 255, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);

describe('decoder choice and refusals', () => {
  beforeAll(() => initCodecs());

  it('each syntax goes to its decoder', () => {
    for (const [ts, name] of Object.entries(CHOSEN)) {
      expect(canDecode(ts), ts).toBe(true);
      expect(decoderFor(ts), ts).toBe(name);
    }
    expect(canDecode('1.2.840.10008.1.2.4.100')).toBe(false);
    expect(decoderFor('1.2.840.10008.1.2.4.100')).toBeUndefined();
  });

  it('frames that are not frames are refused with DicomParseError in every syntax, and so is a target of the wrong size', () => {
    for (const ts of Object.keys(CHOSEN)) {
      for (const bytes of GARBAGE) {
        for (const info of [frameInfoOf('signed16'), frameInfoOf('unsigned8')]) {
          expect(() => decodeFrame(ts, bytes, info), `${ts}, ${bytes.length} bytes`).toThrow(DicomParseError);
        }
      }
      const info = frameInfoOf('signed16');
      expect(() => decodeFrameInto(ts, GARBAGE[1], info, new Uint8Array(decodedFrameBytes(info) - 2))).toThrow(
        /needs 3840 bytes, the target has 3838/,
      );
    }
    expect(() => decodeFrame('1.2.840.10008.1.2.4.100', GARBAGE[1], frameInfoOf('signed16'))).toThrow(/has no decoder/);
  });
});

describeWithTools('compressed transfer syntaxes (dcmtk, GDCM, OpenJPH)', ['dcmcjpeg', 'dcmcjpls', 'dcmcrle', 'gdcmconv', 'ojph_compress'], () => {
  let tmp: TempDir;
  let server: Server;
  const uidOf = (i: number) => `1.2.826.0.1.3680043.10.1453.77.${i + 1}`;
  /** Each case's files, slice k at index k. */
  const caseFiles: string[][] = [];

  beforeAll(async () => {
    tmp = new TempDir();
    CASES.forEach((c, i) => {
      const src = SOURCES[c.source];
      const dir = join(tmp.path, uidOf(i));
      const files = writeSeries(dir, {
        uid: uidOf(i),
        columns: NX,
        rows: NY,
        slices: NZ,
        signed: src.signed,
        bitsAllocated: src.bitsAllocated,
        bitsStored: src.bitsStored,
        value: src.value,
      });
      caseFiles[i] = files;
      const work = join(tmp.path, `work-${i}`);
      run('mkdir', ['-p', work]);
      for (const f of files) c.transcode(f, work);
      rmSync(work, { recursive: true, force: true });
      // Every file really is in the syntax under test.
      for (const f of readdirSync(dir)) expect(parseDicom(readFileSync(join(dir, f))).transferSyntaxUid, `${c.name}: ${f}`).toBe(c.ts);
    });
    // Two decoding workers: every frame below is decoded in the pool, not on the event loop.
    server = createServer(loadConfig({ flags: { dataDir: tmp.path, decodeWorkers: 2 }, env: {} }), { useIndex: false });
    await initCodecs();
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    tmp?.remove();
  });

  CASES.forEach((c, i) => {
    it(`${c.name} (${c.ts}) ${c.tolerance === 0 ? 'decodes bit-exactly' : `decodes within ${c.tolerance}`}`, async () => {
      const src = SOURCES[c.source];
      const res = await server.app.inject({ url: `/raw?series=${uidOf(i)}&format=voxels` });
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      const meta = (await server.app.inject({ url: `/metadata?series=${uidOf(i)}` })).json();
      expect(meta.voxelCount).toEqual([NX, NY, NZ]);
      const bytes = gunzipSync(res.rawPayload);
      const values =
        src.bitsAllocated === 8
          ? new Uint8Array(bytes)
          : src.signed
            ? new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2)
            : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
      expect(values.length).toBe(NX * NY * NZ);
      let maxError = 0;
      let sumError = 0;
      for (let z = 0; z < NZ; z++)
        for (let y = 0; y < NY; y++)
          for (let x = 0; x < NX; x++) {
            const e = Math.abs(values[x + NX * (y + NY * z)] - src.value(x, y, z));
            maxError = Math.max(maxError, e);
            sumError += e;
          }
      expect(maxError, `${c.name}: mean error ${(sumError / values.length).toFixed(3)}`).toBeLessThanOrEqual(c.tolerance);
    });
  });
  /** The encapsulated frame of slice k of case i. */
  const frameOf = (i: number, k: number): Uint8Array => {
    const parsed = parseDicom(readFileSync(caseFiles[i][k]));
    return encapsulatedFrames(parsed.dataset.buf, parsed.pixelData!, 1)[0];
  };

  /** The largest difference of decoded slice k of case i from the source values. */
  const worstError = (i: number, k: number, out: Uint8Array): number => {
    const src = SOURCES[CASES[i].source];
    expect(out.length).toBe(NX * NY * (src.bitsAllocated / 8));
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let worst = 0;
    for (let y = 0; y < NY; y++)
      for (let x = 0; x < NX; x++) {
        const j = x + NX * y;
        const got = src.bitsAllocated === 8 ? out[j] : src.signed ? view.getInt16(2 * j, true) : view.getUint16(2 * j, true) & 0xfff;
        worst = Math.max(worst, Math.abs(got - src.value(x, y, k)));
      }
    return worst;
  };

  CASES.forEach((c, i) => {
    it(`${c.name} (${c.ts}): every frame is decoded by ${CHOSEN[c.ts]} ${c.tolerance === 0 ? 'bit-exactly' : `within ${c.tolerance}`}`, () => {
      for (let k = 0; k < NZ; k++) {
        const before = decoderUsage();
        const worst = worstError(i, k, decodeFrame(c.ts, frameOf(i, k), frameInfoOf(c.source)));
        const after = decoderUsage();
        expect(worst, `slice ${k}`).toBeLessThanOrEqual(c.tolerance);
        for (const name of Object.keys(after) as DecoderName[]) {
          expect(after[name] - before[name], `${name}, slice ${k}`).toBe(name === CHOSEN[c.ts] ? 1 : 0);
        }
      }
    });
  });

  it('signed HTJ2K: both decoders clamp what ojph_compress wrote from raw words to 32767, and read conformant codestreams as they are', () => {
    const conformant = CASES.findIndex((c) => c.ts === '1.2.840.10008.1.2.4.201' && !c.name.includes('unsigned words'));
    const rawWords = CASES.findIndex((c) => c.ts === '1.2.840.10008.1.2.4.201' && c.name.includes('unsigned words'));
    const info = frameInfoOf('signed16');
    const target = new Uint8Array(decodedFrameBytes(info));
    const negatives = (k: number): number => {
      let n = 0;
      for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) if (signed16(x, y, k) < 0) n++;
      return n;
    };
    for (const name of ['openjph', 'dcmjs-codecs'] as DecoderName[]) {
      for (const restoreOutOfRange of [false, true]) {
        decodeFrameWith(name, '1.2.840.10008.1.2.4.201', frameOf(conformant, 2), info, target, { restoreOutOfRange });
        expect(worstError(conformant, 2, target), `${name}, conformant`).toBe(0);
      }
      decodeFrameWith(name, '1.2.840.10008.1.2.4.201', frameOf(rawWords, 2), info, target, { restoreOutOfRange: false });
      const got = new Int16Array(target.buffer, target.byteOffset, NX * NY);
      expect(got.filter((v) => v === 32767).length, `${name}: every negative sample as 32767`).toBe(negatives(2));
      decodeFrameWith(name, '1.2.840.10008.1.2.4.201', frameOf(rawWords, 2), info, target);
      expect(worstError(rawWords, 2, target), `${name}, words restored`).toBe(0);
    }
  });

  it('a stream whose header declares another size is refused before any decoder allocates for it', () => {
    const instances = decoderInstances();
    const usage = decoderUsage();
    for (const [ts, sof] of [
      ['1.2.840.10008.1.2.4.80', 0xf7],
      ['1.2.840.10008.1.2.4.50', 0xc0],
    ] as const) {
      const huge = declaring(sof, 16000, 16000);
      expect(declaredFrameSize(huge)).toEqual({ width: 16000, height: 16000, components: 1 });
      expect(() => decodeFrame(ts, huge, frameInfoOf('signed16'))).toThrow(DicomParseError);
    }
    // A JPEG 2000 codestream: SOC, SIZ with Xsiz 16000, Ysiz 16000, no offsets, one component.
    const siz = new Uint8Array(47);
    const view = new DataView(siz.buffer);
    view.setUint16(0, 0xff4f);
    view.setUint16(2, 0xff51);
    view.setUint16(4, 41);
    view.setUint32(8, 16000);
    view.setUint32(12, 16000);
    view.setUint16(40, 1);
    expect(declaredFrameSize(siz)).toEqual({ width: 16000, height: 16000, components: 1 });
    expect(() => decodeFrame('1.2.840.10008.1.2.4.201', siz, frameInfoOf('signed16'))).toThrow(DicomParseError);
    // None of the WebAssembly decoders ran, nor was any made anew.
    expect(decoderInstances()).toEqual(instances);
    for (const name of ['openjph', 'charls', 'libjpeg-turbo'] as const) expect(decoderUsage()[name], name).toBe(usage[name]);
  });

  it('every decoder still decodes after many refused frames (its module renewed on the way)', () => {
    // Before modules were renewed and dcmjs-codecs' stack pointer put back, a dozen refusals were
    // enough to make decoders return garbage or loop for ever.
    const instances = decoderInstances();
    for (let round = 0; round < 20; round++) {
      for (const ts of Object.keys(CHOSEN))
        for (const bytes of GARBAGE) expect(() => decodeFrame(ts, bytes, frameInfoOf('signed16'))).toThrow(DicomParseError);
    }
    expect(decoderInstances()['libjpeg-turbo']).toBeGreaterThanOrEqual(instances['libjpeg-turbo'] + 20);
    CASES.forEach((c, i) => {
      const before = decoderUsage();
      expect(worstError(i, 0, decodeFrame(c.ts, frameOf(i, 0), frameInfoOf(c.source))), c.name).toBeLessThanOrEqual(c.tolerance);
      expect(decoderUsage()[CHOSEN[c.ts]] - before[CHOSEN[c.ts]], c.name).toBe(1);
    });
  });

  it('a frame decodes into a given array (shared memory, at an odd offset here) as into a new one', () => {
    CASES.forEach((c, i) => {
      const info = frameInfoOf(c.source);
      const bytes = decodedFrameBytes(info);
      const shared = new Uint8Array(new SharedArrayBuffer(bytes + 7), 5, bytes);
      decodeFrameInto(c.ts, frameOf(i, 1), info, shared);
      expect(worstError(i, 1, shared), c.name).toBeLessThanOrEqual(c.tolerance);
      expect(Buffer.from(shared).equals(decodeFrame(c.ts, frameOf(i, 1), info)), c.name).toBe(true);
    });
  });
});
