/**
 * Builds one Volume from the instances of a series (files, buffers: see dicom/instance.ts),
 * slice by slice, so that a slice can be shown before the whole volume is there. `openVolume`
 * runs four steps, each in its own file under load/, each taking what the one before gives:
 *
 * 1. Header pass (load/headerPass.ts): headers of every instance are read (first kilobytes only);
 *    instances that are not DICOM, are truncated, or belong to another series are skipped with a
 *    logged reason. A multi-frame instance gives one slice per frame. Every slice is checked
 *    (pixel data, monochrome, a decodable transfer syntax, 1, 8 or 16 bits, consistent with the
 *    first).
 * 2. Plan (load/plan.ts): the slices are ordered (core/volume): size, geometry, stored format and
 *    each slice's rescale and window are then fixed. With `allowStack`, slices that are not one
 *    volume for a reason of geometry alone (orientations, positions, PixelSpacing: a
 *    SliceGeometryError) are ordered as a stack of images instead (`stackSlices`: InstanceNumber,
 *    then source order; slice spacing 1), and the load and its volume say `stack: true`;
 *    everything else (checks, limits, loading, values) is the same. The voxel bytes are reserved
 *    with the caller (cache budget) before anything is allocated, then one buffer of the stored
 *    type is allocated in shared memory, and `openVolume` returns a ProgressiveVolume
 *    (progressiveVolume.ts) that fills it.
 * 3. Load units (load/units.ts): slices are read or decoded in the order its queue decides
 *    (slices waited for first, see sliceQueue.ts): uncompressed pixel data is read straight into
 *    its place (no second copy for little-endian data); compressed frames are decoded by the
 *    worker pool straight into their place in the shared buffer. Each slice's stored bits are
 *    normalised (BitsStored < BitsAllocated) and its value range measured as soon as it is in
 *    place (by the worker for compressed frames).
 * 4. Finish (load/finish.ts): once every slice is in place, modality values are computed (in
 *    place where the format allows it) and the narrowest exact pixel format chosen: `complete`
 *    resolves to the Volume.
 *
 * Before completion a slice's values are known exactly when the header pass tells them (see
 * `earlyValues` in load/plan.ts); otherwise they wait for the finish.
 *
 * BitsAllocated 1 (masks, label maps; PS3.5 8.1.1 and 8.2): pixels are packed 8 a byte, the
 * first in the least significant bit, and the frames of a multi-frame file follow each other
 * bit by bit, so frame f is bits [f n, (f + 1) n) of the pixel data (n = rows * columns; a frame
 * need not start on a byte boundary). Only native data is read (compressed masks are refused,
 * 422); the bytes holding a frame are read and unpacked to one byte (0 or 1) a voxel, and the
 * volume is Binary with values 0 and 1 as they are: Rescale Slope/Intercept, padding and window
 * attributes do not apply. Under Explicit VR Big Endian, OW pixel data is in 16-bit words
 * written big-endian, so the bytes are swapped in pairs (counted from the value's start) first.
 *
 * A source that cannot give an instance's bytes (a PACS that is down or too slow: 502, 504,
 * `isSourceFailure`) fails the load with its own error wherever that happens, in the header
 * pass or later: such an instance is never skipped like an unreadable file nor taken for a bad
 * slice (422).
 *
 * Work on the main thread is cut into short steps so the event loop keeps answering.
 */
import type { Volume } from '../core/volume/volume.js';
import { cooperative } from '../util/async.js';
import type { Instance } from './instance.js';
import type { DecodePool } from './decodePool.js';
import type { ReadLimits } from './fileReader.js';
import { finishVolume } from './load/finish.js';
import { headerPass } from './load/headerPass.js';
import { earlyValues, planVolume, reserveStored } from './load/plan.js';
import { loadUnits } from './load/units.js';
import { ProgressiveVolume } from './progressiveVolume.js';

export interface LoadOptions {
  /** Only instances of this series are used (others in the same folder are skipped). */
  seriesInstanceUid?: string;
  /** Largest number of voxels a volume may have (413 beyond). */
  maxVoxels: number;
  /** Largest decoded size of one frame in bytes (413 beyond); 256 MiB by default. */
  maxFrameBytes?: number;
  /** Called with the bytes the volume needs before they are allocated (again if they grow); throws to refuse. */
  reserve?: (bytes: number) => Promise<void>;
  readLimits?: ReadLimits;
  log?: (message: string) => void;
  /** Instances read at once. */
  concurrency?: number;
  /** Decodes compressed frames; without it a compressed series is refused (422). */
  pool?: DecodePool;
  /** Called with the complete volume just before `complete` resolves (to tie ids to it). */
  onComplete?: (volume: Volume) => void;
  /**
   * Slices that are not one volume by their geometry (SliceGeometryError) are opened as a stack
   * of images (see the module comment) instead of refused; a series that is a volume loads as one.
   */
  allowStack?: boolean;
}

/** Loads the whole volume: `openVolume`, then its `complete` volume. Rejects as both do. */
export async function loadVolume(instances: readonly Instance[], options: LoadOptions): Promise<Volume> {
  return (await openVolume(instances, options)).complete;
}

/**
 * The header pass of a series, then its volume as it loads: resolves once the slices are read,
 * checked and ordered and the voxel bytes are reserved and allocated; the ProgressiveVolume then
 * fills them (see the module comment). Rejects, for failures of the header pass, with 422 (no
 * readable image; a slice that cannot be part of the volume, named), 413 (maxVoxels,
 * maxFrameBytes) or what `reserve` throws (413, 503). A slice that cannot be read or decoded
 * later rejects the volume's waiters and `complete` instead (422 naming the slice).
 */
export async function openVolume(instances: readonly Instance[], options: LoadOptions): Promise<ProgressiveVolume> {
  const pause = cooperative();
  const pass = await headerPass(instances, options);
  const plan = planVolume(pass, options);
  const stored = await reserveStored(plan, options.reserve);
  const work = loadUnits(plan, stored, options);
  return new ProgressiveVolume(
    {
      header: plan.header,
      stored,
      ...work,
      early: earlyValues(
        plan.ordered.map((s) => s.header),
        plan.header.storedFormat,
      ),
      finish: (ranges) => finishVolume(plan, stored, ranges, { reserve: options.reserve, pause }),
    },
    options.onComplete,
  );
}
