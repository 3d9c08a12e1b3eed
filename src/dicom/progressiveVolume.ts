/**
 * A volume while it loads, slice by slice: what the header pass fixed (size, geometry, stored
 * format, each slice's rescale and window) at once, each slice's stored values as soon as they
 * are in place, and the complete Volume at the end.
 *
 * Policy:
 * - Slices are read or decoded in units (a slice, or a group of frames of one multi-frame
 *   instance decoded by one worker task), each unit in a lane (reading, decoding) with its own
 *   number of units under way. Which unit goes next is the lane's SliceQueue's choice (see
 *   sliceQueue.ts): slices waited for first, then outwards from the last one asked for.
 * - Work starts when a slice is first asked for, and on the turn of the event loop after the
 *   volume is made at the latest, so that requests already waiting for it put their slices first.
 * - `slice(z)` resolves when slice z's stored values are in place, and puts z first while
 *   anything waits for it. A waiter whose AbortSignal fires (its client went away) is dropped
 *   and no longer puts its slice first; the load goes on, for the cache and the next request.
 * - The first unit that fails fails the volume: every waiter is rejected with its error (which
 *   names the slice), no further unit starts, and `complete` rejects once the units under way
 *   have ended, so that nothing writes to the voxel buffer after the failure is reported (its
 *   bytes may then be given back to the budget).
 * - When every slice is in place, stored values become modality values (the loader's `finish`,
 *   often in place), and `complete` resolves to the Volume. From then on (and already while that
 *   runs) stored values are no longer available: `axialSlice` returns null and callers use the
 *   complete volume.
 * - `axialSlice(z)` gives slice z's values exactly as the complete volume will hold them, when
 *   the loader could tell them from the header pass and the slice alone (see `EarlyValues`);
 *   otherwise null, and callers wait for `complete`.
 */
import { unprocessable } from '../core/errors.js';
import type { StoredRange } from '../core/volume/modality.js';
import {
  allocateVoxels,
  headerOf,
  type PixelFormat,
  type Volume,
  type VolumeHeader,
  type VoxelArray,
  type VoxelGrid,
} from '../core/volume/volume.js';
import { SliceQueue } from './sliceQueue.js';

/** How one slice's stored values become modality values (Rescale Slope/Intercept, padding range in stored values). */
export interface SliceRescale {
  readonly slope: number;
  readonly intercept: number;
  /** Stored values that are padding, inclusive. */
  readonly padding?: readonly [number, number];
}

/**
 * What the header pass fixes before any pixel is read: the volume's header (size, geometry, each
 * slice's window, attributes: see VolumeHeader), and how its stored values are read and become
 * modality values. The complete volume is the VolumeHeader part with its values (load/finish.ts
 * takes out the fields below, which belong to the load alone).
 */
export interface LoadHeader extends VolumeHeader {
  /** The format stored values are read in; the complete volume's format may be wider (the pixel format rule). */
  readonly storedFormat: PixelFormat;
  /** Each slice's rescale and padding, in z order (identity for a volume that was complete from the start). */
  readonly sliceRescale: readonly SliceRescale[];
  /** Bounds every value of the complete volume lies within, from the headers (see Volume.valueBounds); null when unknown. */
  readonly valueBounds: readonly [number, number] | null;
}

/** A volume being loaded, or loaded: what a request needs, and when. */
export interface VolumeLoad extends LoadHeader {
  /** The complete volume once it is there, else null. */
  readonly volume: Volume | null;
  /** The complete volume, exactly as a whole load makes it; rejects with the load's failure. */
  readonly complete: Promise<Volume>;
  /**
   * Resolves when slice `z`'s stored values are in place (at once when they are), and loads it
   * first meanwhile. Rejects with the load's failure, with `signal.reason` when `signal` fires
   * first, and with RangeError for a `z` outside 0 .. nz - 1.
   */
  slice(z: number, signal?: AbortSignal): Promise<void>;
  /**
   * Slice `z` alone as a grid of one slice (dims [nx, ny, 1]) holding the values the complete
   * volume will hold there (in a format that holds them all, see EarlyValues), in shared memory; null when they
   * cannot be known yet (the slice is not in place, its values depend on other slices, the
   * volume is complete or finishing: use `complete` then).
   */
  axialSlice(z: number): VoxelGrid | null;
}

/**
 * What a slice's values will be in the complete volume, known from the header pass: modality
 * value `stored * slope + intercept` for every voxel that is not padding, and `paddingValue` for
 * padding voxels, or, when `paddingValue` is null, not known before the load completes (the
 * slice's values are then known early only if it holds no padding voxel).
 */
export interface EarlyValues extends SliceRescale {
  readonly paddingValue: number | null;
  /**
   * A format that holds every value the slice can have (Int16, UInt16, Float32; Binary for
   * masks): `axialSlice` gives its grid in it. Any format holding the values windows them to
   * the same bytes (a lookup table and the expression agree).
   */
  readonly format: PixelFormat;
}

