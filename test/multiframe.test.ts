import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { DecodePool } from '../src/dicom/decodePool.js';
import { tag, Tags, TransferSyntax } from '../src/dicom/tags.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { imageElements, writeDicom, type WriteElement } from '../src/dicom/writer.js';
import { missingTool } from './conformance/pydicomEnv.js';
import { TempDir } from './fixtures/series.js';
import { fileInstances } from '../src/sources/fileInstance.js';

const NX = 5;
const NY = 4;
const FRAMES = 6;
/** Stored value of voxel (x, y) of frame f (0-based, file order). */
const stored = (x: number, y: number, f: number) => 2000 + x + 10 * y + 100 * f;
/** Frame f lies at z = -2 * PLACE[f]: file order is not geometric order. */
const PLACE = [3, 0, 5, 1, 4, 2];

const item = (elements: WriteElement[]): WriteElement[] => elements;
const sq = (t: number, items: WriteElement[][]): WriteElement => ({ tag: t, vr: 'SQ', value: items });

function framesPixels(): Uint16Array {
  const px = new Uint16Array(NX * NY * FRAMES);
  for (let f = 0; f < FRAMES; f++) for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) px[x + NX * (y + NY * f)] = stored(x, y, f);
  return px;
}

function enhancedCt(): WriteElement[] {
  const base = imageElements({
    rows: NY,
    columns: NX,
    bitsAllocated: 16,
    bitsStored: 12,
    signed: false,
    pixels: framesPixels(),
    seriesInstanceUid: '1.2.3.100',
    sopInstanceUid: '1.2.3.100.1',
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2.1',
    instanceNumber: 1,
  });
  const shared = item([
    sq(tag(0x0028, 0x9110), [
      [
        { tag: Tags.PixelSpacing, vr: 'DS', value: [0.6, 0.4] },
        { tag: Tags.SliceThickness, vr: 'DS', value: 2 },
      ],
    ]),
    sq(tag(0x0020, 0x9116), [[{ tag: Tags.ImageOrientationPatient, vr: 'DS', value: [1, 0, 0, 0, 1, 0] }]]),
    sq(tag(0x0028, 0x9145), [
      [
        { tag: Tags.RescaleIntercept, vr: 'DS', value: -1024 },
        { tag: Tags.RescaleSlope, vr: 'DS', value: 1 },
      ],
    ]),
  ]);
  const perFrame = Array.from({ length: FRAMES }, (_, f) =>
    item([
      sq(tag(0x0020, 0x9113), [[{ tag: Tags.ImagePositionPatient, vr: 'DS', value: [-1, -2, -2 * PLACE[f]] }]]),
      sq(tag(0x0028, 0x9132), [
        [
          { tag: Tags.WindowCenter, vr: 'DS', value: 40 + f },
          { tag: Tags.WindowWidth, vr: 'DS', value: 400 },
        ],
      ]),
    ]),
  );
  return [...base, { tag: Tags.NumberOfFrames, vr: 'IS', value: FRAMES }, sq(tag(0x5200, 0x9229), [shared]), sq(tag(0x5200, 0x9230), perFrame)];
}

let tmp: TempDir;
const pool = new DecodePool(2);
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(() => tmp.remove());
afterAll(() => pool.close());

/** Expected z order: decreasing projection (frame numbers are not monotonic along it). */
const byZ = [...PLACE.keys()].sort((a, b) => PLACE[a] - PLACE[b]);

