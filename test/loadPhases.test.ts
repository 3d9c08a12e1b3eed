/**
 * The steps of openVolume on their own, from slice headers written here by hand: the plan
 * (order, size, header of the load and its volume), the reservation of the stored voxels, the
 * load units' lanes, and the finish from stored values put in place by the test. Expected values
 * are worked out from the headers below, not read back from the loader.
 */
import { describe, expect, it } from 'vitest';
import { CircusError, tooLarge } from '../src/core/errors.js';
import { SliceGeometryError } from '../src/core/volume/sliceOrdering.js';
import { PixelFormat } from '../src/core/volume/volume.js';
import { finishVolume } from '../src/dicom/load/finish.js';
import type { Slice } from '../src/dicom/load/headerPass.js';
import { planVolume, reserveStored } from '../src/dicom/load/plan.js';
import { loadUnits } from '../src/dicom/load/units.js';
import type { SliceHeader } from '../src/dicom/sliceHeader.js';
import { MemoryInstance } from '../src/sources/memorySource.js';

const NX = 4;
const NY = 3;
const AXIAL = [1, 0, 0, 0, 1, 0];

/** A native unsigned 12-bit CT slice header, as readSliceHeader would give it. */
const header = (h: Partial<SliceHeader>): SliceHeader => ({
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  seriesInstanceUid: '1.2.3',
  studyInstanceUid: '1.2',
  modality: 'CT',
  rows: NY,
  columns: NX,
  samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2',
  numberOfFrames: 1,
  planarConfiguration: 0,
  bitsAllocated: 16,
  bitsStored: 12,
  highBit: 11,
  pixelRepresentation: 0,
  pixelSpacing: [0.7, 0.5],
  imageOrientationPatient: AXIAL,
  rescaleSlope: 1,
  rescaleIntercept: 0,
  pixelData: { offset: 0, length: NX * NY * 2, encapsulated: false, vr: 'OW' },
  ...h,
});

const slice = (label: string, h: SliceHeader): Slice => ({
  instance: new MemoryInstance(label, Buffer.alloc(0)),
  label,
  header: h,
  frame: 0,
  stackNumber: h.instanceNumber === undefined ? undefined : h.instanceNumber * 1e6 + 1,
  geometryNumber: h.instanceNumber === undefined ? undefined : h.instanceNumber * 1e6 + 1,
});

/**
 * Three slices given out of order: a at z = 0 mm, b at 10 mm, c at 5 mm, InstanceNumbers rising
 * with the position (so z runs the way they rise: a, c, b), each with its own intercept and
 * window; b's window has width 0 (no window).
 */
const threeSlices = (): Slice[] => [
  slice('a', header({ instanceNumber: 1, imagePositionPatient: [-10, -20, 0], rescaleIntercept: -1024, windowCenter: 40, windowWidth: 400 })),
  slice('b', header({ instanceNumber: 3, imagePositionPatient: [-10, -20, 10], rescaleIntercept: -1000, windowCenter: 50, windowWidth: 0 })),
  slice(
    'c',
    header({ instanceNumber: 2, imagePositionPatient: [-10, -20, 5], rescaleIntercept: -1010, padding: [0, 0], windowCenter: 60, windowWidth: 350 }),
  ),
];

