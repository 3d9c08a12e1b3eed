/**
 * Transcoding (src/dicom/transcode.ts) checked by independent readers: every pydicom test and
 * character set file the parser reads is written as Explicit VR Little Endian (compressed ones
 * decoded with decodedPixelData: JPEG baseline, extended and lossless, JPEG-LS, JPEG 2000, RLE),
 * then transcode_pydicom.py reads each output with pydicom and compares it with pydicom's
 * reading of the input: every element's value (big-endian words swapped), item by item, and
 * pixel_array (GDCM decoding the compressed inputs; within 1% of the range for lossy syntaxes,
 * as two JPEG decoders may round differently). dcmtk's dcmftest must call each output a Part 10
 * file and dcmdump must read it without a warning or error.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { canDecode, initCodecs } from '../../src/dicom/codecs.js';
import { type ParsedDicom, parseDicom } from '../../src/dicom/parser.js';
import { readSliceHeader } from '../../src/dicom/sliceHeader.js';
import { NATIVE_TRANSFER_SYNTAXES } from '../../src/dicom/tags.js';
import { decodedPixelData, explicitLittlePart10, type NativePixels } from '../../src/dicom/transcode.js';
import { describeWithPydicom, PYTHON } from './pydicomEnv.js';
import { missingTool } from './pydicomEnv.js';

const SCRIPT = fileURLToPath(new URL('./transcode_pydicom.py', import.meta.url));
const DATA = '/usr/lib/python3/dist-packages/pydicom/data';

const LOSSY = new Set([
  '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51',
  '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.4.203',
]);

/** Fewest files transcoded and compared (pydicom 2.3's data give about 160). */
const MIN_COMPARED = 120;
/** Fewest compressed files decoded, transcoded and compared pixel by pixel. */
const MIN_COMPRESSED = 20;

/**
 * Inputs not transcoded, with the reason: the parser refuses them (see dicomJson.test.ts), or
 * their compressed pixel data cannot be decoded here (as pydicomCompressed.test.ts allows).
 */
const NOT_TRANSCODED: Readonly<Record<string, RegExp>> = {
  'MR_truncated.dcm': /truncated/,
  'rtplan_truncated.dcm': /truncated/,
  'meta_missing_tsyntax.dcm': /no Transfer Syntax UID/,
  'SC_rgb_jpeg.dcm': /invalid value representation/,
  'DICOMDIR-nooffset': /runs past its sequence/,
  'JPEG2000-embedded-sequence-delimiter.dcm': /cannot be decoded/,
  // DICOMDIRs are refused: their records point at each other by byte offsets.
  DICOMDIR: /DICOMDIR/,
  'DICOMDIR-bigEnd': /DICOMDIR/,
  'DICOMDIR-implicit': /DICOMDIR/,
  'DICOMDIR-nopatient': /DICOMDIR/,
  'DICOMDIR-reordered': /DICOMDIR/,
  'DICOMDIR-empty.dcm': /DICOMDIR/,
};

interface Pair {
  input: string;
  output: string;
  lossy: boolean;
  changed: string[];
  compressed: boolean;
}

function inputs(): string[] {
  const out: string[] = [];
  for (const sub of ['test_files', 'charset_files']) {
    for (const entry of readdirSync(join(DATA, sub), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
    }
  }
  return out.sort();
}

/** Whether a file starts as Part 10 (pydicom's test data hold JSON, dumps and a README too). */
const isPart10 = (buf: Buffer): boolean => buf.length > 132 && buf.toString('latin1', 128, 132) === 'DICM';

describeWithPydicom('transcoding to Explicit VR Little Endian against pydicom', () => {
  let dir: string;
  const pairs: Pair[] = [];
  const refused = new Map<string, string>();
  let report: Record<string, { problems: string[]; pixels: string | null }>;

  beforeAll(async () => {
    await initCodecs();
    dir = mkdtempSync(join(tmpdir(), 'circus-transcode-'));
    inputs().forEach((input, n) => {
      const buf = readFileSync(input);
      if (!isPart10(buf)) return;
      const name = basename(input);
      let parsed: ParsedDicom;
      let pixels: NativePixels | undefined;
      try {
        parsed = parseDicom(buf, { elementsAfterPixelData: true });
        const compressed = parsed.pixelData !== undefined && !NATIVE_TRANSFER_SYNTAXES.has(parsed.transferSyntaxUid);
        if (compressed && !canDecode(parsed.transferSyntaxUid)) return;
        if (compressed) pixels = decodedPixelData(parsed, readSliceHeader(parsed));
        const output = join(dir, `${n}-${name}`);
        writeFileSync(output, explicitLittlePart10(parsed, pixels));
        const header = compressed ? readSliceHeader(parsed) : undefined;
        const changed: string[] = [];
        if (pixels && header && pixels.photometricInterpretation !== header.photometricInterpretation) changed.push('PhotometricInterpretation');
        if (pixels && header && pixels.planarConfiguration !== undefined && pixels.planarConfiguration !== header.planarConfiguration) {
          changed.push('PlanarConfiguration');
        }
        pairs.push({ input, output, lossy: LOSSY.has(parsed.transferSyntaxUid), changed, compressed });
      } catch (err) {
        refused.set(name, (err as Error).message);
      }
    });
    const pairsFile = join(dir, 'pairs.json');
    const out = join(dir, 'report.json');
    writeFileSync(pairsFile, JSON.stringify(pairs));
    execFileSync(PYTHON, [SCRIPT, pairsFile, out], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    report = JSON.parse(readFileSync(out, 'utf8'));
  }, 600_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses only the files it must', () => {
    const unexpected = [...refused].filter(([name, message]) => !NOT_TRANSCODED[name]?.test(message));
    expect(unexpected).toEqual([]);
    expect(pairs.length).toBeGreaterThanOrEqual(MIN_COMPARED);
  });

  it('keeps every element and the pixels as pydicom reads them', () => {
    const problems = pairs.flatMap((p) => (report[p.output]?.problems ?? ['not checked']).map((m) => `${basename(p.input)}: ${m}`));
    expect(problems).toEqual([]);
    const compressedCompared = pairs.filter((p) => p.compressed && report[p.output]?.pixels === 'compared');
    expect(compressedCompared.length).toBeGreaterThanOrEqual(MIN_COMPRESSED);
    console.info(`${pairs.length} files transcoded, ${compressedCompared.length} of them decoded from compressed syntaxes`);
    const colour = pairs.filter((p) => p.changed.includes('PhotometricInterpretation') && report[p.output]?.pixels === 'compared');
    expect(colour.length).toBeGreaterThan(0);
  });

  it('writes files dcmtk reads without complaint', () => {
    const missing = missingTool(['dcmdump', 'dcmftest']);
    if (missing !== null) {
      console.warn(`dcmtk checks skipped: ${missing} is not installed`);
      return;
    }
    const complaints: string[] = [];
    for (const p of pairs) {
      const test = spawnSync('dcmftest', [p.output], { encoding: 'utf8' });
      if (!test.stdout.startsWith('yes:')) complaints.push(`${basename(p.input)}: dcmftest: ${test.stdout.trim()}`);
      const dump = spawnSync('dcmdump', ['-q', '+E', p.output], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (dump.status !== 0 || dump.stderr.trim() !== '')
        complaints.push(`${basename(p.input)}: dcmdump: ${dump.status} ${dump.stderr.trim().slice(0, 200)}`);
    }
    expect(complaints).toEqual([]);
  });
});
