/**
 * Series that are not one volume, opened as stacks of images (the current API's "2d" series):
 * same-size images in InstanceNumber order (then source order), voxelSize [sx, sy, 1], `stack:
 * true`, while the 2016 path (`get`, `open` without allowStack) still refuses them with the same
 * 422. Series are generated in code; each image's expected values are computed from the same
 * function that wrote them.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { Tags } from '../src/dicom/tags.js';
import { SliceGeometryError, stackSlices } from '../src/core/volume/sliceOrdering.js';
import type { VoxelArray } from '../src/core/volume/volume.js';
import { DecodePool } from '../src/dicom/decodePool.js';
import { DEFAULT_READ_LIMITS } from '../src/dicom/fileReader.js';
import { loadVolume, openVolume } from '../src/dicom/volumeLoader.js';
import { createCacheRegions } from '../src/services/cacheRegions.js';
import { stackKey, VolumeService } from '../src/services/volumeService.js';
import { fileInstances } from '../src/sources/fileInstance.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesInstances, SeriesSource } from '../src/sources/source.js';
import { HeldSeries } from './fixtures/held.js';
import { rleFrame } from './fixtures/rle.js';
import { type SeriesSpec, shuffled, TempDir, writeMultiFrame, writeSeries } from './fixtures/series.js';

const NX = 4;
const NY = 3;
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const AXIAL = [1, 0, 0, 0, 1, 0];
const CORONAL = [1, 0, 0, 0, 0, -1];
const SAGITTAL = [0, 1, 0, 0, 0, -1];
/** Stored (and modality) value of pixel (x, y) of image k (writing order): distinct in every image. */
const value = (x: number, y: number, k: number): number => x + 10 * y + 100 * k - 250;

/** A localizer-like series: images 0-2 axial, 3-5 coronal; InstanceNumber 1..6 scattered. */
const LOCALIZER: SeriesSpec = {
  slices: 6,
  orientation: (k) => (k < 3 ? AXIAL : CORONAL),
  position: (k) => (k < 3 ? [-10, -20, -5 * k] : [-10, 3 * k, 40]),
  instanceNumber: (k) => [4, 1, 6, 2, 5, 3][k],
};
/** The image (writing order) at each z of LOCALIZER's stack: InstanceNumber 1, 2, ... */
const LOCALIZER_ORDER = [1, 3, 5, 0, 4, 2];

let tmp: TempDir;
let dirs = 0;
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(() => tmp.remove());

/** Writes a NX x NY series (values from `value`) into a new folder; its file paths in writing order. */
function write(uid: string, spec: SeriesSpec): string[] {
  return writeSeries(join(tmp.path, String(++dirs)), { uid, columns: NX, rows: NY, value, ...spec });
}

/** The series in memory, its instances listed in `order` (indices in writing order; writing order by default). */
function memory(uid: string, paths: string[], order: number[] = paths.map((_, k) => k)): MemorySource {
  const m = new MemorySource();
  for (const k of order) m.add(uid, basename(paths[k]), readFileSync(paths[k]));
  return m;
}

/** A source that counts the series looked up (one a header pass). */
class CountingSource implements SeriesSource {
  finds = 0;
  constructor(private readonly inner: SeriesSource) {}
  find(seriesUid: string): Promise<SeriesInstances | null> {
    this.finds++;
    return this.inner.find(seriesUid);
  }
}

function service(source: SeriesSource, budget = 1 << 24, pool?: DecodePool) {
  const regions = createCacheRegions(budget, 1000);
  const volumes = new VolumeService(source, regions.volumes, {
    maxVoxels: 1e8,
    readLimits: DEFAULT_READ_LIMITS,
    concurrency: 4,
    log: () => {},
    pool,
  });
  return { regions, volumes };
}

/** The error a promise rejects with (null when it resolves). */
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

/** Lets the cache take a load's volume in: it does so once the loader has returned, a few microtasks after `complete`. */
const cached = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Image z of a volume's data, and image k (writing order) as written. */
const imageAt = (data: VoxelArray, z: number): number[] => Array.from(data.subarray(z * NX * NY, (z + 1) * NX * NY));
const written = (k: number): number[] => Array.from({ length: NX * NY }, (_, i) => value(i % NX, Math.floor(i / NX), k));

/** Every image of `data` is the written image `order[z]`. */
function expectImages(data: VoxelArray, order: number[]): void {
  expect(data.length).toBe(NX * NY * order.length);
  for (const [z, k] of order.entries()) expect(imageAt(data, z), `image at z = ${z}`).toEqual(written(k));
}

