/**
 * A DICOM Part 10 reader that records where each element's value lies instead of copying it.
 *
 * - Reads the file meta group (always Explicit VR Little Endian) and then the dataset in the
 *   transfer syntax it names: Implicit VR LE, Explicit VR LE, Explicit VR BE, Deflated Explicit
 *   VR LE (inflated with node:zlib under a size limit), and the encapsulated syntaxes (Explicit
 *   VR LE with pixel data in fragments).
 * - Files without the 128-byte preamble and "DICM" are accepted when they start with a plausible
 *   group 0008 element (old ACR-NEMA style exports), in Implicit or Explicit VR LE.
 * - With `untilPixelData`, parsing stops at the Pixel Data element: its header is read, its value
 *   is not, so a caller can read only the first kilobytes of a file (`PartialFileError` says how
 *   many bytes are needed when the buffer ends before that).
 * - Text is decoded as UTF-8 where Specific Character Set (0008,0005) says ISO_IR 192, else as
 *   Latin-1; a sequence item uses the character set of the dataset holding it unless it has its own.
 *
 * Everything malformed throws `DicomParseError` with a reason; nothing else is thrown for any input.
 */
import { inflateRawSync } from 'node:zlib';
import { IMPLICIT_VR, Tags, TransferSyntax } from './tags.js';

export class DicomParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomParseError';
  }
}

/** The buffer ended before the element the caller asked for; read at least `needed` bytes. */
export class PartialFileError extends DicomParseError {
  constructor(readonly needed: number) {
    super(`file ends early: at least ${needed} bytes are needed`);
    this.name = 'PartialFileError';
  }
}

export interface Element {
  readonly tag: number;
  readonly vr: string;
  /** Offset of the value in the dataset's buffer. */
  readonly offset: number;
  /** Length of the value in bytes; -1 when undefined (sequences, encapsulated pixel data). */
  readonly length: number;
  /** Items of a sequence. */
  readonly items?: DataSet[];
  /** Fragments of encapsulated pixel data (the basic offset table is `fragments[0]`). */
  readonly fragments?: { offset: number; length: number }[];
}

const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 16;
/** VRs whose explicit encoding has 2 reserved bytes and a 4-byte length. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export class DataSet {
  readonly elements = new Map<number, Element>();
  private utf8Text: boolean | undefined;
  /**
   * @param container the dataset that holds this one as a sequence item: its character set
   *   applies to this item's text unless the item has its own Specific Character Set.
   * @param explicitVr whether the elements were encoded with their VRs; when not, an element the
   *   parser does not know (tags.ts IMPLICIT_VR) has VR 'UN', and its real VR is the dictionary's.
   */
  constructor(
    readonly buf: Buffer,
    readonly littleEndian: boolean,
    readonly container?: DataSet,
    readonly explicitVr = true,
  ) {}

  /** How many sequence items hold this dataset (0 for a top-level dataset). */
  get depth(): number {
    let d = 0;
    for (let c = this.container; c; c = c.container) d++;
    return d;
  }

  /**
   * Whether text values are UTF-8: Specific Character Set (0008,0005) names ISO_IR 192 in this
   * dataset or, when it has none, in its container (recursively); Latin-1 otherwise. Settled on
   * first use, which comes after parsing (the element may follow nested items in the file).
   */
  get utf8(): boolean {
    if (this.utf8Text === undefined) {
      const e = this.elements.get(Tags.SpecificCharacterSet);
      this.utf8Text =
        e !== undefined && e.length >= 0
          ? /ISO_IR 192/.test(this.buf.toString('latin1', e.offset, Math.min(e.offset + e.length, this.buf.length)))
          : (this.container?.utf8 ?? false);
    }
    return this.utf8Text;
  }

  has(tag: number): boolean {
    return this.elements.has(tag);
  }

  /** Value as text with trailing spaces and NULs removed; undefined when absent. */
  string(tag: number): string | undefined {
    const e = this.elements.get(tag);
    if (!e || e.length < 0) return undefined;
    const end = Math.min(e.offset + e.length, this.buf.length);
    return this.buf
      .toString(this.utf8 ? 'utf8' : 'latin1', e.offset, end)
      .replace(/[\s\0]+$/, '')
      .replace(/^\s+/, '');
  }

  /** All values of a numeric attribute, text (DS, IS) or binary (US, SS, UL, SL, FL, FD). */
  numbers(tag: number): number[] | undefined {
    const e = this.elements.get(tag);
    if (!e || e.length < 0) return undefined;
    const b = this.buf;
    const le = this.littleEndian;
    const end = Math.min(e.offset + e.length, b.length);
    const read = (size: number, f: (o: number) => number): number[] => {
      const out: number[] = [];
      for (let o = e.offset; o + size <= end; o += size) out.push(f(o));
      return out;
    };
    switch (e.vr) {
      case 'US':
        return read(2, (o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o)));
      case 'SS':
        return read(2, (o) => (le ? b.readInt16LE(o) : b.readInt16BE(o)));
      case 'UL':
        return read(4, (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o)));
      case 'SL':
        return read(4, (o) => (le ? b.readInt32LE(o) : b.readInt32BE(o)));
      case 'FL':
        return read(4, (o) => (le ? b.readFloatLE(o) : b.readFloatBE(o)));
      case 'FD':
        return read(8, (o) => (le ? b.readDoubleLE(o) : b.readDoubleBE(o)));
      default: {
        const s = this.string(tag);
        if (s === undefined || s === '') return [];
        return s.split('\\').map((v) => {
          const t = v.trim();
          return t === '' ? NaN : Number(t);
        });
      }
    }
  }

  /** First value of a numeric attribute when it is a finite number, else undefined. */
  number(tag: number): number | undefined {
    const v = this.numbers(tag)?.[0];
    return v !== undefined && Number.isFinite(v) ? v : undefined;
  }

  /** First 16-bit word of the value as unsigned, whatever the VR (for US/SS attributes). */
  uint16(tag: number): number | undefined {
    const e = this.elements.get(tag);
    if (!e || e.length < 2 || e.offset + 2 > this.buf.length) return undefined;
    return this.littleEndian ? this.buf.readUInt16LE(e.offset) : this.buf.readUInt16BE(e.offset);
  }

  sequence(tag: number): DataSet[] | undefined {
    return this.elements.get(tag)?.items;
  }
}

