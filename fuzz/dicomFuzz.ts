/**
 * DICOM fuzzer: mutated real and generated files through the reader and volume assembly.
 *
 *   npm run fuzz -- [--count N] [--seconds S] [--seed X] [--hang-seconds H]
 *
 * Every input must end in a volume or a typed error within H seconds (default 10) and without
 * the worker's heap passing 512 MiB. Inputs that do not are saved under fuzz/crashers/ (with
 * the reason) and replayed by test/fuzz.test.ts; the exit code is 1 when there were any.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerInput, WorkerMessage } from './dicomWorker.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const count = arg('count', 2000);
const seconds = arg('seconds', 60);
const seed = arg('seed', 1);
const hangMs = arg('hang-seconds', 10) * 1000;
const CRASHERS = fileURLToPath(new URL('./crashers', import.meta.url));
const WORKER = fileURLToPath(new URL('./dicomWorker.ts', import.meta.url));

const work = mkdtempSync(join(tmpdir(), 'circus-fuzz-'));
const deadline = Date.now() + seconds * 1000;
const totals: Record<string, number> = {};
const problems: string[] = [];
let peakRss = 0;
const started = performance.now();

function save(i: number, seedName: string, reason: string): void {
  const dir = join(CRASHERS, `seed${seed}-iter${i}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(work, 'current'), dir, { recursive: true });
  writeFileSync(join(dir, 'reason.txt'), `${reason}\nseed file: ${seedName}\nreplay: npm run fuzz -- --seed ${seed} --from ${i} --count 1\n`);
  problems.push(`iteration ${i} (${seedName}): ${reason.split('\n')[0]}`);
}

const slowOnce: string[] = [];

/**
 * Runs iterations from `from` to `to` in a worker; resolves with the next iteration to run.
 * A hang is run again alone, with twice the time, before it counts: a loaded machine can
 * stall a worker that is starting its decoders.
 */
function runFrom(from: number, to = arg('from', 0) + count, limitMs = hangMs, confirming = false): Promise<number> {
  return new Promise((resolve) => {
    const input: WorkerInput = { seed, from, to, deadline: confirming ? Date.now() + 2 * limitMs : deadline, dir: work };
    const worker = new Worker(
      `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(new URL(`file://${WORKER}`).href)}); });`,
      {
        eval: true,
        workerData: input,
        resourceLimits: { maxOldGenerationSizeMb: 512 },
      },
    );
    let current = from;
    let currentSeed = '';
    let last = Date.now();
    let finished = false;
    const finish = (next: number): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      resolve(next);
    };
    const watchdog = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      if (Date.now() - last > limitMs) {
        void worker.terminate();
        clearInterval(watchdog);
        const stuck = current;
        if (confirming) {
          save(stuck, currentSeed, `hang: no answer within ${limitMs / 1000} s, twice`);
          finish(stuck + 1);
        } else {
          void runFrom(stuck, stuck + 1, 2 * limitMs, true).then(() => {
            if (!problems.some((p) => p.startsWith(`iteration ${stuck} `))) slowOnce.push(`iteration ${stuck} (${currentSeed})`);
            finish(stuck + 1);
          });
        }
      }
    }, 250);
    worker.on('message', (m: WorkerMessage) => {
      last = Date.now();
      if (m.type === 'progress') {
        current = m.i;
        currentSeed = m.seed;
      } else if (m.type === 'defect') {
        save(m.i, m.seed, `${m.message}\n${m.stack}`);
      } else {
        for (const [k, v] of Object.entries(m.counts)) totals[k] = (totals[k] ?? 0) + v;
        finish(m.i);
      }
    });
    worker.on('error', (err) => {
      save(current, currentSeed, `worker died: ${err.message}`);
      finish(current + 1);
    });
    worker.on('exit', () => finish(current + 1));
  });
}

let next = arg('from', 0);
const end = next + count;
while (next < end && Date.now() < deadline) next = await runFrom(next);
rmSync(work, { recursive: true, force: true });

const done = Object.values(totals).reduce((a, b) => a + b, 0);
console.log(`DICOM fuzzer, seed ${seed}: ${done} inputs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
for (const [k, v] of Object.entries(totals).sort()) console.log(`  ${k.padEnd(14)} ${v}`);
console.log(`  peak RSS of the fuzzer process ${(peakRss / 1e6).toFixed(0)} MB`);
if (problems.length) {
  console.log(`${problems.length} defects saved under fuzz/crashers/:`);
  for (const p of problems) console.log(`  ${p}`);
  process.exit(1);
}
console.log('no defects');