describe('stackSlices', () => {
  it('orders by InstanceNumber, ties and unnumbered slices in the given order, with a fallback geometry', () => {
    const s = (label: string, instanceNumber?: number, extra: object = {}) => ({ label, rows: 2, columns: 2, instanceNumber, ...extra });
    const ordering = stackSlices([
      s('a'),
      s('b', 7),
      s('c', 2, { imageOrientationPatient: [1, 0, 0, 1, 0, 0] }),
      s('d'),
      s('e', 2),
      s('f', -1, { pixelSpacing: [0.8, 0.6], imagePositionPatient: [1, 2, 3], imageOrientationPatient: SAGITTAL }),
    ]);
    expect(ordering.order).toEqual([5, 2, 4, 1, 0, 3]);
    expect(ordering.voxelSize).toEqual([0.6, 0.8, 1]);
    expect(ordering.geometry).toEqual({
      origin: [1, 2, 3],
      rowDirection: [0, 1, 0],
      columnDirection: [0, 0, -1],
      sliceDirection: [-1, 0, 0],
      imageOrientationPatient: SAGITTAL,
    });
    // Image c first: its cosines are not two directions, so the identity; no spacing, no position.
    const broken = stackSlices([s('c', 1, { imageOrientationPatient: [1, 0, 0, 1, 0, 0] }), s('a', 2)]);
    expect(broken.voxelSize).toEqual([1, 1, 1]);
    expect(broken.uniformSpacing).toBe(true);
    expect(broken.geometry).toEqual({
      origin: null,
      rowDirection: [1, 0, 0],
      columnDirection: [0, 1, 0],
      sliceDirection: [0, 0, 1],
      imageOrientationPatient: AXIAL,
    });
  });

  it('refuses images of different sizes with a 422 that is not a geometry error', () => {
    let err: unknown = null;
    try {
      stackSlices([
        { label: 'a', rows: 2, columns: 2 },
        { label: 'b', rows: 3, columns: 2 },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CircusError);
    expect(err).not.toBeInstanceOf(SliceGeometryError);
    expect((err as CircusError).status).toBe(422);
    expect((err as CircusError).message).toBe('slice b: Rows x Columns 3x2 differ from 2x2 of slice a');
  });
});

/**
 * A multi-frame instance of NX x NY images at [0, 0, 7] (where the single-frame tests put theirs):
 * frame f holds image `first + f` of `value`; InstanceNumber 1, or none when `numbered` is false.
 * Returns its path.
 */
function writeFramesAtOnePlace(path: string, uid: string, frames: number, first: number, numbered = true): string {
  writeMultiFrame(path, {
    uid,
    columns: NX,
    rows: NY,
    frames,
    signed: true,
    pixelSpacing: [0.5, 0.7],
    layout: 'classic',
    position: () => [0, 0, 7],
    value: (x, y, f) => value(x, y, first + f),
    tweakElements: numbered ? undefined : (elements) => elements.filter((e) => e.tag !== Tags.InstanceNumber),
  });
  return path;
}

describe('the loader with allowStack', () => {
  it('opens mixed orientations as a stack in InstanceNumber order, whatever the file order', async () => {
    const paths = write('1.2.3.1', { ...LOCALIZER, pixelSpacing: [0.8, 0.6] });
    const files = fileInstances(shuffled(paths, 5));
    const refused = await failure(loadVolume(files, { maxVoxels: 1e8 }));
    expect(refused).toBeInstanceOf(SliceGeometryError);
    expect((refused as CircusError).status).toBe(422);
    expect((refused as CircusError).message).toMatch(/ImageOrientationPatient .* differs from/);

    const load = await openVolume(files, { maxVoxels: 1e8, allowStack: true });
    expect(load.stack).toBe(true);
    expect(load.dims).toEqual([NX, NY, 6]);
    expect(load.voxelSize).toEqual([0.6, 0.8, 1]);
    expect(load.uniformSpacing).toBe(true);
    // The image at z = 0 (InstanceNumber 1) is axial image 1, at patient z = -5.
    expect(load.geometry).toEqual({
      origin: [-10, -20, -5],
      rowDirection: [1, 0, 0],
      columnDirection: [0, 1, 0],
      sliceDirection: [0, 0, 1],
      imageOrientationPatient: AXIAL,
    });
    const v = await load.complete;
    expect(v.stack).toBe(true);
    expect(v.voxelSize).toEqual([0.6, 0.8, 1]);
    expectImages(v.data, LOCALIZER_ORDER);
    expect([v.minValue, v.maxValue]).toEqual([value(0, 0, 0), value(NX - 1, NY - 1, 5)]);
  });

  it('opens repeated positions as a stack: ties and images without InstanceNumber keep the source order', async () => {
    // Images 2 and 4 share InstanceNumber 1; 1 and 3 have none. The source lists 4, 3, 2, 1, 0.
    const numbers = [3, undefined, 1, undefined, 1];
    const paths = write('1.2.3.2', { slices: 5, position: () => [0, 0, 7], instanceNumber: (k) => numbers[k] });
    const files = fileInstances([4, 3, 2, 1, 0].map((k) => paths[k]));
    const refused = await failure(loadVolume(files, { maxVoxels: 1e8 }));
    expect(refused).toBeInstanceOf(SliceGeometryError);
    expect((refused as CircusError).message).toMatch(/same position as slice/);

    const v = await loadVolume(files, { maxVoxels: 1e8, allowStack: true });
    expect(v.stack).toBe(true);
    expect(v.voxelSize).toEqual([0.5, 0.7, 1]);
    expect(v.geometry.origin).toEqual([0, 0, 7]);
    expectImages(v.data, [4, 2, 0, 3, 1]);
  });

  it('orders the frames of a multi-frame instance and single-frame instances on one InstanceNumber scale', async () => {
    // A two-frame instance (InstanceNumber 1) and single-frame instances 3 and 2, all at one position.
    const uid = '1.2.3.9';
    const dir = join(tmp.path, 'mixed');
    const singles = writeSeries(dir, { uid, columns: NX, rows: NY, value, slices: 2, position: () => [0, 0, 7], instanceNumber: (k) => [3, 2][k] });
    const multi = writeFramesAtOnePlace(join(dir, 'multi.dcm'), uid, 2, 10);
    const v = await loadVolume(fileInstances([...singles, multi]), { maxVoxels: 1e8, allowStack: true });
    expect(v.stack).toBe(true);
    expect(v.dims).toEqual([NX, NY, 4]);
    // z: frame 1 and 2 of instance 1, then instance 2 (written second), then instance 3.
    expectImages(v.data, [10, 11, 1, 0]);
  });

  it('keeps the frames of multi-frame instances without InstanceNumber together, in the order given, after numbered images', async () => {
    // Cine-like: instances A and B (three frames each, no InstanceNumber) and a numbered
    // single-frame image, all at one position.
    const uid = '1.2.3.10';
    const dir = join(tmp.path, 'cine');
    const [numbered] = writeSeries(dir, { uid, columns: NX, rows: NY, value, slices: 1, position: () => [0, 0, 7], instanceNumber: () => 5 });
    const a = writeFramesAtOnePlace(join(dir, 'a.dcm'), uid, 3, 10, false);
    const b = writeFramesAtOnePlace(join(dir, 'b.dcm'), uid, 3, 20, false);
    const v = await loadVolume(fileInstances([a, b, numbered]), { maxVoxels: 1e8, allowStack: true });
    expect(v.stack).toBe(true);
    // The numbered image first, then A's frames, then B's.
    expectImages(v.data, [0, 10, 11, 12, 20, 21, 22]);
  });

  it('opens images without ImagePositionPatient and with ImageOrientationPatient on some only as a stack', async () => {
    // InstanceNumber 1 (image 3) has no orientation: the stack takes the identity, and no origin.
    const paths = write('1.2.3.3', {
      slices: 4,
      position: null,
      orientation: (k) => (k === 3 ? undefined : SAGITTAL),
      instanceNumber: (k) => 4 - k,
    });
    const files = fileInstances(paths);
    const refused = await failure(loadVolume(files, { maxVoxels: 1e8 }));
    expect(refused).toBeInstanceOf(SliceGeometryError);
    expect((refused as CircusError).message).toMatch(/present on some slices and missing on others/);

    const v = await loadVolume(files, { maxVoxels: 1e8, allowStack: true });
    expect(v.stack).toBe(true);
    expect(v.geometry.origin).toBeNull();
    expect(v.geometry.imageOrientationPatient).toEqual(AXIAL);
    expectImages(v.data, [3, 2, 1, 0]);
  });

  it('loads a series that is one volume as the volume, without the stack flag', async () => {
    const paths = write('1.2.3.4', { slices: 5, instanceNumber: (k) => 5 - k });
    const files = fileInstances(shuffled(paths));
    const load = await openVolume(files, { maxVoxels: 1e8, allowStack: true });
    expect(load.stack).toBeUndefined();
    expect(load.voxelSize).toEqual([0.5, 0.7, 2.5]);
    const v = await load.complete;
    expect(v.stack).toBeUndefined();
    expect(v).toEqual(await loadVolume(files, { maxVoxels: 1e8 }));
  });

  it('still refuses images of different sizes or colour (422, not geometry) with allowStack', async () => {
    const sized = fileInstances(
      write('1.2.3.5', { ...LOCALIZER, tweak: (k, image) => (k === 4 ? { ...image, rows: 2, pixels: new Int16Array(NX * 2) } : image) }),
    );
    const bySize = await failure(openVolume(sized, { maxVoxels: 1e8, allowStack: true }));
    expect(bySize).toBeInstanceOf(CircusError);
    expect(bySize).not.toBeInstanceOf(SliceGeometryError);
    expect((bySize as CircusError).status).toBe(422);
    expect((bySize as CircusError).message).toBe('slice IM0004.dcm: Rows x Columns 2x4 differ from 3x4 of slice IM0000.dcm');

    const colour = fileInstances(
      write('1.2.3.6', { ...LOCALIZER, tweak: (k, image) => (k === 2 ? { ...image, photometricInterpretation: 'RGB' } : image) }),
    );
    const byColour = await failure(openVolume(colour, { maxVoxels: 1e8, allowStack: true }));
    expect((byColour as CircusError).status).toBe(422);
    expect((byColour as CircusError).message).toMatch(/^slice IM0002\.dcm: colour image/);
  });

  it('decodes a compressed (RLE) stack into its images', async () => {
    const paths = write('1.2.3.7', {
      ...LOCALIZER,
      transferSyntax: RLE_LOSSLESS,
      encode: (pixels) => rleFrame(pixels as Int16Array),
    });
    const pool = new DecodePool(1);
    try {
      const files = fileInstances(shuffled(paths, 11));
      // Without the decoding pool a compressed stack is refused as a compressed volume is.
      const refused = await failure(openVolume(files, { maxVoxels: 1e8, allowStack: true }));
      expect(refused).toMatchObject({ status: 422, code: 'UNSUPPORTED_TRANSFER_SYNTAX' });
      const load = await openVolume(files, { maxVoxels: 1e8, allowStack: true, pool });
      expect(load.stack).toBe(true);
      const v = await load.complete;
      expect(v.stack).toBe(true);
      expectImages(v.data, LOCALIZER_ORDER);
    } finally {
      await pool.close();
    }
  });
});

describe('VolumeService.open with allowStack', () => {
  it('serves a stack while get and open without the option refuse the series with the same 422, before and after', async () => {
    const uid = '1.2.3.10';
    const source = new CountingSource(memory(uid, write(uid, LOCALIZER)));
    const { regions, volumes } = service(source);
    const before = await failure(volumes.get(uid));
    expect(before).toBeInstanceOf(CircusError);
    expect((before as CircusError).status).toBe(422);
    const message = (before as CircusError).message;
    expect(message).toMatch(/ImageOrientationPatient/);
    expect(await failure(volumes.open(uid))).toMatchObject({ status: 422, message });

    const load = await volumes.open(uid, { allowStack: true });
    expect(load.stack).toBe(true);
    expect(load.voxelSize).toEqual([0.5, 0.7, 1]);
    const v = await load.complete;
    expectImages(v.data, LOCALIZER_ORDER);
    await cached();

    expect(await failure(volumes.get(uid))).toMatchObject({ status: 422, message });
    expect(await failure(volumes.open(uid))).toMatchObject({ status: 422, message });
    // Only the stack is cached, and opened again from the cache it still says it is a stack.
    expect(regions.volumes.stats()).toMatchObject({ count: 1, bytes: NX * NY * 6 * 2 });
    const finds = source.finds;
    const again = await volumes.open(uid, { allowStack: true });
    expect(source.finds).toBe(finds);
    expect(again.stack).toBe(true);
    expect(again.volume).toBe(v);
    expect(again.dims).toEqual([NX, NY, 6]);
  });

  it('remembers a series is a stack: once evicted, it is loaded again as a stack with one header pass', async () => {
    const uid = '1.2.3.11';
    const source = new CountingSource(memory(uid, write(uid, LOCALIZER)));
    const { regions, volumes } = service(source);
    await (await volumes.open(uid, { allowStack: true })).complete;
    await cached();
    expect(source.finds).toBe(2); // the volume's header pass, then the stack's
    regions.volumes.delete(stackKey(uid));
    const load = await volumes.open(uid, { allowStack: true });
    expect(source.finds).toBe(3);
    expect(load.stack).toBe(true);
    expectImages((await load.complete).data, LOCALIZER_ORDER);
  });

  it('opens a series that is one volume as the volume get gives, with one load for both', async () => {
    const uid = '1.2.3.12';
    const source = new CountingSource(memory(uid, write(uid, { slices: 5 }), [3, 0, 4, 1, 2]));
    const { regions, volumes } = service(source);
    const [load, volume] = await Promise.all([volumes.open(uid, { allowStack: true }), volumes.get(uid)]);
    expect(source.finds).toBe(1);
    expect(load.stack).toBeUndefined();
    expect(await load.complete).toBe(volume);
    expect(volume.stack).toBeUndefined();
    expectImages(volume.data, [0, 1, 2, 3, 4]);
    expect(regions.volumes.stats()).toMatchObject({ count: 1, misses: 1 });
    const cached = await volumes.open(uid, { allowStack: true });
    expect(cached.volume).toBe(volume);
    expect(cached.stack).toBeUndefined();
    expect(source.finds).toBe(1);
  });

  it('opens a series without ImagePositionPatient but with one orientation as the volume it is by the 2016 rules', async () => {
    const uid = '1.2.3.13';
    const source = new CountingSource(memory(uid, write(uid, { slices: 4, position: null, instanceNumber: (k) => 4 - k })));
    const { volumes } = service(source);
    const volume = await volumes.get(uid);
    const load = await volumes.open(uid, { allowStack: true });
    expect(source.finds).toBe(1);
    expect(load.stack).toBeUndefined();
    expect(load.volume).toBe(volume);
    expectImages(volume.data, [3, 2, 1, 0]);
  });

  it('refuses images of different sizes with 422 and caches nothing', async () => {
    const uid = '1.2.3.14';
    const paths = write(uid, { ...LOCALIZER, tweak: (k, image) => (k === 1 ? { ...image, columns: 5, pixels: new Int16Array(5 * NY) } : image) });
    const { regions, volumes } = service(memory(uid, paths));
    const err = await failure(volumes.open(uid, { allowStack: true }));
    expect(err).toMatchObject({ status: 422, message: 'slice IM0001.dcm: Rows x Columns 3x5 differ from 3x4 of slice IM0000.dcm' });
    expect(await failure(volumes.get(uid))).toMatchObject({ status: 422, message: (err as Error).message });
    expect(regions.cache.stats()).toMatchObject({ count: 0, usedBytes: 0, reservedBytes: 0 });
  });

  it('accounts the stack in the byte budget: its bytes are held, and a stack larger than the budget is refused (413)', async () => {
    const uid = '1.2.3.15';
    const source = memory(uid, write(uid, LOCALIZER));
    const bytes = NX * NY * 6 * 2;
    const roomy = service(source, bytes);
    await (await roomy.volumes.open(uid, { allowStack: true })).complete;
    await cached();
    expect(roomy.regions.volumes.stats()).toMatchObject({ count: 1, bytes });
    expect(roomy.regions.cache.stats()).toMatchObject({ usedBytes: bytes, reservedBytes: 0 });

    const tight = service(source, bytes - 1);
    const err = await failure(tight.volumes.open(uid, { allowStack: true }));
    expect(err).toMatchObject({ status: 413 });
    expect((err as Error).message).toMatch(/more than the cache budget/);
    expect(tight.regions.cache.stats()).toMatchObject({ count: 0, usedBytes: 0, reservedBytes: 0 });
  });

  it('loads a stack progressively: an image is there as soon as its own file is read', async () => {
    const uid = '1.2.3.16';
    const paths = write(uid, LOCALIZER);
    const files = paths.map((p) => ({ name: basename(p), bytes: readFileSync(p) }));
    const held = new HeldSeries(uid, shuffled(files, 3));
    const { volumes } = service(held);
    const load = await volumes.open(uid, { allowStack: true });
    expect(load.stack).toBe(true);
    // z = 2 is InstanceNumber 3: image 5.
    held.release(basename(paths[5]));
    await load.slice(2);
    expect(held.passed).toEqual([basename(paths[5])]);
    const early = load.axialSlice(2);
    expect(early).not.toBeNull();
    expect(Array.from(early!.data)).toEqual(written(5));
    expect(early!.voxelSize).toEqual([0.5, 0.7, 1]);
    held.release();
    expectImages((await load.complete).data, LOCALIZER_ORDER);
  });
});