export interface ParsedDicom {
  transferSyntaxUid: string;
  /** The file meta group (empty for files without one). */
  meta: DataSet;
  dataset: DataSet;
  pixelData?: Element;
}

export interface ParseOptions {
  /** Stop at the Pixel Data element (its value is not needed in the buffer). */
  untilPixelData?: boolean;
  /** The buffer may be only the start of the file: running out of bytes is a PartialFileError. */
  partial?: boolean;
  /** Largest inflated size accepted for a deflated dataset, in bytes. */
  maxInflatedBytes?: number;
  /**
   * Go on reading the elements that follow Pixel Data (such as Data Set Trailing Padding) instead
   * of stopping there; for readers of the whole dataset (DICOM JSON, transcoding). Ignored with
   * `untilPixelData`.
   */
  elementsAfterPixelData?: boolean;
}

class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    readonly littleEndian: boolean,
    start: number,
    readonly partial: boolean,
  ) {
    this.pos = start;
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      if (this.partial) throw new PartialFileError(this.pos + n);
      throw new DicomParseError(`file is truncated at byte ${this.buf.length} (needed ${this.pos + n})`);
    }
  }
  u16(): number {
    this.need(2);
    const v = this.littleEndian ? this.buf.readUInt16LE(this.pos) : this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.littleEndian ? this.buf.readUInt32LE(this.pos) : this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  tag(): number {
    const g = this.u16();
    const e = this.u16();
    return ((g << 16) | e) >>> 0;
  }
}

const hex = (tag: number): string => {
  const s = tag.toString(16).padStart(8, '0').toUpperCase();
  return `(${s.slice(0, 4)},${s.slice(4)})`;
};

const isVrByte = (c: number): boolean => c >= 0x41 && c <= 0x5a;

interface Mode {
  explicit: boolean;
  untilPixelData: boolean;
  afterPixelData?: boolean;
}

