import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { tag, Tags, TransferSyntax } from '../src/dicom/tags.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { shuffled, TempDir, writeSeries, type SeriesSpec } from './fixtures/series.js';
import { fileInstances } from '../src/sources/fileInstance.js';

let tmp: TempDir;
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(() => tmp.remove());

const load = (files: string[], log?: (m: string) => void) => loadVolume(fileInstances(files), { maxVoxels: 1e8, log });

async function expectError(promise: Promise<unknown>, status: number, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CircusError);
  expect((err as CircusError).status).toBe(status);
  expect((err as CircusError).message).toMatch(pattern);
}

/** The slice index (k, writing order) found at each z, read from the voxel at (0,0): value 100k. */
const slicesAlongZ = (data: ArrayLike<number>, nx: number, ny: number, nz: number): number[] =>
  Array.from({ length: nz }, (_, z) => data[nx * ny * z] / 100);

describe('mapLimit', () => {
  it('starts nothing new after a failure and throws once the calls in flight have ended', async () => {
    const { mapLimit } = await import('../src/util/async.js');
    const started: number[] = [];
    let inFlight = 0;
    let settledAfterFailure = 0;
    let failed = false;
    const err = await mapLimit(
      Array.from({ length: 50 }, (_, i) => i),
      4,
      async (i) => {
        started.push(i);
        inFlight++;
        await new Promise((r) => setTimeout(r, i === 2 ? 1 : 10));
        inFlight--;
        if (failed) settledAfterFailure++;
        if (i === 2) {
          failed = true;
          throw new Error('slice 2 is bad');
        }
        return i;
      },
    ).catch((e: Error) => e);
    expect((err as Error).message).toBe('slice 2 is bad');
    expect(inFlight).toBe(0);
    expect(started.length).toBeLessThan(10);
    expect(settledAfterFailure).toBeGreaterThan(0);
  });
});

