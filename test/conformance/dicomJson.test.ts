/**
 * DICOM JSON (src/dicom/json.ts) against pydicom's `Dataset.to_json_dict` on pydicom's own test
 * and character set files (explicit, implicit and big-endian syntaxes, sequences, DICOMDIRs,
 * SR, RT, PN with ideographic and phonetic groups, multi-valued DS, private tags), attribute by
 * attribute and item by item. pydicom's output comes from json_pydicom.py, every binary inline;
 * the top-level Pixel Data as the SHA-256 of its little-endian bytes, compared with `bulkValue`.
 * Every other binary value is also fetched through a BulkDataURI path (threshold 0) and must
 * equal its InlineBinary.
 *
 * Differences that are pydicom's deviations from PS3.18 F.2 (or choices documented in json.ts),
 * normalised before comparing:
 * - pydicom removes padding at the end of the whole value only, so a multi-valued CS keeps the
 *   trailing space of an inner value ("DERIVED \\PRIMARY"); values are compared trimmed;
 * - pydicom writes an empty entry of a multi-valued attribute as "", F.2.5 says null;
 * - pydicom writes PN's Alphabetic group even when empty ("=Yamada"); json.ts leaves out empty
 *   groups;
 * - pydicom writes a sequence of no items as Value []; json.ts writes no Value (an empty value);
 * - pydicom leaves out an attribute whose value it cannot convert (an IS of "1A"); json.ts keeps
 *   the attribute with null for that entry (badVR.dcm);
 * - private tags in Implicit VR (or explicit UN): pydicom takes their VR from its private
 *   dictionary; json.ts knows only the standard's, so they are UN with their bytes inline;
 * - character sets other than the default, Latin-1 and UTF-8 (ISO 2022 escapes, Cyrillic, Greek,
 *   Arabic, Hebrew...) are decoded by pydicom; the parser decodes Latin-1, so text attributes of
 *   those files are compared on their VR and presence only.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bulkValue, type DicomJson, type DicomJsonAttribute, datasetJson } from '../../src/dicom/json.js';
import { type DataSet, parseDicom } from '../../src/dicom/parser.js';
import { describeWithPydicom, PYTHON } from './pydicomEnv.js';

const SCRIPT = fileURLToPath(new URL('./json_pydicom.py', import.meta.url));

/** Fewest files that must be compared (pydicom 2.3's data give 165). */
const MIN_COMPARED = 150;

/** Files pydicom reads that the parser refuses (its behaviour, unchanged here), with the reason. */
const PARSER_REFUSALS: Readonly<Record<string, RegExp>> = {
  'MR_truncated.dcm': /truncated/,
  'rtplan_truncated.dcm': /truncated/,
  'meta_missing_tsyntax.dcm': /no Transfer Syntax UID/,
  // Its meta says Explicit VR; the dataset is Implicit VR (pydicom guesses, the parser does not).
  'SC_rgb_jpeg.dcm': /invalid value representation/,
  // Its items run past the declared sequence length (pydicom ignores the length).
  'DICOMDIR-nooffset': /runs past its sequence/,
};

/** Character sets whose text the parser decodes as pydicom does. */
const COMPARABLE_CHARSETS = new Set(['', 'ISO_IR 6', 'ISO_IR 100', 'ISO_IR 192']);
const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

interface Entry {
  json: Record<string, PydicomAttribute>;
  suppressed: boolean;
  transferSyntax: string | null;
  charset: string[];
}
type PydicomAttribute = DicomJsonAttribute & { sha256?: string };

const trimText = (v: unknown): unknown => (typeof v === 'string' ? (v.replace(/ +$/, '') === '' ? null : v.replace(/ +$/, '')) : v);

/** pydicom's attribute with its deviations (see above) normalised. */
function normalise(a: PydicomAttribute): DicomJsonAttribute {
  const out: DicomJsonAttribute = { ...a };
  if (a.vr === 'SQ' && Array.isArray(a.Value) && a.Value.length === 0) delete out.Value;
  if (a.vr === 'PN' && a.Value) {
    out.Value = a.Value.map((p) => {
      if (p === null) return null;
      const groups = Object.fromEntries(Object.entries(p as Record<string, string>).filter(([, g]) => g !== ''));
      return Object.keys(groups).length > 0 ? groups : null;
    });
  } else if (a.Value && TEXT_VRS.has(a.vr)) {
    out.Value = a.Value.map(trimText);
  }
  return out;
}

