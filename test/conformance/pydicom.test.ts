/**
 * Conformance with pydicom: for every single-frame, uncompressed, monochrome 8/16-bit image
 * among pydicom's own test files, the modality values our loader produces must equal
 * pydicom's `apply_modality_lut(ds.pixel_array, ds)`, voxel by voxel.
 *
 * The values come from test/conformance/export_pydicom.py run with Debian's /usr/bin/python3
 * (package python3-pydicom). Without pydicom the suite is skipped, unless CI is set, where it
 * fails (CI installs python3-pydicom).
 *
 * Comparison rules:
 * - integer pixel formats: exact equality;
 * - Float32: within float32 rounding of pydicom's float64 value (|ours - theirs| <= 2^-24 |theirs|);
 * - padding (PixelPaddingValue, with PixelPaddingRangeLimit): pydicom does not treat it, so
 *   padding voxels (as pydicom reads the padding attributes) are compared with min(their own
 *   value, the volume's minimum) (src/dicom/volumeLoader.ts) instead of the
 *   minimum instead, and the volume's range is compared with pydicom's range over the other
 *   voxels (src/core/volume/modality.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CircusError } from '../../src/core/errors.js';
import { PixelFormat, type Volume } from '../../src/core/volume/volume.js';
import { loadVolume } from '../../src/dicom/volumeLoader.js';
import { describeWithPydicom, EXPORTER, PYTHON } from './pydicomEnv.js';
import { fileInstances } from '../../src/sources/fileInstance.js';

/** Fewest files the exporter must yield; pydicom 2.3's test data gives 38. */
const MIN_COMPARED = 30;

/**
 * Files pydicom decodes that our loader may refuse, each with the contract's reason.
 * Keys are paths relative to pydicom's test_files folder. Empty: every exported file must load.
 */
const ALLOWED_REFUSALS: Readonly<Record<string, string>> = {};

interface ManifestEntry {
  path: string;
  name: string;
  rows: number;
  columns: number;
  transferSyntax: string;
  photometricInterpretation: string;
  bitsAllocated: number;
  modalityLutSequence: boolean;
  min: number | null;
  max: number | null;
  values: string;
  padding: { low: number; high: number; count: number; mask: string } | null;
}

interface Manifest {
  pydicom: string;
  numpy: string;
  root: string;
  files: ManifestEntry[];
  skipped: { path: string; name: string; stage: string; reason: string }[];
}

const withinFloat32 = (ours: number, theirs: number): boolean => Math.abs(ours - theirs) <= Math.abs(theirs) * 2 ** -24;

