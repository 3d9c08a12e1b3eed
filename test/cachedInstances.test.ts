/**
 * The instance cache as a wrapper (`CachedInstances`) around a source that is not the DICOMweb
 * one: a series in memory behind a counting source, which says how often its bytes were read,
 * what it was told it would be asked for, and can be made to fail as a PACS that is down. What
 * comes through the cache must be, byte for byte, what the source holds; the folder must stay
 * under its byte bound, the least recently used going first.
 */
import { readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { badGateway } from '../src/core/errors.js';
import type { WorkerInput } from '../src/dicom/instance.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { CachedInstances } from '../src/sources/cachedInstances.js';
import { InstanceCache } from '../src/sources/instanceCache.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesInstances, SeriesSource, SourceInstance } from '../src/sources/source.js';
import { seriesFiles, TempDir } from './fixtures/series.js';

const UID = '1.2.826.0.1.3680043.8.498.91';
const UNNAMED = '1.2.826.0.1.3680043.8.498.92';
const SLICES = 5;

/** A source in memory that counts the reads of its instances' bytes and can be taken down. */
class CountingSource implements SeriesSource {
  /** Reads of bytes by instance name. */
  readonly reads = new Map<string, number>();
  /** The names of the instances of each `willRead` it was told. */
  readonly told: string[][] = [];
  finds = 0;
  /** What `find` throws while set. */
  down: Error | null = null;
  constructor(readonly memory: MemorySource) {}

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    this.finds++;
    if (this.down) throw this.down;
    const found = await this.memory.find(seriesUid);
    if (!found) return null;
    return {
      instances: found.instances.map((i) => new CountedInstance(i, this)),
      willRead: (instances) => this.told.push(instances.map((i) => i.name)),
    };
  }

  read(name: string): void {
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
  }

  totalReads(): number {
    return [...this.reads.values()].reduce((a, b) => a + b, 0);
  }
}

