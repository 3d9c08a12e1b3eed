/**
 * Short fuzzing passes in CI (the long ones: npm run fuzz, npm run fuzz:http) and the replay
 * of every input the fuzzers ever saved under fuzz/crashers/.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodePool } from '../src/dicom/decodePool.js';
import { naturalCompare } from '../src/sources/naturalOrder.js';
import { check, iteration, seeds, writeSeriesFiles, type Outcome } from '../fuzz/harness.js';
import { fuzzHttp, startFuzzServers } from '../fuzz/httpFuzz.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const CRASHERS = fileURLToPath(new URL('../fuzz/crashers', import.meta.url));
const pool = new DecodePool(1);
afterAll(() => pool.close());

interface Crasher {
  name: string;
  /** Its series, in the order the fuzzer wrote it. */
  files: string[];
}

/**
 * The crashers saved under `root`: one folder per input (as the fuzzer saves them), holding the
 * series as f0.dcm, f1.dcm, ... and a reason.txt; dot-folders are skipped.
 */
function savedCrashers(root: string): Crasher[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort(naturalCompare)
    .map((name) => ({
      name,
      files: readdirSync(join(root, name))
        .filter((f) => f.endsWith('.dcm'))
        .sort(naturalCompare)
        .map((f) => join(root, name, f)),
    }));
}

/** Runs one crasher again through the checks of the fuzzer. */
const replay = (root: string, c: Crasher): Promise<Outcome> => check(join(root, c.name), c.files, pool);

/** Saves a series as the fuzzer saves a crasher: its files as f<i>.dcm, and a reason. */
function saveCrasher(root: string, name: string, files: Buffer[]): void {
  const dir = join(root, name);
  writeSeriesFiles(dir, files);
  writeFileSync(join(dir, 'reason.txt'), `defect: generated for the replay test\nseed file: ${name}\n`);
}

const base = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

describe('fuzzing', () => {
  it('replays every saved crasher to a volume or a typed error', async () => {
    for (const c of savedCrashers(CRASHERS)) {
      expect(c.files.length, `${c.name} holds no .dcm file`).toBeGreaterThan(0);
      const outcome = await replay(CRASHERS, c);
      expect(outcome.kind, `${c.name}: ${outcome.kind === 'defect' ? outcome.error.stack : ''}`).not.toBe('defect');
    }
  });

  it('replays crashers saved in the format of the fuzzer: every file, in order, to its outcome', async () => {
    const tmp = new TempDir('circus-crashers-');
    try {
      const [series] = seeds();
      expect(series.name).toBe('explicit-le');
      expect(series.files).toHaveLength(3);
      const eleven = writeSeries(join(tmp.path, 'eleven'), { slices: 11 }).map((p) => readFileSync(p));
      const root = join(tmp.path, 'crashers');
      saveCrasher(root, 'seed1-iter2', series.files);
      saveCrasher(root, 'seed1-iter10', [Buffer.from('not a DICOM file, only text\n')]);
      saveCrasher(root, 'seed1-iter11', eleven);
      writeSeriesFiles(join(root, '.hidden'), [Buffer.alloc(10)]);

      const crashers = savedCrashers(root);
      expect(crashers.map((c) => [c.name, c.files.map(base)])).toEqual([
        ['seed1-iter2', ['f0.dcm', 'f1.dcm', 'f2.dcm']],
        ['seed1-iter10', ['f0.dcm']],
        ['seed1-iter11', Array.from({ length: 11 }, (_, i) => `f${i}.dcm`)],
      ]);
      const kinds: Outcome['kind'][] = [];
      for (const c of crashers) kinds.push((await replay(root, c)).kind);
      expect(kinds).toEqual(['volume', 'refused', 'volume']);
    } finally {
      tmp.remove();
    }
  });

  it('a short DICOM pass ends every input in a volume or a typed error', async () => {
    const all = seeds();
    const tmp = new TempDir('circus-fuzz-ci-');
    const kinds: Record<string, number> = {};
    try {
      for (let i = 0; i < 250; i++) {
        const { name, files } = iteration(all, 20261127, i);
        const dir = join(tmp.path, 'current');
        rmSync(dir, { recursive: true, force: true });
        const outcome = await check(dir, writeSeriesFiles(dir, files), pool);
        kinds[outcome.kind] = (kinds[outcome.kind] ?? 0) + 1;
        expect(outcome.kind, `iteration ${i} (${name}): ${outcome.kind === 'defect' ? outcome.error.stack : ''}`).not.toBe('defect');
      }
    } finally {
      tmp.remove();
    }
    // The mutations reach both ends: some inputs still load, many are refused.
    expect(kinds.volume).toBeGreaterThan(10);
    expect(kinds.refused).toBeGreaterThan(10);
  });

  it('a short HTTP pass answers every query with a contract status in bounded time', async () => {
    const tmp = new TempDir('circus-httpfuzz-ci-');
    const servers = await startFuzzServers(tmp);
    try {
      const { problems, statuses } = await fuzzHttp(servers, 400, 20261127);
      expect(problems).toEqual([]);
      expect(Object.keys(statuses).length).toBeGreaterThanOrEqual(5);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
      tmp.remove();
    }
  });
});
