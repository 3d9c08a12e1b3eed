/**
 * Short fuzzing passes in CI (the long ones: npm run fuzz, npm run fuzz:http) and the replay
 * of every input the fuzzers ever saved under fuzz/crashers/.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DecodePool } from '../src/dicom/decodePool.js';
import { check, iteration, seeds, writeSeriesFiles } from '../fuzz/harness.js';
import { fuzzHttp, startFuzzServers } from '../fuzz/httpFuzz.js';
import { TempDir } from './fixtures/series.js';

const CRASHERS = fileURLToPath(new URL('../fuzz/crashers', import.meta.url));
const pool = new DecodePool(1);
afterAll(() => pool.close());

describe('fuzzing', () => {
  it('replays every saved crasher to a volume or a typed error', async () => {
    const dirs = existsSync(CRASHERS) ? readdirSync(CRASHERS).filter((d) => !d.startsWith('.')) : [];
    for (const d of dirs) {
      const files = readdirSync(join(CRASHERS, d))
        .filter((f) => f.endsWith('.dcm'))
        .sort()
        .map((f) => join(CRASHERS, d, f));
      const outcome = await check(join(CRASHERS, d), files, pool);
      expect(outcome.kind, `${d}: ${outcome.kind === 'defect' ? outcome.error.stack : ''}`).not.toBe('defect');
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