class CountedInstance implements SourceInstance {
  constructor(
    private readonly inner: SourceInstance,
    private readonly counts: CountingSource,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  get sopInstanceUid(): string | undefined {
    return this.inner.sopInstanceUid;
  }
  read(target: Buffer, position: number, targetOffset?: number, length?: number): Promise<number> {
    this.counts.read(this.name);
    return this.inner.read(target, position, targetOffset, length);
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  bytes(): Promise<Buffer> {
    this.counts.read(this.name);
    return this.inner.bytes();
  }
  forWorker(): Promise<WorkerInput> {
    return this.inner.forWorker();
  }
}

let tmp: TempDir;
let files: { name: string; bytes: Buffer }[];
/** The SOP Instance UID of each file by name, as MemorySource read it from the file. */
let sops: Map<string, string>;
let memory: MemorySource;

const cacheDir = (): string => join(tmp.path, 'cache');
const dcmFiles = (): string[] => readdirSync(cacheDir()).filter((f) => f.endsWith('.dcm'));
const bytesIn = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
const bytesOf = (name: string): Buffer => files.find((f) => f.name === name)!.bytes;

/** A fresh wrapper on the cache folder (counted first), around a fresh counting source. */
async function cached(maxBytes = 64 * 1024 * 1024): Promise<{ wrapper: CachedInstances; source: CountingSource; logged: string[] }> {
  const source = new CountingSource(memory);
  const logged: string[] = [];
  const cache = await InstanceCache.open(cacheDir(), maxBytes);
  return { wrapper: new CachedInstances(source, cache, { log: (m) => logged.push(m) }), source, logged };
}

/** Reads every instance of UID whole through `wrapper`, one after the other (last first when `reversed`); their bytes by name. */
async function readAll(wrapper: SeriesSource, reversed = false): Promise<Map<string, Buffer>> {
  const found = await wrapper.find(UID);
  const out = new Map<string, Buffer>();
  const instances = reversed ? [...found!.instances].reverse() : found!.instances;
  for (const i of instances) out.set(i.name, await i.bytes());
  return out;
}

beforeEach(async () => {
  tmp = new TempDir('circus-rs-cached-');
  files = seriesFiles({ uid: UID, slices: SLICES, columns: 8, rows: 6, value: (x, y, k) => 3 * x - 7 * y + 50 * k });
  memory = new MemorySource();
  sops = new Map();
  for (const f of files) memory.addDicom(f.name, f.bytes);
  for (const i of (await memory.find(UID))!.instances) sops.set(i.name, i.sopInstanceUid!);
  // A series the source does not name by SOP Instance UID (added as bytes, not as DICOM).
  for (const f of seriesFiles({ uid: UNNAMED, slices: 2 })) memory.add(UNNAMED, f.name, f.bytes);
});
afterEach(() => tmp.remove());

describe('CachedInstances around a source in memory', () => {
  it('reads each instance from the source once, keeps it under its SOP Instance UID, and lists the series', async () => {
    expect(new Set(sops.values()).size).toBe(SLICES);
    const { wrapper, source } = await cached();
    const read = await readAll(wrapper);
    expect([...read.keys()]).toEqual(files.map((f) => f.name));
    for (const f of files) expect(read.get(f.name)!.equals(f.bytes)).toBe(true);
    expect(source.totalReads()).toBe(SLICES);
    // Every instance was asked for: the source was told so before the first read.
    expect(source.told).toEqual([files.map((f) => f.name)]);
    await wrapper.idle();
    expect(dcmFiles().sort()).toEqual(files.map((f) => `${sops.get(f.name)}.dcm`).sort());
    for (const f of files) expect(readFileSync(join(cacheDir(), `${sops.get(f.name)}.dcm`)).equals(f.bytes)).toBe(true);
    const manifest = JSON.parse(readFileSync(join(cacheDir(), `${UID}.series.json`), 'utf8'));
    expect(manifest).toEqual({ instances: files.map((f) => ({ sopInstanceUid: sops.get(f.name), name: f.name })) });
    expect(wrapper.stats()).toEqual({ fromCache: 0, fromSource: SLICES });
  });

  it('serves the bytes from the cache on a later lookup, reading nothing from the source, and loads the same volume', async () => {
    const first = await cached();
    await readAll(first.wrapper);
    await first.wrapper.idle();
    const { wrapper, source } = await cached();
    const found = (await wrapper.find(UID))!;
    expect(found.instances.map((i) => i.name)).toEqual(files.map((f) => f.name));
    for (const [k, instance] of found.instances.entries()) {
      const expected = files[k].bytes;
      expect((await instance.bytes()).equals(expected)).toBe(true);
      expect(await instance.size()).toBe(expected.length);
      const part = Buffer.alloc(24, 0xee);
      expect(await instance.read(part, 120, 4, 16)).toBe(16);
      expect(part.subarray(4, 20).equals(expected.subarray(120, 136))).toBe(true);
      expect(part.subarray(0, 4).equals(Buffer.alloc(4, 0xee))).toBe(true);
      expect(await instance.read(part, expected.length)).toBe(0);
      // A worker is given the bytes, never the cache file's path.
      const input = await instance.forWorker();
      expect(input.kind).toBe('bytes');
      expect(Buffer.from((input as { bytes: Uint8Array }).bytes).equals(expected)).toBe(true);
    }
    expect(source.totalReads()).toBe(0);
    expect(source.finds).toBe(1); // the source's list is asked for every time
    expect(source.told).toEqual([]);
    expect(wrapper.stats()).toEqual({ fromCache: SLICES, fromSource: 0 });
    expect(wrapper.cacheStats()).toMatchObject({ hits: SLICES, files: SLICES + 1 });
    // The volume from the cache is the volume from the source.
    const fromCache = await loadVolume((await wrapper.find(UID))!.instances, { maxVoxels: 1e6 });
    const direct = await loadVolume((await memory.find(UID))!.instances, { maxVoxels: 1e6 });
    expect(fromCache.dims).toEqual([8, 6, SLICES]);
    expect(fromCache.pixelFormat).toBe(direct.pixelFormat);
    expect(Array.from(fromCache.data)).toEqual(Array.from(direct.data));
    expect(source.totalReads()).toBe(0);
  });

  it('tells the source it will be asked only for the instances the cache does not hold, and reads only those', async () => {
    const first = await cached();
    await readAll(first.wrapper);
    await first.wrapper.idle();
    const gone = files[2].name;
    rmSync(join(cacheDir(), `${sops.get(gone)}.dcm`));
    // Cut short, as by a crash: refused, removed and read from the source again.
    const cut = files[4].name;
    const cutPath = join(cacheDir(), `${sops.get(cut)}.dcm`);
    truncateSync(cutPath, statSync(cutPath).size - 10);
    const { wrapper, source } = await cached();
    const read = await readAll(wrapper);
    for (const f of files) expect(read.get(f.name)!.equals(f.bytes)).toBe(true);
    // Told at the first miss: the cut file was still taken as held then (it is checked when read).
    expect(source.told).toEqual([[gone]]);
    expect([...source.reads.entries()].sort()).toEqual([
      [gone, 1],
      [cut, 1],
    ]);
    expect(wrapper.stats()).toEqual({ fromCache: SLICES - 2, fromSource: 2 });
    expect(wrapper.cacheStats().rejected).toBe(1);
    await wrapper.idle();
    expect(readFileSync(cutPath).equals(bytesOf(cut))).toBe(true);
    expect(readFileSync(join(cacheDir(), `${sops.get(gone)}.dcm`)).equals(bytesOf(gone))).toBe(true);
  });

  it('reads an instance from the source when its cache file goes under a read', async () => {
    const first = await cached();
    await readAll(first.wrapper);
    await first.wrapper.idle();
    const { wrapper, source } = await cached();
    const instance = (await wrapper.find(UID))!.instances[1];
    expect(await instance.size()).toBe(files[1].bytes.length); // found in the cache
    rmSync(join(cacheDir(), `${sops.get(files[1].name)}.dcm`));
    expect((await instance.bytes()).equals(files[1].bytes)).toBe(true);
    expect(source.totalReads()).toBe(1);
    expect(wrapper.stats()).toEqual({ fromCache: 1, fromSource: 1 });
  });

  it('serves a series whose instances are all in the cache while the source is down, and only such a series', async () => {
    const first = await cached();
    await readAll(first.wrapper);
    await first.wrapper.idle();
    const { wrapper, source, logged } = await cached();
    source.down = badGateway('the archive cannot be reached');
    const read = await readAll(wrapper);
    expect([...read.keys()]).toEqual(files.map((f) => f.name));
    for (const f of files) expect(read.get(f.name)!.equals(f.bytes)).toBe(true);
    expect(source.totalReads()).toBe(0);
    expect(logged).toEqual([`series ${UID} is served from the instance cache: the archive cannot be reached`]);
    // One instance missing: the source's failure stands.
    rmSync(join(cacheDir(), `${sops.get(files[0].name)}.dcm`));
    const again = await cached();
    again.source.down = badGateway('the archive cannot be reached');
    await expect(again.wrapper.find(UID)).rejects.toMatchObject({ code: 'BAD_GATEWAY', message: 'the archive cannot be reached' });
    // A failure that is not the source's being unreachable is never covered up.
    const other = await cached();
    other.source.down = new Error('a bug');
    await expect(other.wrapper.find(UID)).rejects.toThrow('a bug');
  });

  it('finds an instance served from the kept list in the source again when its file goes', async () => {
    const first = await cached();
    await readAll(first.wrapper);
    await first.wrapper.idle();
    const { wrapper, source } = await cached();
    source.down = badGateway('the archive cannot be reached');
    const instances = (await wrapper.find(UID))!.instances;
    expect(await instances[3].size()).toBe(files[3].bytes.length);
    rmSync(join(cacheDir(), `${sops.get(files[3].name)}.dcm`));
    // Still down: the read fails with the source's failure.
    await expect(instances[3].bytes()).rejects.toMatchObject({ code: 'BAD_GATEWAY' });
    // Back: found again, told that only this instance is wanted, read from the source.
    source.down = null;
    expect((await instances[3].bytes()).equals(files[3].bytes)).toBe(true);
    expect(source.told).toEqual([[files[3].name]]);
    expect([...source.reads.entries()]).toEqual([[files[3].name, 1]]);
  });

  it('keeps the folder under its byte bound, the least recently read going first', async () => {
    const sizes = files.map((f) => f.bytes.length);
    const manifestBytes = Buffer.byteLength(JSON.stringify({ instances: files.map((f) => ({ sopInstanceUid: sops.get(f.name), name: f.name })) }));
    // Room for the series' list and two instances, not for a third (their sizes differ by a few bytes at most).
    expect(3 * Math.min(...sizes)).toBeGreaterThan(2.5 * Math.max(...sizes));
    const bound = manifestBytes + Math.floor(2.5 * Math.max(...sizes));
    const { wrapper, source } = await cached(bound);
    const read = await readAll(wrapper);
    for (const f of files) expect(read.get(f.name)!.equals(f.bytes)).toBe(true);
    await wrapper.idle();
    expect(bytesIn(cacheDir())).toBeLessThanOrEqual(bound);
    // The two read last are held, and the series' list (used with each of them) outlives the others.
    expect(dcmFiles().sort()).toEqual(
      files
        .slice(-2)
        .map((f) => `${sops.get(f.name)}.dcm`)
        .sort(),
    );
    expect(readdirSync(cacheDir())).toContain(`${UID}.series.json`);
    expect(wrapper.cacheStats()).toMatchObject({ files: 3, bytes: bytesIn(cacheDir()), evicted: SLICES - 2, maxBytes: bound });
    // Read again, the held ones first (a miss before them would evict them): those two come from
    // the cache, the others from the source again.
    const again = await cached(bound);
    const second = await readAll(again.wrapper, true);
    for (const f of files) expect(second.get(f.name)!.equals(f.bytes)).toBe(true);
    expect(again.wrapper.stats()).toEqual({ fromCache: 2, fromSource: SLICES - 2 });
    expect([...again.source.reads.keys()].sort()).toEqual(
      files
        .slice(0, -2)
        .map((f) => f.name)
        .sort(),
    );
    expect(source.totalReads()).toBe(SLICES);
  });

  it('keeps no instance larger than the whole bound, and still serves its bytes', async () => {
    const { wrapper } = await cached(Math.min(...files.map((f) => f.bytes.length)) - 1);
    const read = await readAll(wrapper);
    for (const f of files) expect(read.get(f.name)!.equals(f.bytes)).toBe(true);
    await wrapper.idle();
    expect(dcmFiles()).toEqual([]);
    expect(wrapper.stats()).toEqual({ fromCache: 0, fromSource: SLICES });
  });

  it('hands on a series the source does not name by SOP Instance UID as it is, keeping nothing', async () => {
    const { wrapper, source } = await cached();
    const found = (await wrapper.find(UNNAMED))!;
    const direct = (await memory.find(UNNAMED))!;
    expect(found.instances.map((i) => i.name)).toEqual(direct.instances.map((i) => i.name));
    for (const [k, i] of found.instances.entries()) expect((await i.bytes()).equals(await direct.instances[k].bytes())).toBe(true);
    await wrapper.idle();
    expect(readdirSync(cacheDir())).toEqual([]);
    expect(source.totalReads()).toBe(2);
    expect(await wrapper.find('1.2.3.4.5.6.7')).toBeNull();
  });

  it('lists and probes through the source, and only when the source can', async () => {
    const cache = await InstanceCache.open(cacheDir(), 1 << 20);
    const wrapper = new CachedInstances(memory, cache);
    expect((await wrapper.listSeries!()).map((s) => s.seriesUid).sort()).toEqual([UID, UNNAMED].sort());
    expect(wrapper.readiness).toBeUndefined();
    // The counting source lists nothing: neither does the cache in front of it.
    expect((await cached()).wrapper.listSeries).toBeUndefined();
    const probed = new CachedInstances({ find: async () => null, readiness: async () => 'the archive refuses the credentials' }, cache);
    expect(probed.listSeries).toBeUndefined();
    expect(await probed.readiness!()).toBe('the archive refuses the credentials');
  });
});