describe('the plan, from the slices of a header pass', () => {
  it('orders the slices along the normal and fixes the header of the load and of its volume', () => {
    const slices = threeSlices();
    const plan = planVolume({ slices }, { maxVoxels: 1e6 });
    expect(plan.ordered.map((s) => s.label)).toEqual(['a', 'c', 'b']);
    const h = plan.header;
    expect(h.dims).toEqual([NX, NY, 3]);
    expect(h.voxelSize).toEqual([0.5, 0.7, 5]); // x = PixelSpacing[1], y = PixelSpacing[0], z = 5 mm apart
    expect(h.uniformSpacing).toBe(true);
    expect(h.geometry.origin).toEqual([-10, -20, 0]);
    expect(h.geometry.sliceDirection).toEqual([0, 0, 1]);
    expect(h.stack).toBeUndefined();
    expect(h.monochrome1).toBe(false);
    expect(h.storedFormat).toBe(PixelFormat.UInt16);
    expect(h.sliceRescale).toEqual([
      { slope: 1, intercept: -1024, padding: undefined },
      { slope: 1, intercept: -1010, padding: [0, 0] },
      { slope: 1, intercept: -1000, padding: undefined },
    ]);
    expect(h.sliceWindows).toEqual([{ level: 40, width: 400 }, { level: 60, width: 350 }, null]);
    // 12 bits unsigned: 0 .. 4095 through each intercept; c's padding 0 is -1010.
    expect(h.valueBounds).toEqual([-1024, 4095 - 1000]);
    expect(h.attributes).toEqual({
      modality: 'CT',
      photometricInterpretation: 'MONOCHROME2',
      seriesInstanceUid: '1.2.3',
      studyInstanceUid: '1.2',
      seriesDescription: null,
    });
  });

  it('refuses more voxels than maxVoxels (413, the count and the limit named), and takes exactly as many', () => {
    const slices = threeSlices();
    let err: unknown;
    try {
      planVolume({ slices }, { maxVoxels: NX * NY * 3 - 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(413);
    expect((err as CircusError).message).toBe(`the series has 4x3x3 = 36 voxels, more than the limit maxVoxels (35)`);
    expect(planVolume({ slices }, { maxVoxels: NX * NY * 3 }).header.dims).toEqual([NX, NY, 3]);
  });

  it('orders slices that are not one volume as a stack only when allowed, and says so in the log', () => {
    // b lies in another plane (coronal): the orientations differ.
    const slices = [
      slice('a', header({ instanceNumber: 2, imagePositionPatient: [0, 0, 0] })),
      slice('b', header({ instanceNumber: 1, imagePositionPatient: [0, 0, 5], imageOrientationPatient: [1, 0, 0, 0, 0, -1] })),
    ];
    expect(() => planVolume({ slices }, { maxVoxels: 1e6 })).toThrow(SliceGeometryError);
    const log: string[] = [];
    const plan = planVolume({ slices }, { maxVoxels: 1e6, allowStack: true, log: (m) => log.push(m) });
    expect(plan.ordered.map((s) => s.label)).toEqual(['b', 'a']); // InstanceNumber order
    expect(plan.header.stack).toBe(true);
    expect(plan.header.voxelSize).toEqual([0.5, 0.7, 1]);
    expect(plan.header.geometry.imageOrientationPatient).toEqual([1, 0, 0, 0, 0, -1]); // the image at z = 0
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^opened as a stack of images: .*slice b/);
  });

  it('a mask (BitsAllocated 1): Binary, no rescale, no window, values 0 and 1', () => {
    const mask = (label: string, z: number): Slice =>
      slice(
        label,
        header({
          bitsAllocated: 1,
          bitsStored: 1,
          highBit: 0,
          imagePositionPatient: [0, 0, z],
          rescaleIntercept: -1024,
          windowCenter: 40,
          windowWidth: 400,
          photometricInterpretation: 'MONOCHROME1',
        }),
      );
    const { header: h } = planVolume({ slices: [mask('a', 0), mask('b', 2)] }, { maxVoxels: 1e6 });
    expect(h.storedFormat).toBe(PixelFormat.Binary);
    expect(h.sliceRescale).toEqual([
      { slope: 1, intercept: 0 },
      { slope: 1, intercept: 0 },
    ]);
    expect(h.sliceWindows).toEqual([null, null]);
    expect(h.valueBounds).toEqual([0, 1]);
    expect(h.monochrome1).toBe(true);
  });
});

describe('the reservation of the stored voxels', () => {
  it('asks for the bytes of the stored format before allocating them in shared memory', async () => {
    const plan = planVolume({ slices: threeSlices() }, { maxVoxels: 1e6 });
    const asked: number[] = [];
    const stored = await reserveStored(plan, async (bytes) => {
      asked.push(bytes);
    });
    expect(asked).toEqual([NX * NY * 3 * 2]);
    expect(stored).toBeInstanceOf(Uint16Array);
    expect(stored.length).toBe(NX * NY * 3);
    expect(stored.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('rejects with what the budget throws', async () => {
    const plan = planVolume({ slices: threeSlices() }, { maxVoxels: 1e6 });
    const refusal = tooLarge('no room in the cache');
    await expect(reserveStored(plan, () => Promise.reject(refusal))).rejects.toBe(refusal);
  });
});

describe('the load units', () => {
  it('one unit a native slice, in the reading lane; lanes as wide as the concurrency and the pool allow', async () => {
    const plan = planVolume({ slices: threeSlices() }, { maxVoxels: 1e6 });
    const work = loadUnits(plan, await reserveStored(plan, undefined), { concurrency: 3 });
    expect(work.lanes).toEqual([3, 2]); // no pool: one worker's task and one more
    expect(work.units.map((u) => [u.lane, ...u.slices])).toEqual([
      [0, 0],
      [0, 1],
      [0, 2],
    ]);
  });
});

describe('the finish, once every slice is in place', () => {
  it('turns stored values into modality values in the narrowest exact format and keeps the header', async () => {
    const plan = planVolume({ slices: threeSlices() }, { maxVoxels: 1e6 });
    const stored = (await reserveStored(plan, undefined)) as Uint16Array;
    const perSlice = NX * NY;
    // Slice z (a, c, b) holds 100 z + i at voxel i, but c's voxel 0 is padding (stored 0).
    for (let z = 0; z < 3; z++) for (let i = 0; i < perSlice; i++) stored[z * perSlice + i] = 100 * z + i;
    stored[perSlice] = 0;
    const ranges = [
      { min: 0, max: 11, paddingCount: 0 },
      { min: 101, max: 111, paddingCount: 1 },
      { min: 200, max: 211, paddingCount: 0 },
    ];
    const reserved: number[] = [];
    const pauses: number[] = [];
    const volume = await finishVolume(plan, stored, ranges, {
      reserve: async (bytes) => {
        reserved.push(bytes);
      },
      pause: async () => {
        pauses.push(1);
      },
    });
    // Values -1024 .. 211 - 1000 = -789: integers that UInt16 cannot hold but Int16 can, as wide: in place.
    expect(volume.pixelFormat).toBe(PixelFormat.Int16);
    expect(volume.data.buffer).toBe(stored.buffer);
    expect(reserved).toEqual([]);
    expect(pauses.length).toBeGreaterThan(0);
    const intercepts = [-1024, -1010, -1000];
    const expected = Array.from({ length: 3 * perSlice }, (_, k) => {
      const z = Math.floor(k / perSlice);
      const i = k % perSlice;
      // c's padding would be 0 - 1010, above the smallest value (-1024): it becomes -1024.
      if (k === perSlice) return -1024;
      return 100 * z + i + intercepts[z];
    });
    expect(Array.from(volume.data)).toEqual(expected);
    expect([volume.minValue, volume.maxValue]).toEqual([-1024, 211 - 1000]);
    expect(Object.isFrozen(volume)).toBe(true);
    const { pixelFormat, data, minValue, maxValue, ...rest } = volume;
    const { storedFormat, sliceRescale, ...volumeHeader } = plan.header;
    expect(rest).toEqual(volumeHeader);
    expect(volume).not.toHaveProperty('storedFormat');
    expect(volume).not.toHaveProperty('sliceRescale');
  });
});
