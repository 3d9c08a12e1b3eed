/**
 * The fuzzing loop, run in a worker thread so that the parent can stop it when an input hangs
 * or eats memory. Iteration i mutates with the generator seeded by (seed, i), so any iteration
 * can be replayed alone.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { DecodePool } from '../src/dicom/decodePool.js';
import { check, iteration, seeds, writeSeriesFiles } from './harness.js';

export interface WorkerInput {
  seed: number;
  from: number;
  to: number;
  deadline: number;
  dir: string;
}

export type WorkerMessage =
  | { type: 'progress'; i: number; seed: string }
  | { type: 'defect'; i: number; seed: string; message: string; stack: string }
  | { type: 'done'; i: number; counts: Record<string, number> };

const input = workerData as WorkerInput;
const all = seeds();
const pool = new DecodePool(1);
const counts: Record<string, number> = {};
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);

let i = input.from;
for (; i < input.to && Date.now() < input.deadline; i++) {
  const { name, files } = iteration(all, input.seed, i);
  const dir = join(input.dir, 'current');
  rmSync(dir, { recursive: true, force: true });
  const paths = writeSeriesFiles(dir, files);
  post({ type: 'progress', i, seed: name });
  const outcome = await check(dir, paths, pool);
  const key = outcome.kind === 'refused' ? `refused ${outcome.status}` : outcome.kind;
  counts[key] = (counts[key] ?? 0) + 1;
  if (outcome.kind === 'defect') post({ type: 'defect', i, seed: name, message: outcome.error.message, stack: outcome.error.stack ?? '' });
}
await pool.close();
post({ type: 'done', i, counts });