/** A unit of loading work: slices read or decoded together. */
export interface LoadUnit {
  /** Index of the lane (LoadPlan.lanes) it runs in. */
  readonly lane: number;
  /** The slices (z) it puts in place. */
  readonly slices: readonly number[];
  /**
   * Puts the stored values of its slices in place (normalised) and resolves to their value
   * ranges, in the order of `slices`; rejects with an error that names the slice.
   */
  run(): Promise<StoredRange[]>;
}

/** Everything a ProgressiveVolume needs from the loader. */
export interface LoadPlan {
  header: LoadHeader;
  /** The stored values, nx * ny * nz of `header.storedFormat`, in shared memory. */
  stored: VoxelArray;
  /** Units under way at once, per lane. */
  lanes: readonly number[];
  /** Every slice belongs to exactly one unit. */
  units: readonly LoadUnit[];
  /** Per slice, its values before completion when the header pass tells them; null otherwise. */
  early: readonly (EarlyValues | null)[];
  /** Builds the complete volume from the stored values (every slice in place) and their ranges. */
  finish(ranges: readonly StoredRange[]): Promise<Volume>;
}

/** Slice states (0: waiting to be loaded). */
const UNDER_WAY = 1;
const IN_PLACE = 2;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  detach: () => void;
}

interface Lane {
  limit: number;
  running: number;
  queue: SliceQueue;
}

/** A class whose instances hold, as their own fields, those of the header they are made with. */
type HoldingHeader = new (header: LoadHeader) => LoadHeader;

/** The base of ProgressiveVolume: its header's fields, so that the class lists none of them. */
const WithHeader = class {
  constructor(header: LoadHeader) {
    Object.assign(this, header);
  }
} as HoldingHeader;

export class ProgressiveVolume extends WithHeader implements VolumeLoad {
  readonly complete: Promise<Volume>;

  private phase: 'loading' | 'finishing' | 'complete' | 'failed' = 'loading';
  private result: Volume | null = null;
  private failure: unknown = null;
  private plan: LoadPlan | null;
  private readonly state: Uint8Array;
  private readonly ranges: StoredRange[];
  private readonly unitOf: Int32Array;
  private readonly lanes: Lane[];
  private readonly waiters = new Map<number, Set<Waiter>>();
  private inPlace = 0;
  private running = 0;
  private resolveComplete!: (v: Volume) => void;
  private rejectComplete!: (err: unknown) => void;

  /**
   * @param plan the header, the stored voxels and the units that fill them (see LoadPlan)
   * @param completed called with the complete volume just before `complete` resolves
   */
  constructor(
    plan: LoadPlan,
    private readonly completed?: (v: Volume) => void,
  ) {
    super(plan.header);
    this.plan = plan;
    const nz = this.dims[2];
    this.state = new Uint8Array(nz);
    this.ranges = new Array<StoredRange>(nz);
    this.unitOf = new Int32Array(nz).fill(-1);
    for (const [u, unit] of plan.units.entries()) for (const z of unit.slices) this.unitOf[z] = u;
    if (this.unitOf.some((u) => u < 0)) throw new RangeError('every slice needs a unit that loads it');
    this.lanes = plan.lanes.map((limit, l) => ({
      limit: Math.max(1, limit),
      running: 0,
      queue: new SliceQueue(nz, (z) => plan.units[this.unitOf[z]].lane !== l),
    }));
    this.complete = new Promise<Volume>((resolve, reject) => {
      this.resolveComplete = resolve;
      this.rejectComplete = reject;
    });
    // Whoever awaits `complete` sees the failure; nobody awaiting it is not an error.
    this.complete.catch(() => {});
    setImmediate(() => {
      for (let l = 0; l < this.lanes.length; l++) this.pump(l);
    });
  }

  get volume(): Volume | null {
    return this.result;
  }

  /** Whether slice `z`'s stored values are in place (they stay so until the volume is finishing). */
  isInPlace(z: number): boolean {
    return this.state[z] === IN_PLACE;
  }

