/**
 * A small DICOM Part 10 writer, for the demo series and for building test files in code.
 * Writes Implicit VR LE, Explicit VR LE, Explicit VR BE and Deflated Explicit VR LE.
 */
import { deflateRawSync } from 'node:zlib';
import { tag, Tags, TransferSyntax } from './tags.js';

export type ElementValue = string | number | readonly number[] | Uint8Array | readonly WriteElement[][];

export interface WriteElement {
  readonly tag: number;
  readonly vr: string;
  readonly value: ElementValue;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const BINARY_SIZES: Record<string, number> = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8 };

/** A decimal string of at most 16 characters. */
export function formatDS(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`DS value ${v} is not finite`);
  let s = String(v);
  for (let p = 15; s.length > 16 && p > 0; p--) s = String(Number(v.toPrecision(p)));
  return s;
}

function encodeValue(e: WriteElement, le: boolean): Buffer {
  const { vr, value } = e;
  const size = BINARY_SIZES[vr];
  if (size !== undefined) {
    const list = typeof value === 'number' ? [value] : (value as readonly number[]);
    const b = Buffer.alloc(list.length * size);
    list.forEach((v, i) => {
      const o = i * size;
      if (vr === 'US') le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o);
      else if (vr === 'SS') le ? b.writeInt16LE(v, o) : b.writeInt16BE(v, o);
      else if (vr === 'UL') le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o);
      else if (vr === 'SL') le ? b.writeInt32LE(v, o) : b.writeInt32BE(v, o);
      else if (vr === 'FL') le ? b.writeFloatLE(v, o) : b.writeFloatBE(v, o);
      else le ? b.writeDoubleLE(v, o) : b.writeDoubleBE(v, o);
    });
    return b;
  }
  if (value instanceof Uint8Array) {
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const padded = b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : Buffer.from(b);
    if (!le && vr === 'OW') padded.swap16();
    return padded;
  }
  let text: string;
  if (typeof value === 'number') text = vr === 'DS' ? formatDS(value) : String(value);
  else if (typeof value === 'string') text = value;
  else text = (value as readonly number[]).map((v) => (vr === 'DS' ? formatDS(v) : String(v))).join('\\');
  const b = Buffer.from(text, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(vr === 'UI' ? '\0' : ' ')]) : b;
}

/** Group and element of a tag at the start of `b`, in the byte order asked for. */
function writeTag(b: Buffer, group: number, element: number, le: boolean): void {
  if (le) {
    b.writeUInt16LE(group, 0);
    b.writeUInt16LE(element, 2);
  } else {
    b.writeUInt16BE(group, 0);
    b.writeUInt16BE(element, 2);
  }
}

function header(t: number, vr: string, length: number, explicit: boolean, le: boolean): Buffer {
  const g = t >>> 16;
  const el = t & 0xffff;
  if (!explicit) {
    const b = Buffer.alloc(8);
    writeTag(b, g, el, le);
    if (le) b.writeUInt32LE(length, 4);
    else b.writeUInt32BE(length, 4);
    return b;
  }
  const long = LONG_VRS.has(vr);
  const b = Buffer.alloc(long ? 12 : 8);
  writeTag(b, g, el, le);
  b.write(vr, 4, 'latin1');
  if (long && le) b.writeUInt32LE(length, 8);
  else if (long) b.writeUInt32BE(length, 8);
  else if (le) b.writeUInt16LE(length, 6);
  else b.writeUInt16BE(length, 6);
  return b;
}

/** Encodes elements (sorted by tag here) as a dataset. */
export function encodeDataset(elements: readonly WriteElement[], explicit: boolean, le: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const e of [...elements].sort((a, b) => a.tag - b.tag)) {
    if (e.vr === 'SQ') {
      const items = (e.value as readonly WriteElement[][]).map((item) => {
        const body = encodeDataset(item, explicit, le);
        return Buffer.concat([header(Tags.Item, '', body.length, false, le), body]);
      });
      const body = Buffer.concat(items);
      parts.push(header(e.tag, 'SQ', body.length, explicit, le), body);
      continue;
    }
    const value = encodeValue(e, le);
    parts.push(header(e.tag, e.vr, value.length, explicit, le), value);
  }
  return Buffer.concat(parts);
}

export interface WriteOptions {
  transferSyntax?: string;
  /**
   * Encoded frames to write as encapsulated Pixel Data (one fragment each, with a Basic Offset
   * Table when `offsetTable`); any PixelData element among the elements is left out.
   */
  encapsulated?: readonly Uint8Array[];
  offsetTable?: boolean;
  /** Leave out the preamble and file meta group (a bare dataset, as old exports have). */
  bare?: boolean;
}

