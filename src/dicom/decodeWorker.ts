/**
 * A decoding worker: reads one instance (a file it opens itself, or bytes it was sent), splits its encapsulated pixel data into frames, decodes
 * the frames asked for, and sends their samples back as transferred ArrayBuffers (no copy).
 */
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { decodeFrame, initCodecs } from './codecs.js';
import { encapsulatedFrames } from './frames.js';
import { parseDicom } from './parser.js';
import { readSliceHeader } from './sliceHeader.js';
import type { DecodeReply, DecodeTask } from './decodePool.js';

async function run(task: DecodeTask): Promise<ArrayBuffer[]> {
  await initCodecs();
  if (task.input === null || task.frames.length === 0) return []; // warming up
  const bytes =
    task.input.kind === 'file'
      ? await readFile(task.input.path)
      : Buffer.from(task.input.bytes.buffer, task.input.bytes.byteOffset, task.input.bytes.byteLength);
  const parsed = parseDicom(bytes, { maxInflatedBytes: task.maxInflatedBytes });
  const h = readSliceHeader(parsed);
  if (!parsed.pixelData) throw new Error('no pixel data');
  const frames = encapsulatedFrames(parsed.dataset.buf, parsed.pixelData, h.numberOfFrames);
  return task.frames.map((i) => {
    if (i < 0 || i >= frames.length) throw new Error(`frame ${i + 1} does not exist (${frames.length} frames)`);
    const out = decodeFrame(h.transferSyntaxUid, frames[i], {
      rows: h.rows,
      columns: h.columns,
      bitsAllocated: h.bitsAllocated,
      bitsStored: h.bitsStored,
      pixelRepresentation: h.pixelRepresentation,
      samplesPerPixel: h.samplesPerPixel,
      photometricInterpretation: h.photometricInterpretation,
      planarConfiguration: h.planarConfiguration,
    });
    // A copy of exactly the frame, so the whole buffer can be transferred.
    return out.slice().buffer;
  });
}

parentPort!.on('message', (task: DecodeTask) => {
  run(task).then(
    (frames) => parentPort!.postMessage({ id: task.id, frames } satisfies DecodeReply, frames),
    (err: unknown) => parentPort!.postMessage({ id: task.id, error: err instanceof Error ? err.message : String(err) } satisfies DecodeReply),
  );
});