describe('slice order', () => {
  it('orders by position, not by file name, with InstanceNumber increasing along z', async () => {
    // Slice k sits at z = -2.5k (k = 0 highest); names are shuffled so file order is meaningless.
    const names = shuffled(Array.from({ length: 7 }, (_, k) => `file-${k}.dcm`));
    const files = writeSeries(tmp.path, { slices: 7, fileName: (k) => names[k] });
    const v = await load(shuffled(files, 3));
    expect(v.dims).toEqual([4, 3, 7]);
    expect(slicesAlongZ(v.data, 4, 3, 7)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(v.voxelSize).toEqual([0.5, 0.7, 2.5]); // x = PixelSpacing[1], y = PixelSpacing[0]
    expect(v.uniformSpacing).toBe(true);
    expect(v.geometry.origin).toEqual([-10, -20, 0]);
    expect(v.geometry.sliceDirection).toEqual([0, 0, -1]);
  });

  it('follows InstanceNumber when it increases with ascending position', async () => {
    // InstanceNumber 1 at the lowest slice (k = 6): z must start there.
    const files = writeSeries(tmp.path, { slices: 7, instanceNumber: (k) => 7 - k });
    const v = await load(files);
    expect(slicesAlongZ(v.data, 4, 3, 7)).toEqual([6, 5, 4, 3, 2, 1, 0]);
    expect(v.geometry.sliceDirection).toEqual([0, 0, 1]);
    expect(v.geometry.origin).toEqual([-10, -20, -15]);
  });

  it('runs z in decreasing projection when InstanceNumber is missing or not monotonic', async () => {
    const missing = writeSeries(join(tmp.path, 'a'), { slices: 5, instanceNumber: () => undefined, position: (k) => [0, 0, 3 * k] });
    const v1 = await load(missing);
    expect(slicesAlongZ(v1.data, 4, 3, 5)).toEqual([4, 3, 2, 1, 0]);
    const zigzag = [3, 1, 4, 2, 5];
    const mixed = writeSeries(join(tmp.path, 'b'), { slices: 5, instanceNumber: (k) => zigzag[k], position: (k) => [0, 0, 3 * k] });
    const v2 = await load(mixed);
    expect(slicesAlongZ(v2.data, 4, 3, 5)).toEqual([4, 3, 2, 1, 0]);
    expect(v2.voxelSize[2]).toBe(3);
  });

  it('projects on the normal of an oblique orientation', async () => {
    // Sagittal slices: rows along -y... row cosines (0,1,0), column cosines (0,0,-1): normal (-1,0,0).
    const files = writeSeries(tmp.path, {
      slices: 4,
      orientation: () => [0, 1, 0, 0, 0, -1],
      position: (k) => [2 * k, 5, 7],
      instanceNumber: () => undefined,
    });
    const v = await load(shuffled(files));
    // Projection on (-1,0,0) is -2k: decreasing projection means increasing k.
    expect(slicesAlongZ(v.data, 4, 3, 4)).toEqual([0, 1, 2, 3]);
    expect(v.voxelSize[2]).toBe(2);
    expect(v.geometry.sliceDirection).toEqual([1, 0, 0]);
  });

  it('serves gaps and says the spacing is not uniform; sz is the median distance', async () => {
    const z = [0, 2, 4, 8, 10];
    const files = writeSeries(tmp.path, { slices: 5, position: (k) => [0, 0, -z[k]] });
    const v = await load(files);
    expect(v.dims[2]).toBe(5);
    expect(v.uniformSpacing).toBe(false);
    expect(v.voxelSize[2]).toBe(2);
  });

  it('falls back to InstanceNumber, then SpacingBetweenSlices, without positions', async () => {
    const numbers = [5, 3, 1, 4, 2];
    const files = writeSeries(tmp.path, {
      slices: 5,
      position: null,
      instanceNumber: (k) => numbers[k],
      spacingBetweenSlices: 1.25,
      sliceThickness: 2,
    });
    const v = await load(files);
    expect(slicesAlongZ(v.data, 4, 3, 5)).toEqual([2, 4, 1, 3, 0]);
    expect(v.voxelSize[2]).toBe(1.25);
    expect(v.geometry.origin).toBeNull();
  });

  it('falls back to file order and SliceThickness without positions or instance numbers', async () => {
    const files = writeSeries(tmp.path, { slices: 3, position: null, instanceNumber: () => undefined, sliceThickness: 3 });
    const v = await load(files);
    expect(slicesAlongZ(v.data, 4, 3, 3)).toEqual([0, 1, 2]);
    expect(v.voxelSize[2]).toBe(3);
  });

  it('takes sz from SliceThickness, then 1, for a single slice', async () => {
    const v1 = await load(writeSeries(join(tmp.path, 'a'), { slices: 1, sliceThickness: 0.8 }));
    expect(v1.voxelSize[2]).toBe(0.8);
    const v2 = await load(writeSeries(join(tmp.path, 'b'), { slices: 1 }));
    expect(v2.voxelSize[2]).toBe(1);
  });
});

describe('series that cannot be one volume (422)', () => {
  const cases: [string, SeriesSpec, RegExp][] = [
    [
      'different Rows/Columns',
      { tweak: (k, s) => (k === 2 ? { ...s, rows: 2, pixels: s.pixels.slice(0, 8) } : s) },
      /slice IM0002\.dcm: Rows x Columns 2x4 differ from 3x4/,
    ],
    [
      'inconsistent orientation',
      { orientation: (k) => (k === 3 ? [1, 0, 0, 0, 0.99, 0.141] : [1, 0, 0, 0, 1, 0]) },
      /slice IM0003\.dcm: ImageOrientationPatient .* differs/,
    ],
    ['duplicate positions', { position: (k) => [0, 0, k === 4 ? -2.5 : -2.5 * k] }, /slice IM0004\.dcm: same position as slice IM0001\.dcm/],
    ['a colour image', { tweak: (k, s) => (k === 1 ? { ...s, photometricInterpretation: 'RGB' } : s) }, /slice IM0001\.dcm: colour image/],
    [
      'missing pixel data',
      { tweakElements: (k, e) => (k === 2 ? e.filter((x) => x.tag !== Tags.PixelData) : e) },
      /slice IM0002\.dcm: no pixel data/,
    ],
    [
      'mixed bit depths',
      { tweak: (k, s) => (k === 1 ? { ...s, bitsAllocated: 8, pixels: new Int8Array(12) } : s) },
      /slice IM0001\.dcm: bitsAllocated 8 differs from 16/,
    ],
    [
      'pixel data shorter than Rows x Columns',
      { tweak: (k, s) => (k === 0 ? { ...s, pixels: s.pixels.slice(0, 6) } : s) },
      /slice IM0000\.dcm: pixel data holds 12 bytes, 3x4 needs 24/,
    ],
  ];
  for (const [name, spec, message] of cases) {
    it(`refuses ${name}, naming the slice`, async () => {
      await expectError(load(writeSeries(tmp.path, spec)), 422, message);
    });
  }

  it('refuses a compressed transfer syntax, naming it', async () => {
    const files = writeSeries(tmp.path, { slices: 2 });
    // Rewrite the first file's meta to claim JPEG 2000 with encapsulated pixel data.
    const { writeDicom, imageElements } = await import('../src/dicom/writer.js');
    const elements = imageElements({
      rows: 3,
      columns: 4,
      bitsAllocated: 16,
      signed: true,
      pixels: new Int16Array(12),
      seriesInstanceUid: '1.2.3',
      sopInstanceUid: '1.2.3.4',
    }).filter((e) => e.tag !== Tags.PixelData);
    const body = writeDicom(elements, { transferSyntax: '1.2.840.10008.1.2.4.90' });
    // Encapsulated pixel data: (7FE0,0010) OB undefined length, empty offset table, one fragment, delimiter.
    const px = Buffer.alloc(12 + 8 + 8 + 4 + 8);
    let o = 0;
    o = px.writeUInt16LE(0x7fe0, o);
    o = px.writeUInt16LE(0x0010, o);
    o += px.write('OB', o, 'latin1');
    o += 2;
    o = px.writeUInt32LE(0xffffffff, o);
    o = px.writeUInt16LE(0xfffe, o);
    o = px.writeUInt16LE(0xe000, o);
    o = px.writeUInt32LE(0, o);
    o = px.writeUInt16LE(0xfffe, o);
    o = px.writeUInt16LE(0xe000, o);
    o = px.writeUInt32LE(4, o);
    o += 4;
    o = px.writeUInt16LE(0xfffe, o);
    o = px.writeUInt16LE(0xe0dd, o);
    px.writeUInt32LE(0, o);
    writeFileSync(files[0], Buffer.concat([body, px]));
    await expectError(load([files[0]]), 422, /transfer syntax JPEG 2000 Lossless \(1\.2\.840\.10008\.1\.2\.4\.90\)/);
  });

  it('refuses a series with no readable image', async () => {
    const p = join(tmp.path, 'notes.txt');
    writeFileSync(p, 'not a DICOM file at all');
    await expectError(load([p]), 422, /no readable DICOM image/);
  });
});

describe('pixel decoding', () => {
  it('reads every uncompressed transfer syntax to the same values', async () => {
    const syntaxes = [
      TransferSyntax.ImplicitLittle,
      TransferSyntax.ExplicitLittle,
      TransferSyntax.ExplicitBig,
      TransferSyntax.DeflatedExplicitLittle,
    ];
    for (const ts of syntaxes) {
      for (const signed of [true, false]) {
        for (const bits of [8, 16] as const) {
          const dir = join(tmp.path, `${ts}-${signed}-${bits}`);
          const value = (x: number, y: number, k: number) => (signed ? 0 - (x + 3 * y + 7 * k) + 0 : x + 3 * y + 7 * k + (bits === 16 ? 40000 : 200));
          const files = writeSeries(dir, { transferSyntax: ts, signed, bitsAllocated: bits, value, slices: 3, rows: 5, columns: 3 });
          const v = await load(files);
          const expected = (bits === 8 ? (signed ? PixelFormat.Int8 : PixelFormat.UInt8) : signed ? PixelFormat.Int16 : PixelFormat.UInt16) as number;
          expect(v.pixelFormat, `${ts} signed=${signed} bits=${bits}`).toBe(expected);
          const got = Array.from(v.data);
          const want: number[] = [];
          for (let k = 0; k < 3; k++) for (let y = 0; y < 5; y++) for (let x = 0; x < 3; x++) want.push(value(x, y, k));
          expect(got, `${ts} signed=${signed} bits=${bits}`).toEqual(want);
        }
      }
    }
  });

  it('masks bits above BitsStored and extends the sign of signed stored values', async () => {
    // 12 bits stored in 16: garbage in the top 4 bits (an overlay) must be ignored.
    const raw = [0x0000, 0x0fff, 0xf800, 0x07ff, 0xa123, 0x5801];
    const unsignedFiles = writeSeries(join(tmp.path, 'u'), {
      slices: 1,
      rows: 1,
      columns: 6,
      signed: false,
      bitsStored: 12,
      value: (x) => raw[x],
    });
    const u = await load(unsignedFiles);
    expect(Array.from(u.data)).toEqual([0, 4095, 2048, 2047, 0x123, 0x801]);
    const signedFiles = writeSeries(join(tmp.path, 's'), {
      slices: 1,
      rows: 1,
      columns: 6,
      signed: true,
      bitsStored: 12,
      value: (x) => (raw[x] << 16) >> 16,
    });
    const s = await load(signedFiles);
    expect(Array.from(s.data)).toEqual([0, -1, -2048, 2047, 0x123, -2047]);
  });

  it('shifts by HighBit when the stored bits are not the lowest', async () => {
    // BitsStored 12, HighBit 15: the value lives in the top 12 bits.
    const files = writeSeries(tmp.path, {
      slices: 1,
      rows: 1,
      columns: 3,
      signed: false,
      bitsStored: 12,
      highBit: 15,
      value: (x) => [0x0010, 0xfff0, 0x800f][x],
    });
    const v = await load(files);
    expect(Array.from(v.data)).toEqual([1, 4095, 2048]);
  });

  it('applies Rescale Slope/Intercept per slice and picks the narrowest exact format', async () => {
    // Unsigned CT with intercept -1024: Int16 HU.
    const ct = writeSeries(join(tmp.path, 'ct'), {
      signed: false,
      slices: 2,
      value: (x, _y, k) => 1000 + x + k,
      rescaleIntercept: () => -1024,
      rescaleSlope: () => 1,
    });
    const v1 = await load(ct);
    expect(v1.pixelFormat).toBe(PixelFormat.Int16);
    expect(v1.data[0]).toBe(1000 + 0 + 0 - 1024);
    expect(v1.minValue).toBe(-24);
    expect(v1.maxValue).toBe(1000 + 3 + 1 - 1024);
    // Different intercepts per slice.
    const per = writeSeries(join(tmp.path, 'per'), { slices: 2, value: () => 10, rescaleIntercept: (k) => (k === 0 ? 5 : -5) });
    const v2 = await load(per);
    expect([v2.data[0], v2.data[12]]).toEqual([15, 5]);
    expect(v2.pixelFormat).toBe(PixelFormat.Int16);
    // A fractional slope: Float32.
    const pet = writeSeries(join(tmp.path, 'pet'), { slices: 1, value: (x) => x, rescaleSlope: () => 0.25 });
    const v3 = await load(pet);
    expect(v3.pixelFormat).toBe(PixelFormat.Float32);
    expect(Array.from(v3.data.slice(0, 4))).toEqual([0, 0.25, 0.5, 0.75]);
    // A fractional slope whose results are all integers stays an integer format.
    const even = writeSeries(join(tmp.path, 'even'), { slices: 1, value: (x) => 2 * x, rescaleSlope: () => 0.5 });
    const v4 = await load(even);
    expect(v4.pixelFormat).toBe(PixelFormat.Int16);
    expect(Array.from(v4.data.slice(0, 4))).toEqual([0, 1, 2, 3]);
    // Unsigned values that overflow Int16 after rescale: Float32 (integers, but no integer format holds them).
    const wide = writeSeries(join(tmp.path, 'wide'), {
      signed: false,
      slices: 1,
      value: (x) => (x === 0 ? 0 : 65535),
      rescaleIntercept: () => -1024,
    });
    const v5 = await load(wide);
    expect(v5.pixelFormat).toBe(PixelFormat.Float32);
    expect([v5.data[0], v5.data[1]]).toEqual([-1024, 64511]);
    // 8-bit data whose rescaled values leave the 8-bit range widen to Int16.
    const small = writeSeries(join(tmp.path, 'small'), {
      bitsAllocated: 8,
      signed: false,
      slices: 1,
      value: (x) => 250 + x,
      rescaleIntercept: () => 100,
    });
    const v6 = await load(small);
    expect(v6.pixelFormat).toBe(PixelFormat.Int16);
    expect(Array.from(v6.data.slice(0, 4))).toEqual([350, 351, 352, 353]);
  });

  it('keeps padding out of the value range; padding below every value keeps its own value', async () => {
    const files = writeSeries(tmp.path, {
      signed: true,
      slices: 2,
      value: (x, y) => (x === 0 ? -2000 : 10 * y + x),
      pixelPaddingValue: -2000,
      rescaleIntercept: () => -1024,
    });
    const v = await load(files);
    expect(v.minValue).toBe(1 - 1024);
    expect(v.maxValue).toBe(23 - 1024);
    expect(v.data[0]).toBe(-2000 - 1024);
    expect(v.data[1]).toBe(1 - 1024);
    expect(v.pixelFormat).toBe(PixelFormat.Int16);
  });

  it('stores padding above the real values (0xFFFF) as the smallest real value', async () => {
    const files = writeSeries(tmp.path, {
      signed: false,
      slices: 1,
      value: (x, y) => (x === 0 ? 0xffff : 1000 + 10 * y + x),
      pixelPaddingValue: 0xffff,
      rescaleIntercept: () => -1024,
    });
    const v = await load(files);
    expect(v.pixelFormat).toBe(PixelFormat.Int16);
    expect([v.minValue, v.maxValue]).toEqual([1001 - 1024, 1023 - 1024]);
    expect([v.data[0], v.data[1]]).toEqual([1001 - 1024, 1001 - 1024]);
  });

  it('leaves a padding value of 0 below the data as it is (MR background)', async () => {
    const files = writeSeries(tmp.path, { signed: false, slices: 1, value: (x) => x * 5, pixelPaddingValue: 0 });
    const v = await load(files);
    expect(v.pixelFormat).toBe(PixelFormat.UInt16);
    expect(v.minValue).toBe(5);
    expect(Array.from(v.data.slice(0, 4))).toEqual([0, 5, 10, 15]);
  });

  it('records MONOCHROME1 and keeps the stored values', async () => {
    const v = await load(writeSeries(tmp.path, { photometricInterpretation: 'MONOCHROME1', slices: 1 }));
    expect(v.monochrome1).toBe(true);
    expect(v.data[5]).toBe(1 + 10);
  });

  it('skips truncated and foreign files with a logged reason', async () => {
    const files = writeSeries(tmp.path, { slices: 3 });
    const other = writeSeries(join(tmp.path, 'other'), { slices: 1, uid: '1.2.3.999' });
    const junk = join(tmp.path, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(300, 7));
    const truncated = join(tmp.path, 'cut.dcm');
    const { readFileSync } = await import('node:fs');
    writeFileSync(truncated, readFileSync(files[0]).subarray(0, 200));
    const messages: string[] = [];
    const v = await loadVolume(fileInstances([...files, ...other, junk, truncated]), {
      maxVoxels: 1e6,
      seriesInstanceUid: '1.2.392.200036.9116.2.6.1.48',
      log: (m) => messages.push(m),
    });
    expect(v.dims).toEqual([4, 3, 3]);
    expect(messages.join('\n')).toMatch(/skipped IM0000\.dcm: SeriesInstanceUID 1\.2\.3\.999 is not the series asked for/);
    expect(messages.join('\n')).toMatch(/skipped junk\.bin: not a DICOM file/);
    expect(messages.join('\n')).toMatch(/skipped cut\.dcm: file is truncated/);
  });

  it('refuses a volume over maxVoxels with 413 before reading pixel data', async () => {
    const files = writeSeries(tmp.path, { slices: 3 });
    await expectError(loadVolume(fileInstances(files), { maxVoxels: 35 }), 413, /4x3x3 = 36 voxels, more than the limit maxVoxels \(35\)/);
  });

  it('reads the DICOM window of each slice', async () => {
    const v = await load(writeSeries(tmp.path, { slices: 2, windowCenter: 40, windowWidth: 400 }));
    expect(v.sliceWindows).toEqual([
      { level: 40, width: 400 },
      { level: 40, width: 400 },
    ]);
    const w = await load(writeSeries(join(tmp.path, 'none'), { slices: 1 }));
    expect(w.sliceWindows).toEqual([null]);
    // WindowWidth 0 (written by some MR scanners) is no window: DICOM requires a width of at least 1.
    const zero = await load(writeSeries(join(tmp.path, 'zero'), { slices: 1, windowCenter: 0, windowWidth: 0 }));
    expect(zero.sliceWindows).toEqual([null]);
  });

  it('reads a bare dataset without preamble', async () => {
    const { writeDicom, imageElements } = await import('../src/dicom/writer.js');
    const el = imageElements({
      rows: 2,
      columns: 2,
      bitsAllocated: 16,
      signed: true,
      pixels: new Int16Array([1, -2, 3, -4]),
      seriesInstanceUid: '1.2',
      sopInstanceUid: '1.2.1',
    });
    const p = join(tmp.path, 'bare');
    writeFileSync(
      p,
      writeDicom([...el, { tag: tag(0x0008, 0x0005), vr: 'CS', value: 'ISO_IR 100' }], { transferSyntax: TransferSyntax.ImplicitLittle, bare: true }),
    );
    const v = await load([p]);
    expect(Array.from(v.data)).toEqual([1, -2, 3, -4]);
  });

  it('reads values across 16 KB header boundaries (long headers)', async () => {
    const files = writeSeries(tmp.path, {
      slices: 2,
      tweakElements: (_k, e) => [...e, { tag: tag(0x0009, 0x1010), vr: 'OB', value: new Uint8Array(40_000) }],
    });
    const v = await load(files);
    expect(v.data[1]).toBe(1);
    expect(v.data[12 + 1]).toBe(101);
  });
});