describeWithPydicom('DICOM JSON against pydicom', () => {
  let dir: string;
  let files: Record<string, Entry>;
  let skipped: Record<string, string>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'circus-json-'));
    const out = join(dir, 'pydicom.json');
    execFileSync(PYTHON, [SCRIPT, out], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    const result = JSON.parse(readFileSync(out, 'utf8')) as { files: Record<string, Entry>; skipped: Record<string, string> };
    files = result.files;
    skipped = result.skipped;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('equals pydicom attribute by attribute', () => {
    let compared = 0;
    let attributes = 0;
    const problems: string[] = [];
    const refused: string[] = [];
    for (const [path, entry] of Object.entries(files)) {
      const name = basename(path);
      let ds: DataSet;
      try {
        ds = parseDicom(readFileSync(path), { elementsAfterPixelData: true }).dataset;
      } catch (err) {
        const reason = PARSER_REFUSALS[name];
        if (!reason?.test((err as Error).message)) problems.push(`${name}: refused: ${(err as Error).message}`);
        refused.push(name);
        continue;
      }
      const ours = datasetJson(ds);
      const compare = (mine: DicomJson, theirs: Record<string, PydicomAttribute>, prefix: string, inherited: boolean): void => {
        // An item may name its own character set.
        const own = mine['00080005']?.Value as (string | null)[] | undefined;
        const textComparable = own ? own.every((c) => COMPARABLE_CHARSETS.has(c ?? '')) : inherited;
        for (const key of new Set([...Object.keys(mine), ...Object.keys(theirs)])) {
          if (key.endsWith('0000')) continue; // group lengths: json.ts leaves them out
          const where = `${name} ${prefix}${key}`;
          const a = mine[key];
          const b = theirs[key];
          if (prefix === '' && key === '7FE00010') {
            const bytes = bulkValue(ds, key);
            const hash = bytes ? createHash('sha256').update(bytes).digest('hex') : undefined;
            if (b?.sha256 !== undefined && hash !== b.sha256) problems.push(`${where}: pixel data differs`);
            if (a !== undefined) problems.push(`${where}: pixel data is inline without bulkDataUri`);
            attributes++;
            continue;
          }
          if (b === undefined && entry.suppressed && a?.Value?.every((v) => v === null)) continue;
          if (a === undefined || b === undefined) {
            problems.push(`${where}: ${a ? 'only ours' : 'only pydicom'}`);
            continue;
          }
          attributes++;
          const isPrivate = Number.parseInt(key.slice(0, 4), 16) % 2 === 1;
          if (isPrivate && a.vr === 'UN' && b.vr !== 'UN') {
            if (a.InlineBinary === undefined && (b.Value !== undefined || b.InlineBinary !== undefined))
              problems.push(`${where}: private value lost`);
            continue;
          }
          if (a.vr !== b.vr) {
            problems.push(`${where}: VR ${a.vr}, pydicom ${b.vr}`);
            continue;
          }
          if (a.vr === 'SQ') {
            const mineItems = (a.Value ?? []) as DicomJson[];
            const theirItems = (b.Value ?? []) as Record<string, PydicomAttribute>[];
            if (mineItems.length !== theirItems.length) problems.push(`${where}: ${mineItems.length} items, pydicom ${theirItems.length}`);
            mineItems.forEach((item, i) => {
              if (theirItems[i]) compare(item, theirItems[i], `${prefix}${key}/${i}/`, textComparable);
            });
            continue;
          }
          if (!textComparable && TEXT_VRS.has(a.vr)) continue;
          const expected = normalise(b);
          try {
            expect(a).toEqual(expected);
          } catch {
            problems.push(`${where}: ${JSON.stringify(a).slice(0, 200)} != pydicom ${JSON.stringify(expected).slice(0, 200)}`);
          }
          if (BINARY_VRS.has(a.vr) && a.InlineBinary !== undefined) {
            const viaPath = bulkValue(ds, `${prefix}${key}`);
            if (viaPath?.toString('base64') !== a.InlineBinary) problems.push(`${where}: bulkValue differs from InlineBinary`);
          }
        }
      };
      compare(
        ours,
        entry.json,
        '',
        entry.charset.every((c) => COMPARABLE_CHARSETS.has(c)),
      );
      compared++;
    }
    expect(problems).toEqual([]);
    expect(refused.sort()).toEqual(Object.keys(PARSER_REFUSALS).sort());
    expect(compared).toBeGreaterThanOrEqual(MIN_COMPARED);
    expect(attributes).toBeGreaterThan(5000);
    expect(Object.keys(skipped).every((p) => !p.endsWith('.dcm') || /NoMeta|no_meta|rtstruct/.test(p))).toBe(true);
  });

  it('names every binary value by a path that bulkValue resolves', () => {
    let checked = 0;
    for (const path of Object.keys(files)) {
      if (PARSER_REFUSALS[basename(path)]) continue;
      const ds = parseDicom(readFileSync(path), { elementsAfterPixelData: true }).dataset;
      const inline = datasetJson(ds);
      const paths: string[] = [];
      const bulk = datasetJson(ds, {
        bulkThreshold: 0,
        bulkDataUri: (p) => {
          paths.push(p);
          return `https://pacs/bulk/${p}`;
        },
      });
      const walk = (a: DicomJson, b: DicomJson): void => {
        for (const [key, attr] of Object.entries(b)) {
          if (attr.BulkDataURI !== undefined) {
            const p = attr.BulkDataURI.slice('https://pacs/bulk/'.length);
            const bytes = bulkValue(ds, p);
            expect(bytes, `${basename(path)} ${p}`).toBeDefined();
            if (a[key]?.InlineBinary !== undefined) expect(bytes!.toString('base64')).toBe(a[key].InlineBinary);
            checked++;
          }
          if (attr.vr === 'SQ') {
            (attr.Value ?? []).forEach((item, i) => {
              walk(((a[key]?.Value ?? []) as DicomJson[])[i] ?? {}, item as DicomJson);
            });
          }
        }
      };
      walk(inline, bulk);
      expect(paths.every((p) => /^[0-9A-F]{8}(\/\d+\/[0-9A-F]{8})*$/.test(p))).toBe(true);
    }
    expect(checked).toBeGreaterThan(150);
  });
});
