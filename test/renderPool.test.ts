/**
 * Rendering on worker threads gives the same bytes as rendering on the calling thread, reading
 * the volume in place from shared memory; the pool under it survives failing workers.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { decode } from 'fast-png';
import { afterAll, describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { obliqueLayout } from '../src/core/mpr/oblique.js';
import { allocateVoxels, PixelFormat, type VoxelGrid } from '../src/core/volume/volume.js';
import { RenderPool } from '../src/services/renderPool.js';
import { type RenderJob, renderPng, type VolumeJob } from '../src/services/renderJob.js';
import { WorkerPool } from '../src/workers/workerPool.js';
import { seriesFiles } from './fixtures/series.js';

const NX = 37;
const NY = 29;
const NZ = 11;

function grid(shared: boolean): VoxelGrid {
  const data = shared ? (allocateVoxels(PixelFormat.Int16, NX * NY * NZ) as Int16Array) : new Int16Array(NX * NY * NZ);
  for (let z = 0; z < NZ; z++) for (let y = 0; y < NY; y++) for (let x = 0; x < NX; x++) data[x + NX * (y + NY * z)] = 13 * x - 7 * y + 50 * z - 400;
  return { dims: [NX, NY, NZ], voxelSize: [0.7, 0.6, 2.5], pixelFormat: PixelFormat.Int16, data };
}

const pool = new RenderPool(2);
afterAll(() => pool.close());

describe('RenderPool', () => {
  const window = { width: 600, level: -50, invert: false };
  const jobs = (g: VoxelGrid): VolumeJob[] => [
    { kind: 'mpr', grid: g, mode: 'axial', target: 4, window },
    { kind: 'mpr', grid: g, mode: 'coronal', target: 20, window: { ...window, invert: true } },
    { kind: 'mpr', grid: g, mode: 'sagittal', target: 36, window },
    { kind: 'oblique', grid: g, layout: obliqueLayout(g, { a: 0.7, b: 'axial', c: [18, 14, 5] }, 4096), window },
    { kind: 'oblique', grid: g, layout: obliqueLayout(g, { a: -1.2, b: 'sagittal', c: [3, 20.5, 7.25] }, 4096), window },
  ];

  it('renders on workers exactly what the calling thread renders', async () => {
    const shared = grid(true);
    expect(shared.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    const fromPool = await Promise.all(jobs(shared).map((j) => pool.render(j)));
    const here = jobs(shared).map(renderPng);
    for (let i = 0; i < here.length; i++) expect(fromPool[i].equals(here[i]), `job ${i}`).toBe(true);
    expect(pool.stats().workers).toBeGreaterThan(0);
  });

  it('renders a frame of an instance it reads itself, and keeps the status of what fails there', async () => {
    const [file] = seriesFiles({ columns: 5, rows: 3, slices: 1, value: (x, y) => 100 * x + 10 * y });
    const job: RenderJob = {
      kind: 'frame',
      input: { kind: 'bytes', bytes: file.bytes },
      frame: 0,
      maxInflatedBytes: 1 << 20,
      window: { center: 250, width: 501, fn: 'linear' },
      type: 'image/png',
      quality: 90,
    };
    const png = decode(await pool.render(job));
    expect([png.width, png.height, png.channels]).toEqual([5, 3, 1]);
    // Stored value v, identity modality LUT, PS3.3 linear VOI: ((v - 249.5) / 500 + 0.5) * 255, rounded.
    const expected = Array.from({ length: 15 }, (_, i) => {
      const v = 100 * (i % 5) + 10 * Math.floor(i / 5);
      return Math.round(Math.min(255, Math.max(0, ((v - 249.5) / 500 + 0.5) * 255)));
    });
    expect(Array.from(png.data)).toEqual(expected);
    const broken = pool.render({ ...job, input: { kind: 'bytes', bytes: Buffer.from('not DICOM at all') } });
    await expect(broken).rejects.toBeInstanceOf(CircusError);
    await expect(broken).rejects.toMatchObject({ status: 422, message: expect.stringMatching(/cannot be read/) });
  });

  it('reads the volume in place: a change to the shared voxels shows in the next image', async () => {
    const shared = grid(true);
    const job: RenderJob = { kind: 'mpr', grid: shared, mode: 'axial', target: 0, window };
    const before = await pool.render(job);
    shared.data.fill(-5000, 0, NX * NY); // below the window: black
    const after = await pool.render(job);
    expect(after.equals(before)).toBe(false);
    expect(after.equals(renderPng(job))).toBe(true);
  });

  it('renders a grid outside shared memory on the calling thread, to the same bytes', async () => {
    const plain = grid(false);
    const shared = grid(true);
    const fresh = new RenderPool(1);
    try {
      for (const [a, b] of jobs(plain).map((j, i) => [j, jobs(shared)[i]] as const)) {
        expect((await fresh.render(a)).equals(await pool.render(b))).toBe(true);
      }
      // Not one worker was started: the plain grid never left this thread.
      expect(fresh.stats()).toMatchObject({ workers: 0, busy: 0, queued: 0 });
    } finally {
      await fresh.close();
    }
  });

  it('passes a failure back as an error naming it', async () => {
    const job: RenderJob = { kind: 'mpr', grid: grid(true), mode: 'axial', target: NZ, window };
    await expect(pool.render(job)).rejects.toThrow(/parameter 'target' must be an integer from 0 to 10/);
  });
});

describe('memory of volumes the workers have seen', () => {
  it('is freed once the volume is dropped: idle workers collect their garbage', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const bytes = 96 * 1024 * 1024;
    const before = process.memoryUsage().arrayBuffers;
    // The volume lives only inside this function: once it returns, nothing here holds it.
    await (async () => {
      const grid: VoxelGrid = {
        dims: [1024, 1024, 48],
        voxelSize: [1, 1, 1],
        pixelFormat: PixelFormat.Int16,
        data: allocateVoxels(PixelFormat.Int16, bytes / 2),
      };
      const window = { width: 100, level: 0, invert: false };
      await Promise.all([0, 1, 2, 3].map((t) => pool.render({ kind: 'mpr', grid, mode: 'axial', target: t, window })));
      expect(process.memoryUsage().arrayBuffers - before).toBeGreaterThan(bytes * 0.9);
    })();
    let held = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 40 && held >= bytes / 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      held = process.memoryUsage().arrayBuffers - before;
    }
    expect(held).toBeLessThan(bytes / 2);
  });
});

describe('WorkerPool', () => {
  const url = new URL('./fixtures/echoWorker.ts', import.meta.url);

  it('runs tasks, fails only the task of a worker that dies, and replaces the worker', async () => {
    const echo = new WorkerPool<string, string>(url, 'test', 2);
    try {
      expect(await Promise.all(['a', 'b', 'c'].map((t) => echo.run(t)))).toEqual(['echo a', 'echo b', 'echo c']);
      await expect(echo.run('throw')).rejects.toThrow('asked to throw');
      await expect(echo.run('exit')).rejects.toThrow('a test worker failed: exited with code 3');
      expect(await echo.run('d')).toBe('echo d');
      expect(echo.stats()).toMatchObject({ size: 2, busy: 0, queued: 0 });
    } finally {
      await echo.close();
    }
    await expect(echo.run('e')).rejects.toThrow('the test pool is closed');
  });

  it('stops a task that runs past its time, and goes on with a new worker', async () => {
    const echo = new WorkerPool<string, string>(url, 'test', 1, 1500);
    try {
      expect(await echo.run('warm')).toBe('echo warm'); // the worker has started
      const started = Date.now();
      await expect(echo.run('loop')).rejects.toThrow('a test task ran longer than 1500 ms and was stopped');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await echo.run('after')).toBe('echo after');
    } finally {
      await echo.close();
    }
  });

  it('fails a task that cannot be sent to a worker, and runs the next one', async () => {
    const echo = new WorkerPool<unknown, string>(url, 'test', 1);
    try {
      await expect(echo.run({ f: () => 1 })).rejects.toThrow(/a test task could not be sent to its worker/);
      expect(await echo.run('next')).toBe('echo next');
    } finally {
      await echo.close();
    }
  });

  it('refuses queued tasks when closed', async () => {
    const echo = new WorkerPool<string, string>(url, 'test', 1);
    const running = expect(echo.run('x')).rejects.toThrow('the test pool is closed');
    const queued = expect(echo.run('y')).rejects.toThrow('the test pool is closed');
    await echo.close();
    await running;
    await queued;
  });
});