const str = (elements: readonly WriteElement[], t: number): string => String(elements.find((e) => e.tag === t)?.value ?? '');

/** Pixel Data (7FE0,0010) OB of undefined length: offset table item, one fragment per frame, delimiter. */
function encapsulate(frames: readonly Uint8Array[], offsetTable: boolean): Buffer {
  const item = (data: Uint8Array): Buffer => {
    const padded = data.length % 2 ? Buffer.concat([data, Buffer.alloc(1)]) : Buffer.from(data);
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0xfffe, 0);
    head.writeUInt16LE(0xe000, 2);
    head.writeUInt32LE(padded.length, 4);
    return Buffer.concat([head, padded]);
  };
  const fragments = frames.map(item);
  const table = Buffer.alloc(offsetTable ? 4 * frames.length : 0);
  let at = 0;
  fragments.forEach((f, i) => {
    if (offsetTable) table.writeUInt32LE(at, 4 * i);
    at += f.length;
  });
  const head = Buffer.alloc(12);
  head.writeUInt16LE(0x7fe0, 0);
  head.writeUInt16LE(0x0010, 2);
  head.write('OB', 4, 'latin1');
  head.writeUInt32LE(0xffffffff, 8);
  const end = Buffer.alloc(8);
  end.writeUInt16LE(0xfffe, 0);
  end.writeUInt16LE(0xe0dd, 2);
  return Buffer.concat([head, item(table), ...fragments, end]);
}

/** Encodes a whole Part 10 file. */
export function writeDicom(elements: readonly WriteElement[], options: WriteOptions = {}): Buffer {
  const ts = options.transferSyntax ?? TransferSyntax.ExplicitLittle;
  const le = ts !== TransferSyntax.ExplicitBig;
  const explicit = ts !== TransferSyntax.ImplicitLittle;
  let dataset = options.encapsulated
    ? Buffer.concat([
        encodeDataset(
          elements.filter((e) => e.tag !== Tags.PixelData),
          explicit,
          le,
        ),
        encapsulate(options.encapsulated, options.offsetTable ?? false),
      ])
    : encodeDataset(elements, explicit, le);
  if (ts === TransferSyntax.DeflatedExplicitLittle) dataset = deflateRawSync(dataset);
  if (options.bare) return dataset;
  const metaElements: WriteElement[] = [
    { tag: tag(0x0002, 0x0001), vr: 'OB', value: new Uint8Array([0, 1]) },
    { tag: tag(0x0002, 0x0002), vr: 'UI', value: str(elements, Tags.SOPClassUID) },
    { tag: tag(0x0002, 0x0003), vr: 'UI', value: str(elements, Tags.SOPInstanceUID) },
    { tag: Tags.TransferSyntaxUID, vr: 'UI', value: ts },
    { tag: tag(0x0002, 0x0012), vr: 'UI', value: '1.2.826.0.1.3680043.10.1453.1' },
    { tag: tag(0x0002, 0x0013), vr: 'SH', value: 'CIRCUS_RS' },
  ];
  const meta = encodeDataset(metaElements, true, true);
  const groupLength = encodeDataset([{ tag: tag(0x0002, 0x0000), vr: 'UL', value: meta.length }], true, true);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, meta, dataset]);
}

/** A single-frame monochrome image, described in plain numbers. */
export interface ImageSpec {
  rows: number;
  columns: number;
  /** 1 (masks: pixels packed 8 a byte), 8 or 16. */
  bitsAllocated: 1 | 8 | 16;
  bitsStored?: number;
  highBit?: number;
  signed: boolean;
  /**
   * Stored values, row by row (several frames one after the other for a multi-frame image);
   * written little- or big-endian as the syntax needs. For BitsAllocated 1, one element a pixel,
   * 0 or 1 (any non-zero value is 1), packed by `packBitsLsbFirst`.
   */
  pixels: Int8Array | Uint8Array | Int16Array | Uint16Array;
  photometricInterpretation?: string;
  seriesInstanceUid: string;
  studyInstanceUid?: string;
  sopInstanceUid: string;
  sopClassUid?: string;
  modality?: string;
  seriesDescription?: string;
  instanceNumber?: number;
  imagePositionPatient?: readonly number[];
  imageOrientationPatient?: readonly number[];
  pixelSpacing?: readonly number[];
  sliceThickness?: number;
  spacingBetweenSlices?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number;
  windowWidth?: number;
  pixelPaddingValue?: number;
  /** More elements, for realism or for tests. */
  extra?: readonly WriteElement[];
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

/**
 * Packs one value a pixel into DICOM's BitsAllocated 1 layout (PS3.5 8.1.1): 8 pixels a byte,
 * the first pixel in the least significant bit, frames following each other bit by bit.
 * Pixel i is bit i % 8 of byte floor(i / 8); any non-zero value is a 1. Returns
 * ceil(pixels.length / 8) bytes (the writer pads the value to an even length).
 */
export function packBitsLsbFirst(pixels: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(pixels.length / 8));
  for (let i = 0; i < pixels.length; i++) if (pixels[i]) out[Math.floor(i / 8)] |= 1 << (i % 8);
  return out;
}

