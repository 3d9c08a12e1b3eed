/**
 * Where the conformance suites find pydicom, and what they do without it: skipped with a
 * message on a developer's machine, failed when CI is set (CI installs python3-pydicom).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';

export const PYTHON = '/usr/bin/python3';
export const EXPORTER = fileURLToPath(new URL('./export_pydicom.py', import.meta.url));
export const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false' && process.env.CI !== '0';

function pydicomMissing(): string | null {
  try {
    execFileSync(PYTHON, ['-c', 'import pydicom, numpy'], { stdio: 'pipe' });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    const detail = e.code === 'ENOENT' ? `${PYTHON} does not exist` : (e.stderr?.toString().trim().split('\n').pop() ?? e.message);
    return `${PYTHON} cannot import pydicom and numpy (${detail}); install the Debian package python3-pydicom`;
  }
}

/** `describe` when pydicom is there; otherwise a skip (or, in CI, a failing test). */
export function describeWithPydicom(name: string, body: () => void): void {
  const missing = pydicomMissing();
  if (missing === null) {
    describe(name, body);
  } else if (inCi) {
    describe(name, () => {
      it('needs pydicom in CI', () => {
        throw new Error(`CI=${process.env.CI}: ${missing}`);
      });
    });
  } else {
    console.warn(`${name} skipped: ${missing} (the suite fails instead when CI is set)`);
    describe.skip(`${name} (skipped: ${missing})`, () => {
      it('compares with pydicom', () => {});
    });
  }
}

/** The first of `tools` not on this machine, or null. */
export function missingTool(tools: readonly string[]): string | null {
  for (const t of tools) {
    try {
      execFileSync('which', [t], { stdio: 'pipe' });
    } catch {
      return t;
    }
  }
  return null;
}

/** `describe` when every tool is there; otherwise a skip (or, in CI, a failing test). */
export function describeWithTools(name: string, tools: readonly string[], body: () => void): void {
  const missing = missingTool(tools);
  if (missing === null) describe(name, body);
  else if (inCi) {
    describe(name, () => {
      it('needs its tools in CI', () => {
        throw new Error(`CI=${process.env.CI}: ${missing} is not installed (.ci/run installs dcmtk, libgdcm-tools, openjph-tools)`);
      });
    });
  } else {
    console.warn(`${name} skipped: ${missing} is not installed (the suite fails instead when CI is set)`);
    describe.skip(`${name} (skipped: ${missing} missing)`, () => {
      it('transcodes', () => {});
    });
  }
}