/** Parses elements from `c.pos` until `end` (exclusive) or an item delimitation when `end` is undefined. */
function parseElements(c: Cursor, ds: DataSet, mode: Mode, end: number | undefined, depth: number): 'end' | 'pixel' {
  if (depth > MAX_DEPTH) throw new DicomParseError(`sequences nested deeper than ${MAX_DEPTH} levels`);
  while (end === undefined || c.pos < end) {
    if (end === undefined && c.pos >= c.buf.length) {
      if (c.partial) throw new PartialFileError(c.pos + 8);
      if (depth === 0) return 'end';
      throw new DicomParseError('sequence item is not terminated');
    }
    const start = c.pos;
    const tag = c.tag();
    if (tag === Tags.ItemDelimitation) {
      c.u32();
      return 'end';
    }
    if (tag === Tags.Item || tag === Tags.SequenceDelimitation) {
      throw new DicomParseError(`unexpected item tag ${hex(tag)} at byte ${start}`);
    }
    let vr: string;
    let length: number;
    if (mode.explicit) {
      c.need(2);
      const b0 = c.buf[c.pos];
      const b1 = c.buf[c.pos + 1];
      if (!isVrByte(b0) || !isVrByte(b1)) {
        throw new DicomParseError(`invalid value representation for ${hex(tag)} at byte ${start}`);
      }
      vr = String.fromCharCode(b0, b1);
      c.pos += 2;
      if (LONG_VRS.has(vr)) {
        c.u16();
        length = c.u32();
      } else {
        length = c.u16();
      }
    } else {
      vr = IMPLICIT_VR.get(tag) ?? 'UN';
      length = c.u32();
    }
    const valueStart = c.pos;
    if (tag === Tags.PixelData && depth === 0) {
      if (length === UNDEFINED) {
        const fragments = mode.untilPixelData ? undefined : parseFragments(c);
        ds.elements.set(tag, { tag, vr, offset: valueStart, length: -1, fragments });
      } else {
        if (!mode.untilPixelData) c.need(length);
        ds.elements.set(tag, { tag, vr, offset: valueStart, length });
        c.pos = valueStart + length;
      }
      if (mode.afterPixelData && !mode.untilPixelData) continue;
      return 'pixel';
    }
    if (length === UNDEFINED) {
      if (vr !== 'SQ' && vr !== 'UN') {
        throw new DicomParseError(`undefined length for ${hex(tag)} (${vr}) at byte ${start}`);
      }
      // A UN with undefined length holds a sequence in Implicit VR Little Endian.
      const itemMode = vr === 'UN' ? { ...mode, explicit: false } : mode;
      const items = parseSequence(c, ds, itemMode, undefined, depth);
      ds.elements.set(tag, { tag, vr: 'SQ', offset: valueStart, length: -1, items });
      continue;
    }
    if (end !== undefined && valueStart + length > end) {
      throw new DicomParseError(`element ${hex(tag)} runs past the end of its container`);
    }
    if (vr === 'SQ') {
      c.need(length);
      const items = parseSequence(c, ds, mode, valueStart + length, depth);
      ds.elements.set(tag, { tag, vr, offset: valueStart, length, items });
      c.pos = valueStart + length;
      continue;
    }
    if (valueStart + length > c.buf.length) {
      if (c.partial) throw new PartialFileError(valueStart + length);
      throw new DicomParseError(`element ${hex(tag)} of ${length} bytes is truncated`);
    }
    ds.elements.set(tag, { tag, vr, offset: valueStart, length });
    c.pos = valueStart + length;
  }
  return 'end';
}

function parseSequence(c: Cursor, parent: DataSet, mode: Mode, end: number | undefined, depth: number): DataSet[] {
  const items: DataSet[] = [];
  while (end === undefined || c.pos < end) {
    const at = c.pos;
    const tag = c.tag();
    const length = c.u32();
    if (tag === Tags.SequenceDelimitation) return items;
    if (tag !== Tags.Item) throw new DicomParseError(`expected a sequence item at byte ${at}, found ${hex(tag)}`);
    const item = new DataSet(c.buf, c.littleEndian, parent, mode.explicit);
    const itemMode = { ...mode, untilPixelData: false };
    if (length === UNDEFINED) {
      parseElements(c, item, itemMode, undefined, depth + 1);
    } else {
      const itemEnd = c.pos + length;
      if (end !== undefined && itemEnd > end) throw new DicomParseError(`sequence item at byte ${at} runs past its sequence`);
      c.need(length);
      parseElements(c, item, itemMode, itemEnd, depth + 1);
      c.pos = itemEnd;
    }
    items.push(item);
  }
  return items;
}

function parseFragments(c: Cursor): { offset: number; length: number }[] {
  const fragments: { offset: number; length: number }[] = [];
  for (;;) {
    const at = c.pos;
    const tag = c.tag();
    const length = c.u32();
    if (tag === Tags.SequenceDelimitation) return fragments;
    if (tag !== Tags.Item || length === UNDEFINED) {
      throw new DicomParseError(`malformed pixel data fragment at byte ${at}`);
    }
    c.need(length);
    fragments.push({ offset: c.pos, length });
    c.pos += length;
  }
}

/** Whether bytes at `pos` look like the start of a group 0008 element in Explicit VR LE. */
function looksExplicit(buf: Buffer, pos: number): boolean {
  return buf.length >= pos + 6 && isVrByte(buf[pos + 4]) && isVrByte(buf[pos + 5]);
}

/**
 * Parses a DICOM file. `buf` may hold only the start of the file when `untilPixelData` is set;
 * a `PartialFileError` then says how many bytes are needed.
 */
