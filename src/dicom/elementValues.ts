/**
 * What DICOM JSON and transcoding need to know of each parsed element beyond what the volume
 * loader does: its real VR (the data dictionary's where the file was Implicit VR), its items
 * when it is a sequence the parser kept as bytes, and its value's bytes in little endian.
 */
import { isPrivateTag, vrsOf } from './dictionary.js';
import { type DataSet, DicomParseError, type Element, parseSequenceValue } from './parser.js';
import { Tags } from './tags.js';

/** VRs whose value is bytes (DICOM JSON InlineBinary or BulkDataURI), by the size of their unit. */
export const BINARY_UNIT: Readonly<Record<string, number>> = { OB: 1, UN: 1, OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

/** VRs whose value is binary numbers, by the size of one. AT is two 16-bit words. */
export const NUMBER_SIZE: Readonly<Record<string, number>> = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, SV: 8, UV: 8, AT: 2 };

/** VRs written with a 2-byte length in Explicit VR (their value cannot exceed 65534 bytes). */
export const SHORT_VRS: ReadonlySet<string> = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FL',
  'FD',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'SL',
  'SS',
  'ST',
  'TM',
  'UI',
  'UL',
  'US',
]);

export const hexTag = (tag: number): string => tag.toString(16).padStart(8, '0').toUpperCase();

const describe = (tag: number): string => `(${hexTag(tag).slice(0, 4)},${hexTag(tag).slice(4)})`;

/** PixelRepresentation of the dataset or, when it has none, of the nearest dataset holding it. */
function pixelRepresentation(ds: DataSet): number | undefined {
  for (let d: DataSet | undefined = ds; d; d = d.container) {
    if (d.has(Tags.PixelRepresentation)) return d.uint16(Tags.PixelRepresentation);
  }
  return undefined;
}

/**
 * The VR of an element:
 * - as written, in Explicit VR (but see UN below);
 * - the dictionary's for a standard tag read from Implicit VR, resolving the tags the standard
 *   gives several VRs: 'US or SS' by PixelRepresentation (SS when 1, as PS3.3 defines those
 *   attributes), the others OW (what Implicit VR Little Endian encodes them as);
 * - UN for private tags (other than private creators, LO) and unknown tags in Implicit VR;
 * - the dictionary's for an explicit UN of a standard tag in a little-endian dataset: its bytes
 *   are the Implicit VR Little Endian encoding (PS3.5 6.2.2), so they read as that VR;
 * - UN, in both cases, when the value's length is not a whole number of that VR's units;
 * - SQ for any element the parser read as a sequence.
 */
export function elementVr(ds: DataSet, e: Element): string {
  if (e.items) return 'SQ';
  if (e.tag === Tags.PixelData && e.length < 0) return 'OB';
  if (ds.explicitVr && (e.vr !== 'UN' || !ds.littleEndian)) return e.vr;
  if (isPrivateTag(e.tag) && (e.tag & 0xffff) > 0x00ff) return 'UN';
  const vrs = vrsOf(e.tag);
  if (vrs.length === 0) return 'UN';
  const vr = vrs.includes('SS') && vrs.includes('US') && !vrs.includes('OW') ? (pixelRepresentation(ds) === 1 ? 'SS' : 'US') : vrs[0];
  // A value whose length the dictionary's VR cannot hold (a private use of a retired tag, a
  // damaged file) stays bytes rather than failing the whole dataset.
  const unit = NUMBER_SIZE[vr] ?? BINARY_UNIT[vr] ?? 1;
  if (e.length >= 0 && e.length % (vr === 'AT' ? 4 : unit) !== 0) return 'UN';
  return vr;
}

const parsedItems = new WeakMap<Element, DataSet[]>();

/**
 * The items of a sequence: those the parser read, or those of a value it kept as bytes (an
 * Implicit VR SQ of defined length, or a UN the dictionary says is an SQ), parsed once.
 * undefined when the element is not a sequence. Throws DicomParseError when the bytes are not one.
 */
export function elementItems(ds: DataSet, e: Element): DataSet[] | undefined {
  if (e.items) return e.items;
  if (elementVr(ds, e) !== 'SQ') return undefined;
  let items = parsedItems.get(e);
  if (!items) {
    items = parseSequenceValue(ds, e);
    parsedItems.set(e, items);
  }
  return items;
}

/** The value's bytes as stored (a view; `length` bytes from `offset`). */
export function storedBytes(ds: DataSet, e: Element): Buffer {
  if (e.length < 0) throw new DicomParseError(`element ${describe(e.tag)} has no defined length`);
  if (e.offset + e.length > ds.buf.length) throw new DicomParseError(`element ${describe(e.tag)} of ${e.length} bytes is truncated`);
  return ds.buf.subarray(e.offset, e.offset + e.length);
}

/**
 * The size of the words native Pixel Data is swapped by under Explicit VR Big Endian: its
 * samples' (BitsAllocated 16, 32, 64), or 16-bit words for 1 and 8-bit data in OW (PS3.5 A.3).
 */
function pixelWordBytes(ds: DataSet): number {
  let top = ds;
  while (top.container) top = top.container;
  const bits = ds.number(Tags.BitsAllocated) ?? top.number(Tags.BitsAllocated) ?? 16;
  return bits === 32 || bits === 64 ? bits / 8 : 2;
}

/**
 * The value's bytes in little endian (a copy when they had to be swapped, else a view): binary
 * numbers and OW/OF/OL/OD/OV words of a big-endian dataset swapped unit by unit; text, OB and UN
 * as stored. Throws DicomParseError when the length is not a whole number of units.
 */
export function littleEndianBytes(ds: DataSet, e: Element, vr: string): Buffer {
  const bytes = storedBytes(ds, e);
  const unit = e.tag === Tags.PixelData && vr === 'OW' ? pixelWordBytes(ds) : (NUMBER_SIZE[vr] ?? BINARY_UNIT[vr] ?? 1);
  if (unit > 1 && bytes.length % unit !== 0) {
    throw new DicomParseError(`element ${describe(e.tag)} (${vr}) has ${bytes.length} bytes, not a multiple of ${unit}`);
  }
  if (ds.littleEndian || unit === 1) return bytes;
  const copy = Buffer.from(bytes);
  if (unit === 2) copy.swap16();
  else if (unit === 4) copy.swap32();
  else copy.swap64();
  return copy;
}

/**
 * Where encapsulated pixel data's value ends: after its last fragment (the sequence delimiter
 * follows). The value is the items as stored, Basic Offset Table first.
 */
export function encapsulatedValue(ds: DataSet, e: Element): Buffer {
  const fragments = e.fragments;
  if (!fragments || fragments.length === 0) throw new DicomParseError('encapsulated pixel data holds no item');
  const last = fragments[fragments.length - 1];
  return ds.buf.subarray(e.offset, last.offset + last.length);
}
