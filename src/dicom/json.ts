/**
 * The DICOM JSON Model (PS3.18 Annex F.2) of a parsed dataset, as DICOMweb's metadata and
 * QIDO-RS answers carry it, and the bytes behind its BulkDataURIs.
 *
 * Rules, and the choices the standard leaves open:
 * - keys are tags as 8 uppercase hex digits, in tag order; group lengths (gggg,0000) and the
 *   file meta group (0002) are left out;
 * - the VR is the file's, or the data dictionary's for Implicit VR (see elementValues.ts);
 * - text is decoded as the parser does (UTF-8 for ISO_IR 192, else Latin-1) and split on
 *   backslashes, except LT, ST, UT and UR, which hold one value; trailing spaces are removed
 *   (and trailing NULs, which pad UIs), and leading spaces where PS3.5 says they are not
 *   significant (AE, CS, DS, IS, LO, SH, DA, DT, TM);
 * - an empty value (no bytes, or only padding) has no Value key; an empty entry of a
 *   multi-valued attribute ("a\\\\b") is null;
 * - PN: one object a value with the groups present of Alphabetic, Ideographic and Phonetic
 *   (split on '='); an empty group is left out, and a value of empty groups only is null;
 * - DS and IS are JSON numbers. An entry that is not a number as PS3.5 writes one (a typo, or
 *   an infinity that JSON cannot hold) is null: the dataset stays valid for clients, and the
 *   other entries keep their positions (the third coordinate of a position stays third);
 * - US, SS, UL, SL, FL, FD are numbers (an FL/FD NaN or infinity is null); SV and UV are
 *   numbers when within ±(2^53 - 1), else decimal strings (JSON numbers beyond that lose
 *   digits in most clients);
 * - AT: 8 hex digit strings;
 * - OB, OD, OF, OL, OV, OW, UN: base64 InlineBinary of the little-endian bytes (swapped from a
 *   big-endian dataset), or a BulkDataURI when `bulkDataUri` is given and the value has more
 *   than `bulkThreshold` bytes;
 * - Pixel Data (7FE0,0010), native or encapsulated: always a BulkDataURI when `bulkDataUri`
 *   is given; left out otherwise (its bytes do not belong in a metadata answer);
 * - SQ: Value holds one object an item ({} for an empty item); a sequence of no items has no Value.
 */
import { BINARY_UNIT, elementItems, elementVr, encapsulatedValue, hexTag, littleEndianBytes, storedBytes } from './elementValues.js';
import { type DataSet, DicomParseError, type Element } from './parser.js';
import { Tags } from './tags.js';

export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type DicomJson = Record<string, DicomJsonAttribute>;

export interface JsonOptions {
  /**
   * The BulkDataURI of a value, from its path: the tag as 8 uppercase hex digits, within
   * sequences `SSSSSSSS/itemIndex/TTTTTTTT` (e.g. `7FE00010`, `00540016/0/00181072`).
   * Without it, binary values are inline and Pixel Data is left out.
   */
  bulkDataUri?: (path: string) => string;
  /** Binary values of more bytes than this get a BulkDataURI (when `bulkDataUri` is given); 1024 by default. */
  bulkThreshold?: number;
}

/** Text VRs holding a single value (a backslash is text). */
const SINGLE_TEXT = new Set(['LT', 'ST', 'UT', 'UR']);
/** Text VRs whose leading spaces are not significant (PS3.5 Table 6.2-1). */
const TRIM_LEADING = new Set(['AE', 'CS', 'DS', 'IS', 'LO', 'SH', 'DA', 'DT', 'TM']);
const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);

/** PS3.5 6.2: DS is a fixed or floating point number; IS an optionally signed integer. */
const DS_PATTERN = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const IS_PATTERN = /^[+-]?\d+$/;

const isGroupLength = (tag: number): boolean => (tag & 0xffff) === 0;
const isMetaGroup = (tag: number): boolean => tag >>> 16 === 0x0002;

function decodeText(ds: DataSet, e: Element): string {
  return storedBytes(ds, e).toString(ds.utf8 ? 'utf8' : 'latin1');
}

/** The values of a text element, trimmed as its VR says; undefined when empty. */
function textValues(ds: DataSet, e: Element, vr: string): (string | null)[] | undefined {
  const text = decodeText(ds, e).replace(/[ \0]+$/, '');
  if (text === '') return undefined;
  const parts = SINGLE_TEXT.has(vr) ? [text] : text.split('\\');
  return parts.map((p) => {
    let v = p.replace(/[ \0]+$/, '');
    if (TRIM_LEADING.has(vr)) v = v.replace(/^ +/, '');
    return v === '' ? null : v;
  });
}

function personNames(values: (string | null)[]): unknown[] {
  return values.map((v) => {
    if (v === null) return null;
    const groups = v.split('=');
    const out: Record<string, string> = {};
    (['Alphabetic', 'Ideographic', 'Phonetic'] as const).forEach((name, i) => {
      const g = groups[i]?.replace(/ +$/, '');
      if (g) out[name] = g;
    });
    return Object.keys(out).length > 0 ? out : null;
  });
}

function numberValues(values: (string | null)[], pattern: RegExp): (number | null)[] {
  return values.map((v) => {
    if (v === null) return null;
    const t = v.trim();
    if (!pattern.test(t)) return null;
    const n = Number(t);
    return Number.isFinite(n) ? n : null;
  });
}