  slice(z: number, signal?: AbortSignal): Promise<void> {
    const nz = this.dims[2];
    if (!Number.isInteger(z) || z < 0 || z >= nz) return Promise.reject(new RangeError(`slice ${z} is not in 0 .. ${nz - 1}`));
    if (this.phase === 'failed') return Promise.reject(this.failure);
    if (this.state[z] === IN_PLACE) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    const lane = this.lanes[this.plan!.units[this.unitOf[z]].lane];
    return new Promise<void>((resolve, reject) => {
      const waiters = this.waiters.get(z) ?? new Set<Waiter>();
      this.waiters.set(z, waiters);
      const onAbort = (): void => {
        waiters.delete(waiter);
        if (waiters.size === 0) this.waiters.delete(z);
        lane.queue.withdraw(z);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(waiter);
      lane.queue.request(z);
      this.pump(this.lanes.indexOf(lane));
    });
  }

  /** How many requests wait for slices now (for tests and status). */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  axialSlice(z: number): VoxelGrid | null {
    if (this.phase !== 'loading' || this.state[z] !== IN_PLACE) return null;
    const plan = this.plan!;
    const rule = plan.early[z];
    if (!rule) return null;
    const { padding, paddingValue } = rule;
    if (padding && paddingValue === null && this.ranges[z].paddingCount > 0) return null;
    const [nx, ny] = this.dims;
    const count = nx * ny;
    const from = z * count;
    const stored = plan.stored.subarray(from, from + count);
    const data = allocateVoxels(rule.format, count);
    const { slope, intercept } = rule;
    if (slope === 1 && intercept === 0 && !padding) {
      data.set(stored);
    } else {
      const lo = padding ? padding[0] : Infinity;
      const hi = padding ? padding[1] : -Infinity;
      const pad = paddingValue ?? 0;
      for (let i = 0; i < count; i++) {
        const v = stored[i];
        data[i] = v >= lo && v <= hi ? pad : v * slope + intercept;
      }
    }
    return { dims: [nx, ny, 1], voxelSize: this.voxelSize, pixelFormat: rule.format, data };
  }

  /** Starts units of lane `l` while it has room and slices to load. */
  private pump(l: number): void {
    const lane = this.lanes[l];
    const plan = this.plan;
    while (plan && this.phase === 'loading' && lane.running < lane.limit) {
      const z = lane.queue.next();
      if (z < 0) return;
      const unit = plan.units[this.unitOf[z]];
      for (const s of unit.slices) {
        lane.queue.take(s);
        this.state[s] = UNDER_WAY;
      }
      lane.running++;
      this.running++;
      let work: Promise<StoredRange[]>;
      try {
        work = unit.run();
      } catch (err) {
        work = Promise.reject(err);
      }
      work.then(
        (ranges) => this.unitDone(l, unit, ranges),
        (err: unknown) => this.unitFailed(l, err),
      );
    }
  }

  private unitDone(l: number, unit: LoadUnit, ranges: StoredRange[]): void {
    this.lanes[l].running--;
    this.running--;
    if (this.phase === 'failed') {
      this.settleFailure();
      return;
    }
    for (const [i, z] of unit.slices.entries()) {
      this.state[z] = IN_PLACE;
      this.ranges[z] = ranges[i];
      this.inPlace++;
      const set = this.waiters.get(z);
      if (!set) continue;
      this.waiters.delete(z);
      for (const w of set) {
        w.detach();
        w.resolve();
      }
    }
    if (this.inPlace === this.dims[2]) this.finish();
    else this.pump(l);
  }

  private unitFailed(l: number, err: unknown): void {
    this.lanes[l].running--;
    this.running--;
    this.fail(err);
    this.settleFailure();
  }

  /** Records the first failure and rejects every waiter with it; later failures are ignored. */
  private fail(err: unknown): void {
    if (this.phase === 'failed') return;
    this.phase = 'failed';
    this.failure = err instanceof Error ? err : unprocessable(String(err));
    for (const set of this.waiters.values()) {
      for (const w of set) {
        w.detach();
        w.reject(this.failure);
      }
    }
    this.waiters.clear();
  }

  /** Rejects `complete` once no unit is under way any more. */
  private settleFailure(): void {
    if (this.running > 0 || this.plan === null) return;
    this.plan = null;
    this.rejectComplete(this.failure);
  }

  private finish(): void {
    this.phase = 'finishing';
    const plan = this.plan!;
    plan.finish(this.ranges).then(
      (volume) => {
        this.phase = 'complete';
        this.result = volume;
        this.plan = null;
        // Waiters first: a callback that throws must not leave them waiting.
        this.resolveComplete(volume);
        this.completed?.(volume);
      },
      (err: unknown) => {
        this.phase = 'failed';
        this.failure = err;
        this.plan = null;
        this.rejectComplete(err);
      },
    );
  }
}

/** A volume that is complete already, behind the same interface. */
export function loadedVolume(v: Volume): VolumeLoad {
  // Every request for a cached volume asks: the same (immutable) load each time, made once.
  let load = loadsOf.get(v);
  if (!load) {
    load = makeLoadedVolume(v);
    loadsOf.set(v, load);
  }
  return load;
}

const loadsOf = new WeakMap<Volume, VolumeLoad>();

function makeLoadedVolume(v: Volume): VolumeLoad {
  const identity: SliceRescale = Object.freeze({ slope: 1, intercept: 0 });
  const complete = Promise.resolve(v);
  return {
    ...headerOf(v),
    storedFormat: v.pixelFormat,
    sliceRescale: v.sliceWindows.map(() => identity),
    valueBounds: v.valueBounds ?? null,
    volume: v,
    complete,
    slice(z: number): Promise<void> {
      const nz = v.dims[2];
      if (!Number.isInteger(z) || z < 0 || z >= nz) return Promise.reject(new RangeError(`slice ${z} is not in 0 .. ${nz - 1}`));
      return Promise.resolve();
    },
    axialSlice: () => null,
  };
}
