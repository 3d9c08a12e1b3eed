/**
 * A decoding worker: reads one instance (a file it opens itself, or bytes it was sent), splits
 * its encapsulated pixel data into frames, and decodes each frame asked for straight into its
 * slice of the volume's shared memory, where it also normalises the stored bits and measures
 * the slice's value range (padding left out). Only the ranges go back to the main thread.
 * It also rewrites whole instances in Explicit VR Little Endian (WADO-RS retrieve), decoding
 * their pixel data, so that neither decoding nor re-encoding runs on the event loop.
 */
import type { StoredRange } from '../core/volume/modality.js';
import { BYTES_PER_VOXEL } from '../core/volume/volume.js';
import { decodedFrameBytes, decodeFrameInto, initCodecs } from './codecs.js';
import { movedBytes, serveTasks } from '../workers/workerPool.js';
import type { DecodeTask, FrameTask, TranscodeTask } from './decodePool.js';
import { workerInputBytes } from './instance.js';
import { encapsulatedFrames } from './frames.js';
import { parseDicom } from './parser.js';
import { readSliceHeader } from './sliceHeader.js';
import { frameOfInstance, toExplicitLittle } from './transcode.js';
import { finishStoredSlice, voxelView } from './storedValues.js';

/** A failure of the frame at index `detail.at` of the task. */
class FrameError extends Error {
  readonly detail: { at: number };
  constructor(message: string, at: number) {
    super(message);
    this.detail = { at };
  }
}

async function run(task: DecodeTask): Promise<StoredRange[]> {
  await initCodecs();
  if (task.input === null || task.target === null || task.frames.length === 0) return []; // warming up
  const target = task.target;
  const bytes = await workerInputBytes(task.input);
  const parsed = parseDicom(bytes, { maxInflatedBytes: task.maxInflatedBytes });
  const h = readSliceHeader(parsed);
  if (!parsed.pixelData) throw new Error('no pixel data');
  const frames = encapsulatedFrames(parsed.dataset.buf, parsed.pixelData, h.numberOfFrames);
  const info = {
    rows: h.rows,
    columns: h.columns,
    bitsAllocated: h.bitsAllocated,
    bitsStored: h.bitsStored,
    pixelRepresentation: h.pixelRepresentation,
    samplesPerPixel: h.samplesPerPixel,
    photometricInterpretation: h.photometricInterpretation,
    planarConfiguration: h.planarConfiguration,
  };
  const sliceBytes = target.voxels * BYTES_PER_VOXEL[target.format];
  return task.frames.map((f, i) => {
    try {
      if (f < 0 || f >= frames.length) throw new Error(`frame ${f + 1} does not exist (${frames.length} frames)`);
      if (decodedFrameBytes(info) !== sliceBytes) {
        throw new Error(`a decoded ${h.rows}x${h.columns} frame is ${decodedFrameBytes(info)} bytes, the slice takes ${sliceBytes}`);
      }
      const at = target.byteOffsets[i];
      if (!(at >= 0 && at + sliceBytes <= target.buffer.byteLength)) throw new RangeError(`byte offset ${at} is outside the volume`);
      decodeFrameInto(h.transferSyntaxUid, frames[f], info, new Uint8Array(target.buffer, at, sliceBytes));
      return finishStoredSlice(voxelView(target.format, target.buffer, at, target.voxels), target.bits, target.padding);
    } catch (err) {
      throw new FrameError(err instanceof Error ? err.message : String(err), i);
    }
  });
}

/** An instance rewritten in Explicit VR Little Endian (its bytes moved back). */
const transcode = async (task: TranscodeTask) => movedBytes(await toExplicitLittle(await workerInputBytes(task.input), task.maxInflatedBytes));

/** One frame, uncompressed (its bytes moved back). */
const frame = async (task: FrameTask) => movedBytes(await frameOfInstance(await workerInputBytes(task.input), task.frame, task.maxInflatedBytes));

serveTasks<DecodeTask | TranscodeTask | FrameTask, StoredRange[] | Uint8Array>(async (task) =>
  !('kind' in task) ? { result: await run(task) } : task.kind === 'frame' ? frame(task) : transcode(task),
);
