import { decode } from 'fast-png';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { CircusError } from '../src/core/errors.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { Tags, TransferSyntax } from '../src/dicom/tags.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { imageElements, writeDicom, type WriteElement } from '../src/dicom/writer.js';
import { windowFor } from '../src/http/render.js';
import { createServer, type Server } from '../src/server.js';
import { fileInstances } from '../src/sources/fileInstance.js';
import { combinedBlocks } from './fixtures/combined.js';
import { TempDir, writeMultiFrame, writeSeries, type SeriesSpec } from './fixtures/series.js';

// A 5 x 3 x 4 mask: 15 voxels a slice, not a multiple of 8, so packed slices and frames do not
// start on byte boundaries. Slice k (writing order) lies at z = -2.5 k: z index = k.
const NX = 5;
const NY = 3;
const NZ = 4;
/** The mask, written out by hand: MASK[z][y] is row y of slice z, x from left to right. */
const MASK = [
  ['10110', '01001', '11100'],
  ['00111', '10010', '01010'],
  ['11001', '00100', '10011'],
  ['01000', '11011', '00101'],
];
const mask = (x: number, y: number, z: number): number => Number(MASK[z][y][x]);

const UID = '1.2.3.400';
const MONO1 = '1.2.3.401';
const BITS_STORED_2 = '1.2.3.402';
const SIGNED = '1.2.3.403';
const SHORT = '1.2.3.404';

/** The mask series as single-frame files, square pixels of 0.5 mm, slices 2.5 mm apart. */
const maskSeries = (uid: string, more: SeriesSpec = {}): SeriesSpec => ({
  uid,
  columns: NX,
  rows: NY,
  slices: NZ,
  bitsAllocated: 1,
  value: mask,
  pixelSpacing: [0.5, 0.5],
  position: (k) => [-10, -20, -2.5 * k],
  ...more,
});

let tmp: TempDir;
let server: Server;

beforeAll(() => {
  tmp = new TempDir();
  // Rescale and window attributes are written on purpose: they must not touch a mask.
  writeSeries(join(tmp.path, UID), maskSeries(UID, { rescaleSlope: () => 2, rescaleIntercept: () => -1024, windowCenter: 40, windowWidth: 400 }));
  writeSeries(join(tmp.path, MONO1), maskSeries(MONO1, { photometricInterpretation: 'MONOCHROME1' }));
  writeSeries(join(tmp.path, BITS_STORED_2), maskSeries(BITS_STORED_2, { bitsStored: 2 }));
  writeSeries(join(tmp.path, SIGNED), maskSeries(SIGNED, { signed: true }));
  // Slice 2's pixel data is empty: 15 pixels need ceil(15 / 8) = 2 bytes.
  writeSeries(
    join(tmp.path, SHORT),
    maskSeries(SHORT, {
      tweakElements: (k, elements) => (k === 2 ? elements.map((e) => (e.tag === Tags.PixelData ? { ...e, value: new Uint8Array(0) } : e)) : elements),
    }),
  );
  server = createServer(loadConfig({ flags: { dataDir: tmp.path }, env: {} }), { useIndex: false });
});
afterAll(async () => {
  await server.close();
  tmp.remove();
});

const get = (url: string) => server.app.inject({ method: 'GET', url });

function png(res: { statusCode: number; rawPayload: Buffer; body: string }) {
  expect(res.statusCode, res.body.slice(0, 200)).toBe(200);
  const img = decode(res.rawPayload);
  expect([img.channels, img.depth]).toEqual([1, 8]);
  return img;
}

/** 255 where the mask is set, 0 elsewhere, for pixels (i, j) of a width x height image, row by row. */
function shown(width: number, height: number, voxel: (i: number, j: number) => number): number[] {
  const out = [];
  for (let j = 0; j < height; j++) for (let i = 0; i < width; i++) out.push(255 * voxel(i, j));
  return out;
}

/**
 * Packs bits 8 a byte, most significant first, written as text: the bits are joined into a
 * string of '0' and '1', padded with '0' to whole bytes, and each 8 characters read as binary.
 */
function packText(bits: number[]): number[] {
  let text = bits.join('');
  while (text.length % 8 !== 0) text += '0';
  return Array.from({ length: text.length / 8 }, (_, i) => parseInt(text.slice(8 * i, 8 * i + 8), 2));
}

const sliceBits = (z: number): number[] => MASK[z].join('').split('').map(Number);