/** The Pixel Data value of `spec`: its pixels' bytes as they are, or packed for BitsAllocated 1. */
function pixelDataValue(spec: ImageSpec): Uint8Array {
  if (spec.bitsAllocated === 1) return packBitsLsbFirst(spec.pixels);
  return new Uint8Array(spec.pixels.buffer, spec.pixels.byteOffset, spec.pixels.byteLength);
}

/**
 * The elements of a single-frame image built from `spec` (a multi-frame one when `extra` adds
 * NumberOfFrames and `pixels` holds every frame).
 */
export function imageElements(spec: ImageSpec): WriteElement[] {
  const e: WriteElement[] = [
    { tag: Tags.SOPClassUID, vr: 'UI', value: spec.sopClassUid ?? CT_IMAGE_STORAGE },
    { tag: Tags.SOPInstanceUID, vr: 'UI', value: spec.sopInstanceUid },
    { tag: Tags.Modality, vr: 'CS', value: spec.modality ?? 'CT' },
    { tag: Tags.StudyInstanceUID, vr: 'UI', value: spec.studyInstanceUid ?? `${spec.seriesInstanceUid}.0` },
    { tag: Tags.SeriesInstanceUID, vr: 'UI', value: spec.seriesInstanceUid },
    { tag: Tags.SamplesPerPixel, vr: 'US', value: 1 },
    { tag: Tags.PhotometricInterpretation, vr: 'CS', value: spec.photometricInterpretation ?? 'MONOCHROME2' },
    { tag: Tags.Rows, vr: 'US', value: spec.rows },
    { tag: Tags.Columns, vr: 'US', value: spec.columns },
    { tag: Tags.BitsAllocated, vr: 'US', value: spec.bitsAllocated },
    { tag: Tags.BitsStored, vr: 'US', value: spec.bitsStored ?? spec.bitsAllocated },
    { tag: Tags.HighBit, vr: 'US', value: spec.highBit ?? (spec.bitsStored ?? spec.bitsAllocated) - 1 },
    { tag: Tags.PixelRepresentation, vr: 'US', value: spec.signed ? 1 : 0 },
    { tag: Tags.PixelData, vr: spec.bitsAllocated === 16 ? 'OW' : 'OB', value: pixelDataValue(spec) },
  ];
  const optional: [number, string, ElementValue | undefined][] = [
    [Tags.SeriesDescription, 'LO', spec.seriesDescription],
    [Tags.InstanceNumber, 'IS', spec.instanceNumber],
    [Tags.ImagePositionPatient, 'DS', spec.imagePositionPatient],
    [Tags.ImageOrientationPatient, 'DS', spec.imageOrientationPatient],
    [Tags.PixelSpacing, 'DS', spec.pixelSpacing],
    [Tags.SliceThickness, 'DS', spec.sliceThickness],
    [Tags.SpacingBetweenSlices, 'DS', spec.spacingBetweenSlices],
    [Tags.RescaleSlope, 'DS', spec.rescaleSlope],
    [Tags.RescaleIntercept, 'DS', spec.rescaleIntercept],
    [Tags.WindowCenter, 'DS', spec.windowCenter],
    [Tags.WindowWidth, 'DS', spec.windowWidth],
    [Tags.PixelPaddingValue, spec.signed ? 'SS' : 'US', spec.pixelPaddingValue],
  ];
  for (const [t, vr, value] of optional) if (value !== undefined) e.push({ tag: t, vr, value });
  const extraTags = new Set((spec.extra ?? []).map((x) => x.tag));
  return [...e.filter((x) => !extraTags.has(x.tag)), ...(spec.extra ?? [])];
}
