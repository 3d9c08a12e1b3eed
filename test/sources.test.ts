/**
 * One contract for every series source: the same assertions run against each layout of the
 * data directory and against a series held in memory. Then whole servers on a folder and on the
 * same instances in memory must answer byte for byte alike, compressed instances included (their
 * bytes then reach the decoding workers by message, not by path).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { DecodePool } from '../src/dicom/decodePool.js';
import { imageElements, writeDicom } from '../src/dicom/writer.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { createServer, type Server } from '../src/server.js';
import { DataDirectorySource, hashedDir } from '../src/sources/dataDirectory.js';
import { MemorySource } from '../src/sources/memorySource.js';
import { SeriesIndex } from '../src/sources/seriesIndex.js';
import type { SeriesSource } from '../src/sources/source.js';
import { rleFrame } from './fixtures/rle.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const UID = '1.2.826.0.1.3680043.8.498.1';
const OTHER = '1.2.826.0.1.3680043.8.498.2';
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const NAMES = ['IM1.dcm', 'IM2.dcm', 'IM10.dcm'];

let tmp: TempDir;
/** Bytes of each written file of UID by name. */
const written = new Map<string, Buffer>();

beforeAll(() => {
  tmp = new TempDir();
  const paths = writeSeries(join(tmp.path, 'circus', UID), { uid: UID, slices: 3, fileName: (k) => NAMES[k] });
  for (const [k, p] of paths.entries()) written.set(NAMES[k], readFileSync(p));
  // The same files in the other layouts.
  for (const dir of [hashedDir(join(tmp.path, 'hashed'), UID), join(tmp.path, 'tree', 'export', 'disc1')]) {
    mkdirSync(dir, { recursive: true });
    for (const name of NAMES) writeFileSync(join(dir, name), written.get(name)!);
  }
  writeSeries(join(tmp.path, 'tree', 'other'), { uid: OTHER, slices: 2 });
});
afterAll(() => tmp.remove());

/** The same series as each source holds it. */
const SOURCES: { name: string; make: () => Promise<{ source: SeriesSource; close?: () => void }> }[] = [
  { name: 'data directory, CIRCUS layout', make: async () => ({ source: new DataDirectorySource(join(tmp.path, 'circus'), null) }) },
  { name: 'data directory, hashed layout', make: async () => ({ source: new DataDirectorySource(join(tmp.path, 'hashed'), null) }) },
  {
    name: 'data directory, header index',
    make: async () => {
      const root = join(tmp.path, 'tree');
      const index = new SeriesIndex(root, join(tmp.path, `index-${Math.random()}.sqlite`));
      await index.update();
      return { source: new DataDirectorySource(root, index), close: () => index.close() };
    },
  },
  {
    name: 'memory',
    make: async () => {
      const source = new MemorySource();
      // A memory source keeps the order it was given (slice order comes later, from geometry).
      for (const name of NAMES) expect(source.addDicom(name, written.get(name)!)).toBe(UID);
      return { source };
    },
  },
];

describe.each(SOURCES)('series source contract: $name', ({ make }) => {
  let source: SeriesSource;
  let close: (() => void) | undefined;
  beforeAll(async () => {
    ({ source, close } = await make());
  });
  afterAll(() => close?.());

  it('finds the instances of a series, each named, in natural order, with the bytes written', async () => {
    const found = await source.find(UID);
    expect(found).not.toBeNull();
    const { instances } = found!;
    expect(instances.map((i) => i.name.split('/').pop())).toEqual(NAMES);
    for (const instance of instances) {
      const expected = written.get(instance.name.split('/').pop()!)!;
      const bytes = await instance.bytes();
      expect(bytes).toEqual(expected);
      expect(await instance.size()).toBe(expected.length);
    }
  });

  it('reads any range into a buffer at an offset, fewer bytes only at the end', async () => {
    const instance = (await source.find(UID))!.instances[0];
    const all = await instance.bytes();
    const target = Buffer.alloc(40, 0xee);
    expect(await instance.read(target, 100, 8, 16)).toBe(16);
    expect(target.subarray(8, 24)).toEqual(all.subarray(100, 116));
    expect(target.subarray(0, 8)).toEqual(Buffer.alloc(8, 0xee));
    expect(target.subarray(24)).toEqual(Buffer.alloc(16, 0xee));
    const tail = Buffer.alloc(64);
    expect(await instance.read(tail, all.length - 10)).toBe(10);
    expect(tail.subarray(0, 10)).toEqual(all.subarray(all.length - 10));
    expect(await instance.read(tail, all.length + 5)).toBe(0);
  });

  it('hands a worker the same bytes, as a file or as bytes', async () => {
    const instance = (await source.find(UID))!.instances[1];
    const input = await instance.forWorker();
    const bytes = input.kind === 'file' ? readFileSync(input.path) : Buffer.from(input.bytes);
    expect(bytes).toEqual(await instance.bytes());
  });

  it('does not know a series it does not hold', async () => {
    expect(await source.find('1.2.3.4.5.6.7')).toBeNull();
  });
});