const WINDOWS = ['', '&ww=400&wl=40', '&ww=3000&wl=-1000', '&ww=1&wl=0', '&ww=0.001&wl=7'];

describe('BitsAllocated 1 over HTTP', () => {
  it('/metadata: pixelFormat 4, values 0 and 1, no DICOM window', async () => {
    const res = await get(`/metadata?series=${UID}`);
    expect(res.statusCode, res.body).toBe(200);
    const m = res.json();
    expect(m).toMatchObject({
      pixelFormat: 4,
      voxelCount: [NX, NY, NZ],
      voxelSize: [0.5, 0.5, 2.5],
      minValue: 0,
      maxValue: 1,
      // floor(1 - 0 + 1) = 2, floor(0 + 2 / 2) = 1
      estimatedWindow: { width: 2, level: 1 },
    });
    expect(m).not.toHaveProperty('dicomWindow');
  });

  it('/mpr: every plane is 255 times the mask, whatever ww and wl say', async () => {
    for (const win of WINDOWS) {
      for (let z = 0; z < NZ; z++) {
        const img = png(await get(`/mpr?series=${UID}&mode=axial&target=${z}${win}`));
        expect([img.width, img.height]).toEqual([NX, NY]);
        expect(Array.from(img.data), `axial ${z}${win}`).toEqual(shown(NX, NY, (i, j) => mask(i, j, z)));
      }
      for (let y = 0; y < NY; y++) {
        const img = png(await get(`/mpr?series=${UID}&mode=coronal&target=${y}${win}`));
        expect([img.width, img.height]).toEqual([NX, NZ]);
        expect(Array.from(img.data), `coronal ${y}${win}`).toEqual(shown(NX, NZ, (i, j) => mask(i, y, j)));
      }
      for (let x = 0; x < NX; x++) {
        const img = png(await get(`/mpr?series=${UID}&mode=sagittal&target=${x}${win}`));
        expect([img.width, img.height]).toEqual([NY, NZ]);
        expect(Array.from(img.data), `sagittal ${x}${win}`).toEqual(shown(NY, NZ, (i, j) => mask(x, i, j)));
      }
    }
  });

  it('/mpr still validates ww and wl', async () => {
    for (const [q, message] of [
      ['ww=0', /parameter 'ww' must be greater than 0/],
      ['wl=abc', /parameter 'wl' must be a finite decimal/],
    ] as const) {
      const res = await get(`/mpr?series=${UID}&mode=axial&${q}`);
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(message);
    }
  });

  it('/oblique at a = 0 on the sagittal plane is the axial slice through the cursor', async () => {
    // s = min(0.5, 0.5, 2.5) = 0.5. Sagittal: columns along x in steps of 0.5 / 0.5 = 1 from 0,
    // rows along y (a = 0) in steps of 1 through y = 1: rows y = 0, 1, 2, cursor row 1.
    for (let z = 0; z < NZ; z++) {
      const res = await get(`/oblique?series=${UID}&a=0&b=sagittal&c=2,1,${z}&ww=3000&wl=-1000`);
      const img = png(res);
      expect([img.width, img.height]).toEqual([NX, NY]);
      expect(res.headers['x-circus-center']).toBe('2,1');
      expect(Array.from(img.data), `z=${z}`).toEqual(shown(NX, NY, (i, j) => mask(i, j, z)));
    }
  });

  // Rows of an axial-based oblique run along z in steps of 0.5 / 2.5 = 0.2 voxel from z = 0 to 3:
  // 16 rows. Nearest slice of row j (z = 0.2 j, never a tie): 0, 0.2, 0.4 -> 0; 0.6 .. 1.4 -> 1;
  // 1.6 .. 2.4 -> 2; 2.6 .. 3 -> 3.
  const Z_OF_ROW = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3];

  it('/oblique at a = 0 on the axial plane repeats each slice of the coronal plane, nearest-neighbour', async () => {
    const res = await get(`/oblique?series=${UID}&a=0&b=axial&c=3,2,1`);
    const img = png(res);
    expect([img.width, img.height]).toEqual([NX, Z_OF_ROW.length]);
    expect(Array.from(img.data)).toEqual(shown(NX, Z_OF_ROW.length, (i, j) => mask(i, 2, Z_OF_ROW[j])));
  });

  it('/oblique at an angle holds only 0 and 255: the nearest voxel of every sample', async () => {
    const a = 0.5;
    const [cx, cy] = [2, 1];
    const res = await get(`/oblique?series=${UID}&a=${a}&b=axial&c=${cx},${cy},1.3&ww=50&wl=10`);
    const img = png(res);
    // Samples c + k (cos a, -sin a, 0) (s / sx = s / sy = 1) inside 0..4 x 0..2: cos 0.5 = 0.878,
    // sin 0.5 = 0.479, so k = -2 .. 2 (k = 3 gives y = -0.44). The cursor is column 2, row 1.3 / 0.2.
    const ks = [-2, -1, 0, 1, 2];
    expect([img.width, img.height]).toEqual([ks.length, Z_OF_ROW.length]);
    expect(res.headers['x-circus-center']).toBe('2,6.5');
    const nearest = (v: number): number => {
      const frac = v - Math.floor(v);
      expect(Math.abs(frac - 0.5)).toBeGreaterThan(1e-3); // no tie to settle
      return frac < 0.5 ? Math.floor(v) : Math.ceil(v);
    };
    const columns = ks.map((k) => [nearest(cx + k * Math.cos(a)), nearest(cy - k * Math.sin(a))]);
    // By hand: x = 0.245, 1.122, 2, 2.878, 3.755 and y = 1.959, 1.479, 1, 0.521, 0.041.
    expect(columns).toEqual([
      [0, 2],
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 0],
    ]);
    expect(Array.from(img.data)).toEqual(shown(ks.length, Z_OF_ROW.length, (i, j) => mask(columns[i][0], columns[i][1], Z_OF_ROW[j])));
    expect(new Set(img.data)).toEqual(new Set([0, 255]));
  });

  it('MONOCHROME1 masks are not inverted: 1 is still 255', async () => {
    const img = png(await get(`/mpr?series=${MONO1}&mode=axial&target=1&ww=100&wl=50`));
    expect(Array.from(img.data)).toEqual(shown(NX, NY, (i, j) => mask(i, j, 1)));
    const obl = png(await get(`/oblique?series=${MONO1}&a=0&b=sagittal&c=0,0,3`));
    expect(Array.from(obl.data)).toEqual(shown(NX, NY, (i, j) => mask(i, j, 3)));
  });

  it('the effective window of a mask is width 1, level 0.5, never inverted: images are cached under it', async () => {
    await get(`/metadata?series=${MONO1}`);
    const v = await server.app.deps.volumes.get(MONO1);
    expect(v.monochrome1).toBe(true);
    for (const p of [{}, { ww: 3000, wl: -1000 }, { ww: 1, wl: 0 }]) expect(windowFor(v, p)).toEqual({ width: 1, level: 0.5, invert: false });
  });

  it('/raw format=voxels: the whole volume packed 8 voxels a byte, most significant bit first', async () => {
    const res = await get(`/raw?series=${UID}&format=voxels`);
    expect(res.statusCode).toBe(200);
    const bytes = gunzipSync(res.rawPayload);
    // 60 voxels: ceil(60 / 8) = 8 bytes, the last 4 bits 0.
    expect(bytes.length).toBe(8);
    const all = [0, 1, 2, 3].flatMap(sliceBits);
    expect(Array.from(bytes)).toEqual(packText(all));
    // The first byte by hand: slice 0 row 0 '10110' then row 1 '010' -> 0b10110010.
    expect(bytes[0]).toBe(0xb2);
  });

  it('/raw format=combined: each slice packed on its own, ceil(15 / 8) = 2 bytes', async () => {
    const res = await get(`/raw?series=${UID}`);
    expect(res.statusCode).toBe(200);
    const b = combinedBlocks(gunzipSync(res.rawPayload));
    expect(b).toHaveLength(NZ + 2);
    expect(b[0]).toEqual({ binaryLength: -1, binary: null, json: { width: NX, height: NY, depth: NZ, dataType: 4 } });
    for (let z = 0; z < NZ; z++) {
      const blk = b[z + 1];
      expect(blk.binaryLength).toBe(2);
      expect(blk.json).toEqual({ success: true, instanceNumber: z + 1, windowLevel: null, windowWidth: null });
      expect(Array.from(blk.binary!), `z=${z}`).toEqual(packText(sliceBits(z)));
    }
    // Slice 3 by hand: '01000' '11011' '00101' -> 0b01000110, 0b11001010.
    expect(Array.from(b[4].binary!)).toEqual([0x46, 0xca]);
    expect(b[NZ + 1]).toMatchObject({
      binaryLength: -2,
      json: { voxelWidth: 0.5, voxelHeight: 0.5, voxelDepth: 2.5, estimatedWindowLevel: 1, estimatedWindowWidth: 2 },
    });
  });

  it('422 naming the slice for BitsStored 2, PixelRepresentation 1 and short pixel data', async () => {
    const cases: [string, RegExp][] = [
      [
        BITS_STORED_2,
        /slice 1\.2\.3\.402\/IM000\d\.dcm: BitsAllocated 1 needs BitsStored 1, HighBit 0 and PixelRepresentation 0, got BitsStored 2, HighBit 1, PixelRepresentation 0/,
      ],
      [
        SIGNED,
        /slice 1\.2\.3\.403\/IM000\d\.dcm: BitsAllocated 1 needs BitsStored 1, HighBit 0 and PixelRepresentation 0, got BitsStored 1, HighBit 0, PixelRepresentation 1/,
      ],
      [SHORT, /slice 1\.2\.3\.404\/IM0002\.dcm: pixel data holds 0 bytes, 3x5 at 1 bit a pixel needs 2/],
    ];
    for (const [uid, message] of cases) {
      const res = await get(`/metadata?series=${uid}`);
      expect(res.statusCode, uid).toBe(422);
      expect(res.json().message, uid).toMatch(message);
    }
  });
});

