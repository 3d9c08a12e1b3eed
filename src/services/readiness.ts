/**
 * What /health/ready asks: whether the server can serve series now. Each check resolves to why
 * not (a sentence for the operator), or null when it can. A check that takes longer than its
 * time limit (a network filesystem that hangs, a PACS that does not answer) counts as failed:
 * a readiness probe must answer in time, whatever the source does.
 */
import { opendir } from 'node:fs/promises';
import type { SeriesSource } from '../sources/source.js';
import { withinTime } from '../util/async.js';

/** Why the server cannot serve now, or null when it can. */
export type ReadinessCheck = () => Promise<string | null>;

/** Longest a check may take before it counts as failed. */
export const READINESS_TIMEOUT_MS = 2000;

/** Why `dir` cannot be read as a folder of series (it is missing, not a folder, not listable), or null. */
export function folderProblem(dir: string, timeoutMs = READINESS_TIMEOUT_MS): Promise<string | null> {
  return withinTime(
    `data directory ${dir}`,
    async () => {
      try {
        const listing = await opendir(dir);
        try {
          await listing.read();
        } finally {
          await listing.close();
        }
        return null;
      } catch (err) {
        return `data directory ${dir} cannot be read: ${(err as Error).message}`;
      }
    },
    timeoutMs,
  );
}

/**
 * The readiness of a server: the header index open when one is used (`indexError` says why it
 * is not), then the source reachable: the data directory listable (`dataDir`, when it is read),
 * and the source's own check when it has one (a remote archive).
 */
export function serverReadiness(options: { indexError: () => string | null; dataDir: string | null; source: SeriesSource }): ReadinessCheck {
  return async () => {
    const indexError = options.indexError();
    if (indexError) return indexError;
    if (options.dataDir !== null) {
      const problem = await folderProblem(options.dataDir);
      if (problem) return problem;
    }
    const { source } = options;
    if (!source.readiness) return null;
    return withinTime('the series source', () => source.readiness!(), READINESS_TIMEOUT_MS);
  };
}