describe('multi-frame images', () => {
  it('Enhanced CT: per-frame positions and windows, shared spacing, orientation and rescale', async () => {
    const path = join(tmp.path, 'enhanced.dcm');
    writeFileSync(path, writeDicom(enhancedCt()));
    const v = await loadVolume(fileInstances([path]), { maxVoxels: 1e6, pool });
    expect(v.dims).toEqual([NX, NY, FRAMES]);
    expect(v.voxelSize).toEqual([0.4, 0.6, 2]);
    // Every value minus 1024 is still positive: the stored UInt16 holds them (contract rule).
    expect(v.pixelFormat).toBe(PixelFormat.UInt16);
    // z = 0 is the highest frame (PLACE 0 -> frame 1), then down.
    byZ.forEach((f, z) => {
      expect(v.data[NX * NY * z + 3 + NX * 2], `z=${z}`).toBe(stored(3, 2, f) - 1024);
      expect(v.sliceWindows[z]).toEqual({ level: 40 + f, width: 400 });
    });
    expect(v.geometry.origin).toEqual([-1, -2, 0]);
  });

  it('Enhanced CT compressed (RLE, one fragment a frame) decodes in the pool to the same volume', async () => {
    if (missingTool(['dcmcrle'])) return expect(process.env.CI ?? '').toBe('');
    await pool.warm(); // workers started before the load, as the server does at start
    const native = join(tmp.path, 'enhanced.dcm');
    writeFileSync(native, writeDicom(enhancedCt()));
    const rle = join(tmp.path, 'enhanced-rle.dcm');
    execFileSync('dcmcrle', [native, rle]);
    const a = await loadVolume(fileInstances([native]), { maxVoxels: 1e6, pool });
    const b = await loadVolume(fileInstances([rle]), { maxVoxels: 1e6, pool });
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it('classic multi-frame: frames stacked along the normal at SpacingBetweenSlices', async () => {
    const elements = [
      ...imageElements({
        rows: NY,
        columns: NX,
        bitsAllocated: 16,
        signed: false,
        pixels: framesPixels(),
        seriesInstanceUid: '1.2.3.101',
        sopInstanceUid: '1.2.3.101.1',
        imagePositionPatient: [0, 0, 10],
        imageOrientationPatient: [1, 0, 0, 0, 1, 0],
        pixelSpacing: [1, 1],
        spacingBetweenSlices: 2.5,
      }),
      { tag: Tags.NumberOfFrames, vr: 'IS', value: FRAMES },
    ];
    const path = join(tmp.path, 'classic.dcm');
    writeFileSync(path, writeDicom(elements, { transferSyntax: TransferSyntax.ImplicitLittle }));
    const v = await loadVolume(fileInstances([path]), { maxVoxels: 1e6 });
    expect(v.dims).toEqual([NX, NY, FRAMES]);
    expect(v.voxelSize[2]).toBe(2.5);
    // Frame numbers rise with the projection (frames go up along +z): z follows the frames.
    for (let f = 0; f < FRAMES; f++) expect(v.data[NX * NY * f]).toBe(stored(0, 0, f));
    expect(v.geometry.sliceDirection).toEqual([0, 0, 1]);
    expect(v.geometry.origin).toEqual([0, 0, 10]);
  });

  it('refuses a multi-frame file whose pixel data is shorter than its frames', async () => {
    const elements = [
      ...imageElements({
        rows: NY,
        columns: NX,
        bitsAllocated: 16,
        signed: false,
        pixels: framesPixels().slice(0, NX * NY * 2),
        seriesInstanceUid: '1.2.9',
        sopInstanceUid: '1.2.9.1',
      }),
      { tag: Tags.NumberOfFrames, vr: 'IS', value: FRAMES },
    ];
    const path = join(tmp.path, 'short.dcm');
    writeFileSync(path, writeDicom(elements));
    const err = await loadVolume(fileInstances([path]), { maxVoxels: 1e6 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(422);
    expect((err as CircusError).message).toMatch(/pixel data holds 80 bytes, 4x5 x 6 frames needs 240/);
  });

  it('refuses frames at one position', async () => {
    const elements = enhancedCt().map((e) =>
      e.tag === tag(0x5200, 0x9230)
        ? sq(
            e.tag,
            Array.from({ length: FRAMES }, () => [sq(tag(0x0020, 0x9113), [[{ tag: Tags.ImagePositionPatient, vr: 'DS', value: [0, 0, 7] }]])]),
          )
        : e,
    );
    const path = join(tmp.path, 'same.dcm');
    writeFileSync(path, writeDicom(elements));
    const err = await loadVolume(fileInstances([path]), { maxVoxels: 1e6 }).catch((e: unknown) => e);
    expect((err as CircusError).status).toBe(422);
    expect((err as CircusError).message).toMatch(/slice same\.dcm frame 2: same position as slice same\.dcm frame 1/);
  });
});