describe('BitsAllocated 1 volumes', () => {
  const load = (paths: string[], reserve?: (bytes: number) => Promise<void>) => loadVolume(fileInstances(paths), { maxVoxels: 1e6, reserve });

  /** Frame f of the multi-frame files is slice PLACE[f]: file order is not z order. */
  const PLACE = [2, 0, 3, 1];

  it('reserves and holds one byte a voxel, 0 or 1', async () => {
    const dir = join(tmp.path, 'reserve');
    const paths = writeSeries(dir, maskSeries('1.2.3.410'));
    const reserved: number[] = [];
    const v = await load(paths, async (b) => {
      reserved.push(b);
    });
    expect(reserved).toEqual([NX * NY * NZ]);
    expect(v.pixelFormat).toBe(PixelFormat.Binary);
    expect(v.data).toBeInstanceOf(Uint8Array);
    expect(v.data.byteLength).toBe(60);
    const expected = [0, 1, 2, 3].flatMap(sliceBits);
    expect(Array.from(v.data)).toEqual(expected);
  });

  it('the value range is the values present: 1 to 1 for a full mask, 0 to 0 for an empty one', async () => {
    for (const [value, range] of [
      [1, [1, 1]],
      [0, [0, 0]],
    ] as const) {
      const paths = writeSeries(join(tmp.path, `flat${value}`), maskSeries(`1.2.3.42${value}`, { value: () => value }));
      const v = await load(paths);
      expect([v.minValue, v.maxValue]).toEqual(range);
    }
  });

  for (const layout of ['classic', 'enhanced'] as const) {
    it(`one ${layout} multi-frame file, frames not byte-aligned, is the same volume as single-frame files`, async () => {
      const single = await load(writeSeries(join(tmp.path, `single-${layout}`), maskSeries('1.2.3.430')));
      const path = join(tmp.path, `${layout}.dcm`);
      writeMultiFrame(path, {
        uid: '1.2.3.431',
        columns: NX,
        rows: NY,
        frames: NZ,
        bitsAllocated: 1,
        value: (x, y, f) => mask(x, y, PLACE[f]),
        layout,
        position: (f) => [-10, -20, -2.5 * PLACE[f]],
        pixelSpacing: [0.5, 0.5],
      });
      const multi = await load([path]);
      expect(multi.pixelFormat).toBe(PixelFormat.Binary);
      expect(multi.dims).toEqual(single.dims);
      expect(multi.voxelSize).toEqual(single.voxelSize);
      expect(multi.geometry.origin).toEqual(single.geometry.origin);
      expect([multi.minValue, multi.maxValue]).toEqual([0, 1]);
      expect(Array.from(multi.data)).toEqual(Array.from(single.data));
    });
  }

  it('Implicit VR and Deflated files read the same mask', async () => {
    for (const ts of [TransferSyntax.ImplicitLittle, TransferSyntax.DeflatedExplicitLittle]) {
      const v = await load(writeSeries(join(tmp.path, `ts-${ts}`), maskSeries('1.2.3.435', { transferSyntax: ts })));
      expect(Array.from(v.data), ts).toEqual([0, 1, 2, 3].flatMap(sliceBits));
    }
  });

  it('Explicit VR Big Endian with OW pixel data (16-bit words swapped) reads the same mask', async () => {
    const ow = (elements: WriteElement[]) => elements.map((e) => (e.tag === Tags.PixelData ? { ...e, vr: 'OW' } : e));
    const single = await load(
      writeSeries(join(tmp.path, 'be'), maskSeries('1.2.3.440', { transferSyntax: TransferSyntax.ExplicitBig, tweakElements: (_, e) => ow(e) })),
    );
    expect(Array.from(single.data)).toEqual([0, 1, 2, 3].flatMap(sliceBits));
    const path = join(tmp.path, 'be-multi.dcm');
    writeMultiFrame(path, {
      uid: '1.2.3.441',
      columns: NX,
      rows: NY,
      frames: NZ,
      bitsAllocated: 1,
      value: (x, y, f) => mask(x, y, PLACE[f]),
      layout: 'classic',
      position: (f) => [-10, -20, -2.5 * PLACE[f]],
      transferSyntax: TransferSyntax.ExplicitBig,
      tweakElements: ow,
    });
    expect(Array.from((await load([path])).data)).toEqual(Array.from(single.data));
  });

  it('reads pixel bytes written by hand as DICOM packs them: first pixel in the least significant bit', async () => {
    // 15 pixels in 2 bytes: 0x01 sets pixel 0, 0x40 sets pixel 8 + 6 = 14 (the last one).
    const bytes = new Uint8Array([0x01, 0x40]);
    const expected = Array.from({ length: NX * NY }, (_, i) => (i === 0 || i === 14 ? 1 : 0));
    const withBytes = (elements: WriteElement[], vr: string) => elements.map((e) => (e.tag === Tags.PixelData ? { ...e, vr, value: bytes } : e));
    const le = writeSeries(join(tmp.path, 'by-hand-le'), maskSeries('1.2.3.450', { slices: 1, tweakElements: (_, e) => withBytes(e, 'OB') }));
    expect(readFileSync(le[0]).subarray(-2)).toEqual(Buffer.from([0x01, 0x40]));
    expect(Array.from((await load(le)).data)).toEqual(expected);
    // Big endian OW: the file holds the 16-bit word 0x4001 as 0x40 0x01.
    const be = writeSeries(
      join(tmp.path, 'by-hand-be'),
      maskSeries('1.2.3.451', { slices: 1, transferSyntax: TransferSyntax.ExplicitBig, tweakElements: (_, e) => withBytes(e, 'OW') }),
    );
    expect(readFileSync(be[0]).subarray(-2)).toEqual(Buffer.from([0x40, 0x01]));
    expect(Array.from((await load(be)).data)).toEqual(expected);
  });

  async function expectRefusal(paths: string[], status: number, pattern: RegExp): Promise<void> {
    const err = await load(paths).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(status);
    expect((err as CircusError).message).toMatch(pattern);
  }

  it('422 for a multi-frame file shorter than its frames: 4 x 15 bits need 8 bytes', async () => {
    const path = join(tmp.path, 'short.dcm');
    writeMultiFrame(path, {
      uid: '1.2.3.450',
      columns: NX,
      rows: NY,
      frames: NZ,
      bitsAllocated: 1,
      value: (x, y, f) => mask(x, y, f),
      layout: 'classic',
      position: (f) => [0, 0, 2.5 * f],
      tweakElements: (elements) => elements.map((e) => (e.tag === Tags.PixelData ? { ...e, value: new Uint8Array(6) } : e)),
    });
    await expectRefusal([path], 422, /slice short\.dcm frame 1: pixel data holds 6 bytes, 3x5 x 4 frames at 1 bit a pixel needs 8/);
  });

  it('422 for compressed BitsAllocated 1 pixel data, naming the slice', async () => {
    const dir = join(tmp.path, 'rle');
    mkdirSync(dir, { recursive: true });
    const elements = imageElements({
      rows: NY,
      columns: NX,
      bitsAllocated: 1,
      signed: false,
      pixels: new Uint8Array(NX * NY),
      seriesInstanceUid: '1.2.3.460',
      sopInstanceUid: '1.2.3.460.1',
    });
    const path = join(dir, 'mask-rle.dcm');
    writeFileSync(path, writeDicom(elements, { transferSyntax: '1.2.840.10008.1.2.5', encapsulated: [new Uint8Array(64)] }));
    await expectRefusal([path], 422, /slice mask-rle\.dcm: BitsAllocated 1 pixel data is compressed \(RLE Lossless/);
  });
});
