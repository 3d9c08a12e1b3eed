/**
 * Seeded mutations of DICOM files for the fuzzer: blind byte-level ones (flips, interesting
 * integers, truncation, deleted and repeated chunks) and aimed ones that use the file's own
 * structure (length fields, VRs, the attributes that size images, fragment items).
 */
import { parseDicom, type DataSet } from '../src/dicom/parser.js';
import { Tags } from '../src/dicom/tags.js';

/** A small fast seeded generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const pick = <T>(r: Random, list: readonly T[]): T => list[Math.floor(r() * list.length)];
const int = (r: Random, n: number): number => Math.floor(r() * n);

const INTERESTING_16 = [0, 1, 2, 7, 8, 12, 15, 16, 17, 31, 32, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_32 = [0, 1, 2, 0x7f, 0xff, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_TEXT = [
  '0',
  '-1',
  '1',
  '99999999',
  '1e9',
  '1e308',
  '-1e308',
  'nan',
  'inf',
  '-0',
  'abc',
  '',
  '1\\2',
  '3.5',
  '\\\\\\',
  '65536',
  '2147483648',
];

/** Where the elements of a file lie: value offset, length and VR, for aimed mutations. */
interface Place {
  tag: number;
  vr: string;
  offset: number;
  length: number;
  /** Offset and size of the length field. */
  lengthAt: number;
  lengthSize: 2 | 4;
  explicit: boolean;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function places(buf: Buffer): Place[] {
  try {
    const parsed = parseDicom(buf);
    // Deflated datasets live in another buffer: only blind mutations make sense there.
    if (parsed.dataset.buf !== buf) return [];
    const explicit = parsed.transferSyntaxUid !== '1.2.840.10008.1.2';
    const out: Place[] = [];
    const visit = (ds: DataSet): void => {
      for (const e of ds.elements.values()) {
        const isExplicit = explicit && e.tag >>> 16 !== 0xfffe;
        const long = !isExplicit || LONG_VRS.has(e.vr);
        out.push({
          tag: e.tag,
          vr: e.vr,
          offset: e.offset,
          length: e.length,
          lengthAt: e.offset - (long ? 4 : 2),
          lengthSize: long ? 4 : 2,
          explicit: isExplicit,
        });
        e.items?.forEach(visit);
      }
    };
    visit(parsed.dataset);
    const px = parsed.pixelData;
    for (const f of px?.fragments ?? []) {
      out.push({ tag: Tags.Item, vr: 'OB', offset: f.offset, length: f.length, lengthAt: f.offset - 4, lengthSize: 4, explicit: false });
    }
    return out.filter((p) => p.lengthAt >= 0 && p.lengthAt + p.lengthSize <= buf.length);
  } catch {
    return [];
  }
}

const SIZING_TAGS = [
  Tags.Rows,
  Tags.Columns,
  Tags.BitsAllocated,
  Tags.BitsStored,
  Tags.HighBit,
  Tags.PixelRepresentation,
  Tags.SamplesPerPixel,
  Tags.PlanarConfiguration,
];
const TEXT_TAGS = [
  Tags.NumberOfFrames,
  Tags.PixelSpacing,
  Tags.ImagePositionPatient,
  Tags.ImageOrientationPatient,
  Tags.InstanceNumber,
  Tags.RescaleSlope,
  Tags.RescaleIntercept,
  Tags.SliceThickness,
  Tags.WindowCenter,
  Tags.TransferSyntaxUID,
];

function writeText(buf: Buffer, p: Place, text: string): void {
  const padded = (text + ' '.repeat(p.length)).slice(0, p.length);
  buf.write(padded, p.offset, 'latin1');
}

/** One mutation of `input` (a copy is returned; the input is left alone). */
export function mutate(input: Buffer, r: Random): Buffer {
  try {
    return mutateOnce(input, r);
  } catch (err) {
    // A write that fell outside a short (or empty) buffer: flip a byte instead, if there is one.
    if (!(err instanceof RangeError)) throw err;
    const buf = Buffer.from(input);
    if (buf.length > 0) buf[int(r, buf.length)] ^= 0xff;
    return buf;
  }
}

function mutateOnce(input: Buffer, r: Random): Buffer {
  let buf = Buffer.from(input);
  const where = places(buf);
  const aimed = where.length > 0 && r() < 0.6;
  if (aimed) {
    const kind = int(r, 5);
    if (kind === 0) {
      // A length field lies.
      const p = pick(r, where);
      const v = p.lengthSize === 2 ? pick(r, INTERESTING_16) : pick(r, [...INTERESTING_32, p.length + 1, p.length * 2, Math.max(0, p.length - 1)]);
      if (p.lengthSize === 2) buf.writeUInt16LE(v & 0xffff, p.lengthAt);
      else buf.writeUInt32LE(v >>> 0, p.lengthAt);
      return buf;
    }
    if (kind === 1) {
      // A VR changes.
      const p = pick(
        r,
        where.filter((x) => x.explicit),
      );
      if (p)
        buf.write(
          pick(r, ['SQ', 'UN', 'OB', 'OW', 'US', 'SS', 'DS', 'IS', 'UL', 'FD', 'ZZ', '\0\0']),
          p.lengthAt - (p.lengthSize === 4 ? 4 : 2),
          'latin1',
        );
      return buf;
    }
    if (kind === 2) {
      // An attribute that sizes the image lies.
      const candidates = where.filter((x) => SIZING_TAGS.includes(x.tag) && x.length >= 2);
      if (candidates.length) {
        const p = pick(r, candidates);
        buf.writeUInt16LE(pick(r, INTERESTING_16), p.offset);
      }
      return buf;
    }
    if (kind === 3) {
      // A text attribute holds nonsense.
      const candidates = where.filter((x) => TEXT_TAGS.includes(x.tag) && x.length > 0);
      if (candidates.length) writeText(buf, pick(r, candidates), pick(r, INTERESTING_TEXT));
      return buf;
    }
    // A tag number changes (order broken, or an item tag appears where it should not).
    const p = pick(r, where);
    const tagAt = p.lengthAt - (p.explicit ? (p.lengthSize === 4 ? 8 : 6) : 4);
    if (tagAt >= 0) buf.writeUInt16LE(pick(r, [0x0000, 0x0008, 0x0028, 0x7fe0, 0xfffe, 0xffff]), tagAt);
    return buf;
  }
  const kind = int(r, 6);
  if (kind === 0) {
    for (let n = 1 + int(r, 8); n > 0; n--) buf[int(r, buf.length)] ^= 1 << int(r, 8);
  } else if (kind === 1) {
    const at = int(r, Math.max(1, buf.length - 4));
    buf.writeUInt32LE(pick(r, INTERESTING_32) >>> 0, at);
  } else if (kind === 2) {
    buf = buf.subarray(0, int(r, buf.length));
  } else if (kind === 3) {
    const at = int(r, buf.length);
    buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + 1 + int(r, 64)))]);
  } else if (kind === 4) {
    const at = int(r, buf.length);
    const chunk = buf.subarray(at, at + 1 + int(r, 256));
    buf = Buffer.concat([buf.subarray(0, at), chunk, chunk, buf.subarray(at + chunk.length)]);
  } else {
    const at = int(r, buf.length);
    const noise = Buffer.from(Array.from({ length: 1 + int(r, 32) }, () => int(r, 256)));
    buf = Buffer.concat([buf.subarray(0, at), noise, buf.subarray(at)]);
  }
  return buf;
}