export function parseDicom(buf: Buffer, options: ParseOptions = {}): ParsedDicom {
  const partial = options.partial === true;
  const meta = new DataSet(buf, true);
  let pos: number;
  let transferSyntaxUid: string;
  if (buf.length >= 132 && buf.toString('latin1', 128, 132) === 'DICM') {
    const c = new Cursor(buf, true, 132, partial);
    // The meta group is Explicit VR LE; read its elements while the group is 0002.
    while (c.pos + 4 <= buf.length && buf.readUInt16LE(c.pos) === 0x0002) {
      parseOne(c, meta);
    }
    if (c.pos + 4 > buf.length && partial) throw new PartialFileError(c.pos + 8);
    pos = c.pos;
    transferSyntaxUid = meta.string(Tags.TransferSyntaxUID) ?? '';
    if (transferSyntaxUid === '') throw new DicomParseError('file meta information has no Transfer Syntax UID');
  } else {
    // No preamble: accept a bare dataset that starts with a group 0008 element.
    if (buf.length < 8 || buf.readUInt16LE(0) !== 0x0008) {
      throw new DicomParseError('not a DICOM file (no DICM marker and no dataset at the start)');
    }
    pos = 0;
    transferSyntaxUid = looksExplicit(buf, 0) ? TransferSyntax.ExplicitLittle : TransferSyntax.ImplicitLittle;
  }

  let dataBuf = buf;
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitLittle) {
    if (partial && buf.length < 132) throw new PartialFileError(132);
    try {
      dataBuf = inflateRawSync(buf.subarray(pos), { maxOutputLength: options.maxInflatedBytes ?? 2 ** 31 - 1 });
    } catch (err) {
      if (partial) throw new PartialFileError(Number.MAX_SAFE_INTEGER);
      throw new DicomParseError(`deflated dataset cannot be inflated: ${(err as Error).message}`);
    }
    pos = 0;
  }
  const littleEndian = transferSyntaxUid !== TransferSyntax.ExplicitBig;
  const explicit = transferSyntaxUid !== TransferSyntax.ImplicitLittle;
  const dataset = new DataSet(dataBuf, littleEndian, undefined, explicit);
  const c = new Cursor(dataBuf, littleEndian, pos, partial && dataBuf === buf);
  const mode = { explicit, untilPixelData: options.untilPixelData === true, afterPixelData: options.elementsAfterPixelData === true };
  parseElements(c, dataset, mode, undefined, 0);
  return { transferSyntaxUid, meta, dataset, pixelData: dataset.elements.get(Tags.PixelData) };
}

/** Reads one Explicit VR LE element of the meta group. */
function parseOne(c: Cursor, ds: DataSet): void {
  const tag = c.tag();
  c.need(2);
  const b0 = c.buf[c.pos];
  const b1 = c.buf[c.pos + 1];
  if (!isVrByte(b0) || !isVrByte(b1)) throw new DicomParseError(`invalid value representation in file meta ${hex(tag)}`);
  const vr = String.fromCharCode(b0, b1);
  c.pos += 2;
  let length: number;
  if (LONG_VRS.has(vr)) {
    c.u16();
    length = c.u32();
  } else {
    length = c.u16();
  }
  if (length === UNDEFINED) throw new DicomParseError(`undefined length in file meta ${hex(tag)}`);
  c.need(length);
  ds.elements.set(tag, { tag, vr, offset: c.pos, length });
  c.pos += length;
}

/**
 * The items of a sequence whose value the parser kept as bytes: an element of defined length
 * read as 'UN' from an Implicit VR dataset (or an explicit UN) that the data dictionary says is
 * an SQ. The value is parsed in Implicit VR Little Endian (PS3.5 6.2.2: what a UN holding a
 * sequence, and an Implicit VR dataset, are encoded in), within the element's bytes only, to
 * the same depth limit as the rest of the dataset. Throws DicomParseError when it is not a
 * well-formed sequence.
 */
export function parseSequenceValue(ds: DataSet, e: Element): DataSet[] {
  if (e.items) return e.items;
  if (e.length < 0) throw new DicomParseError(`element ${hex(e.tag)} has no value to parse as a sequence`);
  const end = e.offset + e.length;
  if (end > ds.buf.length) throw new DicomParseError(`element ${hex(e.tag)} of ${e.length} bytes is truncated`);
  // A view ending with the value: nothing in it can be read past the element.
  const c = new Cursor(ds.buf.subarray(0, end), true, e.offset, false);
  const items = parseSequence(c, ds, { explicit: false, untilPixelData: false }, end, ds.depth);
  return items;
}