describe('a server on a series in memory', () => {
  const RLE_UID = '1.2.826.0.1.3680043.8.498.3';
  let onFolder: Server;
  let inMemory: Server;
  const folder = (): string => join(tmp.path, 'served');

  beforeAll(() => {
    mkdirSync(folder(), { recursive: true });
    const files = writeSeries(join(folder(), UID), { uid: UID, slices: 4, columns: 6, rows: 5, value: (x, y, k) => 7 * x - 13 * y + 101 * k - 200 });
    const memory = new MemorySource();
    for (const [k, p] of files.entries()) memory.add(UID, `slice ${k}`, readFileSync(p));
    // The same voxels RLE-compressed, in memory only.
    for (let k = 0; k < 4; k++) {
      const pixels = Int16Array.from({ length: 30 }, (_, i) => 7 * (i % 6) - 13 * Math.floor(i / 6) + 101 * k - 200);
      const elements = imageElements({
        rows: 5,
        columns: 6,
        bitsAllocated: 16,
        signed: true,
        pixels,
        seriesInstanceUid: RLE_UID,
        sopInstanceUid: `${RLE_UID}.${k + 1}`,
        instanceNumber: k + 1,
        imagePositionPatient: [-10, -20, -2.5 * k],
        imageOrientationPatient: [1, 0, 0, 0, 1, 0],
        pixelSpacing: [0.7, 0.5],
      });
      expect(memory.addDicom(`rle ${k}`, writeDicom(elements, { transferSyntax: RLE_LOSSLESS, encapsulated: [rleFrame(pixels)] }))).toBe(RLE_UID);
    }
    onFolder = createServer(loadConfig({ flags: { dataDir: folder() }, env: {} }), { useIndex: false });
    inMemory = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'nowhere') }, env: {} }), { source: memory });
  });
  afterAll(async () => {
    await onFolder.close();
    await inMemory.close();
  });

  it.each([
    `/metadata?series=${UID}`,
    `/mpr?series=${UID}&mode=coronal&target=2&ww=500&wl=0`,
    `/oblique?series=${UID}&a=0.4&b=axial&c=2,2,1.5&ww=400&wl=10`,
    `/raw?series=${UID}`,
  ])('answers %s exactly as the folder does', async (url) => {
    const a = await onFolder.app.inject({ method: 'GET', url });
    const b = await inMemory.app.inject({ method: 'GET', url });
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    expect(b.headers['content-type']).toBe(a.headers['content-type']);
    expect(b.rawPayload).toEqual(a.rawPayload);
  });

  it('decodes compressed instances held in memory in the worker pool, to the same voxels', async () => {
    const a = await onFolder.app.inject({ method: 'GET', url: `/raw?series=${UID}&format=voxels` });
    const b = await inMemory.app.inject({ method: 'GET', url: `/raw?series=${RLE_UID}&format=voxels` });
    expect(b.statusCode).toBe(200);
    expect(b.rawPayload).toEqual(a.rawPayload);
    const meta = (await inMemory.app.inject({ method: 'GET', url: `/metadata?series=${RLE_UID}` })).json() as { minValue: number; maxValue: number };
    expect([meta.minValue, meta.maxValue]).toEqual([-252, 138]); // 7*0 - 13*4 + 0 - 200 and 7*5 - 0 + 101*3 - 200;
  });

  it('answers 404 for a series the memory does not hold', async () => {
    const res = await inMemory.app.inject({ method: 'GET', url: '/metadata?series=1.2.3.4' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ result: 'ng', message: 'series 1.2.3.4 is not found' });
  });

  it('loads straight from instances with a pool given bytes, not paths', async () => {
    const memory = inMemory.source as MemorySource;
    expect(memory.seriesUids()).toEqual([UID, RLE_UID].sort());
    const pool = new DecodePool(1);
    try {
      const found = await memory.find(RLE_UID);
      for (const i of found!.instances) expect((await i.forWorker()).kind).toBe('bytes');
      const v = await loadVolume(found!.instances, { maxVoxels: 1e6, pool });
      expect(v.dims).toEqual([6, 5, 4]);
    } finally {
      await pool.close();
    }
  });
});