const finiteOrNull = (n: number): number | null => (Number.isFinite(n) ? n : null);

function bigValue(n: bigint): number | string {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(-Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

/** Binary numbers of an element (little-endian bytes). */
function binaryNumbers(b: Buffer, vr: string): unknown[] {
  const out: unknown[] = [];
  switch (vr) {
    case 'US':
      for (let o = 0; o < b.length; o += 2) out.push(b.readUInt16LE(o));
      break;
    case 'SS':
      for (let o = 0; o < b.length; o += 2) out.push(b.readInt16LE(o));
      break;
    case 'UL':
      for (let o = 0; o < b.length; o += 4) out.push(b.readUInt32LE(o));
      break;
    case 'SL':
      for (let o = 0; o < b.length; o += 4) out.push(b.readInt32LE(o));
      break;
    case 'FL':
      for (let o = 0; o < b.length; o += 4) out.push(finiteOrNull(b.readFloatLE(o)));
      break;
    case 'FD':
      for (let o = 0; o < b.length; o += 8) out.push(finiteOrNull(b.readDoubleLE(o)));
      break;
    case 'SV':
      for (let o = 0; o < b.length; o += 8) out.push(bigValue(b.readBigInt64LE(o)));
      break;
    case 'UV':
      for (let o = 0; o < b.length; o += 8) out.push(bigValue(b.readBigUInt64LE(o)));
      break;
    case 'AT':
      if (b.length % 4 !== 0) throw new DicomParseError(`AT value of ${b.length} bytes is not a whole number of tags`);
      for (let o = 0; o < b.length; o += 4) out.push(hexTag(((b.readUInt16LE(o) << 16) | b.readUInt16LE(o + 2)) >>> 0));
      break;
  }
  return out;
}

/** The DICOM JSON object of a dataset (a top-level dataset or a sequence item). */
export function datasetJson(ds: DataSet, options: JsonOptions = {}): DicomJson {
  return toJson(ds, options, '');
}

function toJson(ds: DataSet, options: JsonOptions, prefix: string): DicomJson {
  const out: DicomJson = {};
  const elements = [...ds.elements.values()].sort((a, b) => a.tag - b.tag);
  for (const e of elements) {
    if (isGroupLength(e.tag) || isMetaGroup(e.tag)) continue;
    const key = hexTag(e.tag);
    const attr = attribute(ds, e, options, `${prefix}${key}`);
    if (attr) out[key] = attr;
  }
  return out;
}

function attribute(ds: DataSet, e: Element, options: JsonOptions, path: string): DicomJsonAttribute | undefined {
  const vr = elementVr(ds, e);
  if (e.tag === Tags.PixelData) {
    return options.bulkDataUri ? { vr, BulkDataURI: options.bulkDataUri(path) } : undefined;
  }
  if (vr === 'SQ') {
    const items = elementItems(ds, e) ?? [];
    if (items.length === 0) return { vr };
    return { vr, Value: items.map((item, i) => toJson(item, options, `${path}/${i}/`)) };
  }
  if (e.length === 0) return { vr };
  if (vr in BINARY_UNIT) {
    const uri = options.bulkDataUri;
    if (uri && e.length > (options.bulkThreshold ?? 1024)) return { vr, BulkDataURI: uri(path) };
    return { vr, InlineBinary: littleEndianBytes(ds, e, vr).toString('base64') };
  }
  if (TEXT_VRS.has(vr)) {
    const values = textValues(ds, e, vr);
    if (!values) return { vr };
    if (vr === 'PN') return { vr, Value: personNames(values) };
    if (vr === 'DS') return { vr, Value: numberValues(values, DS_PATTERN) };
    if (vr === 'IS') return { vr, Value: numberValues(values, IS_PATTERN) };
    return { vr, Value: values };
  }
  const numbers = binaryNumbers(littleEndianBytes(ds, e, vr), vr);
  if (numbers.length > 0) return { vr, Value: numbers };
  // A VR this model does not know: its bytes, as for UN.
  return { vr, InlineBinary: storedBytes(ds, e).toString('base64') };
}

const PATH = /^[0-9A-F]{8}(\/\d+\/[0-9A-F]{8})*$/;

/**
 * The bytes a BulkDataURI path names (see JsonOptions.bulkDataUri), little endian as DICOMweb
 * sends bulk data: binary words of a big-endian dataset swapped, encapsulated Pixel Data as its
 * items are stored (Basic Offset Table, then the fragments, each with its item header; the
 * frames route splits them). undefined when the path names nothing or a sequence.
 */
export function bulkValue(ds: DataSet, path: string): Buffer | undefined {
  if (!PATH.test(path)) return undefined;
  const parts = path.split('/');
  let current = ds;
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const e = current.elements.get(Number.parseInt(parts[i], 16));
    if (!e) return undefined;
    const item = elementItems(current, e)?.[Number(parts[i + 1])];
    if (!item) return undefined;
    current = item;
  }
  const e = current.elements.get(Number.parseInt(parts[parts.length - 1], 16));
  if (!e) return undefined;
  if (e.tag === Tags.PixelData && e.length < 0 && e.fragments) return encapsulatedValue(current, e);
  const vr = elementVr(current, e);
  if (vr === 'SQ') return undefined;
  return littleEndianBytes(current, e, vr);
}