describeWithPydicom('pydicom conformance', () => {
  let dir: string;
  let manifest: Manifest;
  const loaded = new Map<string, Volume>();
  const refused = new Map<string, string>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'circus-pydicom-'));
    execFileSync(PYTHON, [EXPORTER, dir], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    for (const f of manifest.files) {
      try {
        loaded.set(f.name, await loadVolume(fileInstances([f.path]), { maxVoxels: 1e9 }));
      } catch (err) {
        const code = err instanceof CircusError ? `${err.code} (${err.status})` : (err as Error).name;
        refused.set(f.name, `${code}: ${(err as Error).message}`);
      }
    }
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exports a realistic number of files', () => {
    expect(manifest.files.length, `pydicom ${manifest.pydicom} exported: ${manifest.files.map((f) => f.name).join(', ')}`).toBeGreaterThanOrEqual(
      MIN_COMPARED,
    );
    // The transfer syntaxes the reader claims are all exercised.
    const syntaxes = new Set(manifest.files.map((f) => f.transferSyntax));
    for (const ts of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']) {
      expect(syntaxes, `no exported file in transfer syntax ${ts}`).toContain(ts);
    }
  });

  it('refuses no file pydicom reads, except those the contract allows', () => {
    const unexpected = [...refused].filter(([name]) => !(name in ALLOWED_REFUSALS)).map(([name, why]) => `${name}: ${why}`);
    expect(unexpected, 'files pydicom decodes that our loader refuses').toEqual([]);
    const exported = new Set(manifest.files.map((f) => f.name));
    const stale = Object.keys(ALLOWED_REFUSALS).filter((name) => exported.has(name) && !refused.has(name));
    expect(stale, 'allow-listed files that now load: remove them from ALLOWED_REFUSALS').toEqual([]);
  });

  it('refuses the in-scope files whose pixel data pydicom cannot decode (no silent garbage)', async () => {
    // Stage "decode": the file passed the scope filter, then pydicom's pixel_array failed
    // (MR_truncated.dcm: pixel data shorter than Rows x Columns).
    const undecodable = manifest.skipped.filter((s) => s.stage === 'decode');
    const accepted: string[] = [];
    for (const s of undecodable) {
      try {
        await loadVolume(fileInstances([s.path]), { maxVoxels: 1e9 });
        accepted.push(`${s.name} (pydicom: ${s.reason})`);
      } catch (err) {
        expect(err, s.name).toBeInstanceOf(CircusError);
        expect((err as CircusError).status, s.name).toBe(422);
      }
    }
    expect(accepted, 'files pydicom cannot decode that our loader turned into a volume').toEqual([]);
  });

  it('decodes every voxel to the value pydicom gives', () => {
    const failures: string[] = [];
    let compared = 0;
    let voxels = 0;
    for (const f of manifest.files) {
      const v = loaded.get(f.name);
      if (!v) continue;
      const problems: string[] = [];
      const bytes = readFileSync(join(dir, f.values));
      // A copy: a small file's Buffer may sit at an unaligned offset in Node's shared pool.
      const expected = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const pad = f.padding ? readFileSync(join(dir, f.padding.mask)) : undefined;
      const float = v.pixelFormat === PixelFormat.Float32;
      if (v.dims[0] !== f.columns || v.dims[1] !== f.rows || v.dims[2] !== 1) {
        problems.push(`dims ${v.dims.join('x')}, pydicom ${f.columns}x${f.rows}x1`);
      } else if (v.data.length !== expected.length) {
        problems.push(`${v.data.length} voxels, pydicom ${expected.length}`);
      } else {
        let bad = 0;
        let firstBad = '';
        for (let i = 0; i < expected.length; i++) {
          const ours = v.data[i];
          const isPad = pad !== undefined && pad[i] === 1;
          // Padding keeps its own value when below every real value, else becomes the minimum;
          // a padding range maps to one value at or below the minimum.
          const theirs = isPad ? Math.min(expected[i], v.minValue) : expected[i];
          const padRange = f.padding !== null && f.padding.low !== f.padding.high;
          const ok = isPad ? ours === theirs || (padRange && ours <= v.minValue) : float ? withinFloat32(ours, theirs) : ours === theirs;
          if (!ok) {
            if (bad === 0) {
              const x = i % f.columns;
              const y = Math.floor(i / f.columns);
              firstBad = `(${x}, ${y}) is ${ours}, ${isPad ? 'padding, so min(own value, volume minimum)' : 'pydicom'} ${theirs}`;
            }
            bad++;
          }
        }
        if (bad > 0) problems.push(`${bad} of ${expected.length} voxels differ, first ${firstBad}`);
      }
      if (f.min !== null && f.max !== null) {
        const same = (ours: number, theirs: number): boolean => (float ? withinFloat32(ours, theirs) : ours === theirs);
        if (!same(v.minValue, f.min) || !same(v.maxValue, f.max)) {
          problems.push(`range [${v.minValue}, ${v.maxValue}], pydicom (non-padding) [${f.min}, ${f.max}]`);
        }
      }
      if (v.monochrome1 !== (f.photometricInterpretation === 'MONOCHROME1')) {
        problems.push(`monochrome1 ${v.monochrome1}, PhotometricInterpretation ${f.photometricInterpretation}`);
      }
      if (problems.length > 0) failures.push(`${f.name} (pixelFormat ${v.pixelFormat}): ${problems.join('; ')}`);
      compared++;
      voxels += expected.length;
    }
    expect(failures).toEqual([]);
    expect(compared).toBe(manifest.files.length - refused.size);
    expect(compared).toBeGreaterThanOrEqual(MIN_COMPARED - Object.keys(ALLOWED_REFUSALS).length);
    expect(voxels).toBeGreaterThan(0);
  });
});
