/**
 * An instance re-encoded for DICOMweb's WADO-RS: as a Part 10 file in Explicit VR Little Endian
 * (the transfer syntax every client reads), its frames compressed as stored, or one frame's
 * uncompressed bytes.
 *
 * Re-encoding, element by element (tag order; group lengths and the old file meta left out, as
 * their values would no longer hold):
 * - VRs as elementValues.ts settles them: the file's, the data dictionary's for Implicit VR,
 *   UN for private and unknown tags of Implicit VR input; a value too long for its VR's 2-byte
 *   length (possible in Implicit VR) and a VR this writer does not know become UN;
 * - binary numbers and OW/OF/OL/OD/OV words of big-endian input swapped to little endian;
 *   text copied as stored (Specific Character Set is kept, so it still applies), odd lengths
 *   padded (space, NUL for UI, 0 for binary);
 * - sequences and items written with undefined lengths and delimiters, whatever they had;
 * - Pixel Data copied when native (OW when BitsAllocated > 8, else OB), replaced by decoded
 *   pixels otherwise; Photometric Interpretation and Planar Configuration follow the pixels.
 *
 * Elements after Pixel Data are kept only when the input was parsed with `elementsAfterPixelData`.
 */
import { decodedFrameBytes, decodeFrame, decodeFrameInto, type FrameInfo, initCodecs } from './codecs.js';
import { elementItems, elementVr, littleEndianBytes, SHORT_VRS } from './elementValues.js';
import { encapsulatedFrames as splitFrames } from './frames.js';
import { type DataSet, DicomParseError, type Element, type ParsedDicom, parseDicom } from './parser.js';
import { isNative, readSliceHeader, type SliceHeader } from './sliceHeader.js';
import { tag, Tags, TransferSyntax } from './tags.js';
import { encodeDataset } from './writer.js';

/** Uncompressed pixel data to write in place of the file's. */
export interface NativePixels {
  /** Every frame's samples back to back, little endian, BitsAllocated bits each. */
  bytes: Uint8Array;
  /** The photometric interpretation of `bytes` when it is not the file's (YBR_FULL_422 decoded to RGB). */
  photometricInterpretation?: string;
  /** The planar configuration of `bytes` when it is not the file's. */
  planarConfiguration?: number;
}

/**
 * Implementation Class UID of files written here: a UUID-derived UID (PS3.5 B.2), made once
 * for circus-rs from UUID 24a7e132-d98e-4705-aec6-faa97ab4a288.
 */
export const IMPLEMENTATION_CLASS_UID = '2.25.48723888994531484968029105249055974024';
export const IMPLEMENTATION_VERSION_NAME = 'CIRCUS_RS';

const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';
/** The largest defined length of an element (0xFFFFFFFF means undefined), even. */
const MAX_VALUE_BYTES = 0xfffffffe;

/** The VRs PS3.5 defines: any other two letters (a damaged file) are written as UN. */
const KNOWN_VRS = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
]);
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const TEXT_PADDED_WITH_SPACE = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UR', 'UT']);
const UNDEFINED = 0xffffffff;

function elementHeader(t: number, vr: string, length: number): Buffer {
  const long = LONG_VRS.has(vr);
  const b = Buffer.alloc(long ? 12 : 8);
  b.writeUInt16LE(t >>> 16, 0);
  b.writeUInt16LE(t & 0xffff, 2);
  b.write(vr, 4, 'latin1');
  if (long) b.writeUInt32LE(length, 8);
  else b.writeUInt16LE(length, 6);
  return b;
}

function itemHeader(t: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(0xfffe, 0);
  b.writeUInt16LE(t & 0xffff, 2);
  b.writeUInt32LE(length, 4);
  return b;
}

function padded(value: Uint8Array, vr: string): Buffer {
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (b.length % 2 === 0) return b;
  return Buffer.concat([b, Buffer.from([TEXT_PADDED_WITH_SPACE.has(vr) ? 0x20 : 0])]);
}

/** A text value, padded to an even length with a space. */
const text = (s: string): Buffer => padded(Buffer.from(s, 'latin1'), 'CS');

interface Replacements {
  pixels?: NativePixels;
  bitsAllocated: number;
  /** Planar Configuration still to write (colour pixels replacing the file's). */
  planarConfiguration?: number;
}

function encodeElements(ds: DataSet, out: Buffer[], top: boolean, r: Replacements): void {
  const elements = [...ds.elements.values()].sort((a, b) => a.tag - b.tag);
  for (const e of elements) {
    if ((e.tag & 0xffff) === 0 || e.tag >>> 16 === 0x0002) continue;
    if (top && r.planarConfiguration !== undefined && e.tag >= Tags.PlanarConfiguration) {
      // Planar Configuration, as the pixels are, in its place (replacing the file's).
      const v = Buffer.alloc(2);
      v.writeUInt16LE(r.planarConfiguration, 0);
      out.push(elementHeader(Tags.PlanarConfiguration, 'US', 2), v);
      r.planarConfiguration = undefined;
      if (e.tag === Tags.PlanarConfiguration) continue;
    }
    if (top && e.tag === Tags.PixelData) {
      encodePixelData(ds, e, out, r);
      continue;
    }
    if (top && r.pixels?.photometricInterpretation !== undefined && e.tag === Tags.PhotometricInterpretation) {
      const v = text(r.pixels.photometricInterpretation);
      out.push(elementHeader(e.tag, 'CS', v.length), v);
      continue;
    }
    let vr = elementVr(ds, e);
    if (vr === 'SQ') {
      encodeSequence(ds, e, out, r);
      continue;
    }
    let value = padded(littleEndianBytes(ds, e, vr), vr);
    if (!KNOWN_VRS.has(vr) || (SHORT_VRS.has(vr) && value.length > 0xfffe)) {
      // UN holds the Implicit VR Little Endian bytes of the value: those just made.
      vr = 'UN';
      value = padded(value, vr);
    }
    out.push(elementHeader(e.tag, vr, value.length), value);
  }
}

function encodeSequence(ds: DataSet, e: Element, out: Buffer[], r: Replacements): void {
  const items = elementItems(ds, e) ?? [];
  const parts: Buffer[] = [elementHeader(e.tag, 'SQ', UNDEFINED)];
  for (const item of items) {
    parts.push(itemHeader(Tags.Item, UNDEFINED));
    encodeElements(item, parts, false, r);
    parts.push(itemHeader(Tags.ItemDelimitation, 0));
  }
  parts.push(itemHeader(Tags.SequenceDelimitation, 0));
  out.push(...parts);
}

function encodePixelData(ds: DataSet, e: Element, out: Buffer[], r: Replacements): void {
  const vr = r.bitsAllocated > 8 ? 'OW' : 'OB';
  let value: Buffer;
  if (r.pixels && r.pixels.bytes.length > MAX_VALUE_BYTES)
    throw new DicomParseError(`${r.pixels.bytes.length} bytes of pixels are more than one element can hold`);
  if (r.pixels) value = padded(r.pixels.bytes, vr);
  else if (e.length < 0) throw new DicomParseError('compressed pixel data must be decoded to be written uncompressed (see decodedPixelData)');
  else value = padded(littleEndianBytes(ds, e, elementVr(ds, e)), vr);
  out.push(elementHeader(e.tag, vr, value.length), value);
}

/** The file meta group of a file written here (PS3.10 7.1), with its group length. */
function fileMeta(parsed: ParsedDicom): Buffer {
  const uid = (t: number, metaTag: number): string => parsed.dataset.string(t) ?? parsed.meta.string(metaTag) ?? '';
  const meta = encodeDataset(
    [
      { tag: tag(0x0002, 0x0001), vr: 'OB', value: new Uint8Array([0, 1]) },
      { tag: tag(0x0002, 0x0002), vr: 'UI', value: uid(Tags.SOPClassUID, tag(0x0002, 0x0002)) },
      { tag: tag(0x0002, 0x0003), vr: 'UI', value: uid(Tags.SOPInstanceUID, tag(0x0002, 0x0003)) },
      { tag: Tags.TransferSyntaxUID, vr: 'UI', value: TransferSyntax.ExplicitLittle },
      { tag: tag(0x0002, 0x0012), vr: 'UI', value: IMPLEMENTATION_CLASS_UID },
      { tag: tag(0x0002, 0x0013), vr: 'SH', value: IMPLEMENTATION_VERSION_NAME },
    ],
    true,
    true,
  );
  const length = encodeDataset([{ tag: tag(0x0002, 0x0000), vr: 'UL', value: meta.length }], true, true);
  return Buffer.concat([length, meta]);
}

/**
 * The instance as a Part 10 file in Explicit VR Little Endian (see the rules above). Compressed
 * pixel data must be given decoded, as `pixels` (decodedPixelData); native pixel data is copied
 * unless `pixels` replaces it. Throws DicomParseError for values that cannot be re-encoded.
 */
export function explicitLittlePart10(parsed: ParsedDicom, pixels?: NativePixels): Buffer {
  const ds = parsed.dataset;
  if ((ds.string(Tags.SOPClassUID) ?? parsed.meta.string(tag(0x0002, 0x0002))) === MEDIA_STORAGE_DIRECTORY) {
    // Its records point at each other by byte offset, which re-encoding moves.
    throw new DicomParseError('a DICOMDIR (Media Storage Directory) cannot be re-encoded: its record offsets would not hold');
  }
  const bitsAllocated = ds.number(Tags.BitsAllocated) ?? 8;
  const body: Buffer[] = [];
  const colour = (ds.number(Tags.SamplesPerPixel) ?? 1) > 1;
  const planarConfiguration = colour ? pixels?.planarConfiguration : undefined;
  encodeElements(ds, body, true, { pixels, bitsAllocated, planarConfiguration });
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, fileMeta(parsed), ...body]);
}

/** The compressed bytes of each frame (views of the file's buffer when a frame is one fragment). */
export function encapsulatedFrames(parsed: ParsedDicom, header: SliceHeader): Uint8Array[] {
  const px = parsed.pixelData;
  if (!px || px.length >= 0 || !px.fragments) throw new DicomParseError('pixel data is not encapsulated');
  return splitFrames(parsed.dataset.buf, px, header.numberOfFrames);
}

/** What a decoder needs to know of a frame, from the instance's header. */
export const frameInfo = (h: SliceHeader): FrameInfo => ({
  rows: h.rows,
  columns: h.columns,
  bitsAllocated: h.bitsAllocated,
  bitsStored: h.bitsStored,
  pixelRepresentation: h.pixelRepresentation,
  samplesPerPixel: h.samplesPerPixel,
  photometricInterpretation: h.photometricInterpretation,
  planarConfiguration: h.planarConfiguration,
});

/** Bits of one frame of native pixel data. */
const frameBits = (h: SliceHeader): number => h.rows * h.columns * h.samplesPerPixel * h.bitsAllocated;

/**
 * The bytes of one uncompressed frame (`index` from 0), little endian, from native pixel data of
 * any native syntax (big-endian words swapped; deflated input was inflated by the parser).
 * 1-bit data stays packed as stored, the frame's first pixel moved to bit 0 of its first byte
 * when frames do not start on a byte boundary. Throws DicomParseError for compressed input, an
 * index out of range, or pixel data shorter than the frame.
 */
export function nativeFrame(parsed: ParsedDicom, header: SliceHeader, index: number): Uint8Array {
  const px = parsed.pixelData;
  if (!px) throw new DicomParseError('the instance has no pixel data');
  if (px.length < 0 || !isNative(parsed.transferSyntaxUid)) throw new DicomParseError('pixel data is compressed');
  if (!Number.isInteger(index) || index < 0 || index >= header.numberOfFrames) {
    throw new DicomParseError(`frame ${index + 1} is not among the ${header.numberOfFrames} frames`);
  }
  const ds = parsed.dataset;
  const bits = frameBits(header);
  if (bits === 0) throw new DicomParseError('the image has no rows, columns or bits');
  const start = index * bits;
  const end = start + bits;
  if (end > px.length * 8) throw new DicomParseError(`pixel data of ${px.length} bytes holds no frame ${index + 1} (${bits / 8} bytes a frame)`);
  const vr = elementVr(ds, px);
  const swapUnit = ds.littleEndian || vr !== 'OW' ? 1 : header.bitsAllocated === 32 || header.bitsAllocated === 64 ? header.bitsAllocated / 8 : 2;
  const firstByte = Math.floor(start / 8);
  const lastByte = Math.ceil(end / 8);
  // A window of whole words around the frame, swapped when big endian.
  const from = firstByte - (firstByte % swapUnit);
  const to = Math.min(px.length, lastByte + ((swapUnit - (lastByte % swapUnit)) % swapUnit));
  let window = ds.buf.subarray(px.offset + from, px.offset + to);
  if (swapUnit > 1) {
    window = Buffer.from(window);
    if (swapUnit === 2) window.swap16();
    else if (swapUnit === 4) window.swap32();
    else window.swap64();
  }
  const bytes = window.subarray(firstByte - from, lastByte - from);
  const shift = start % 8;
  if (shift === 0) {
    const out = new Uint8Array(Math.ceil(bits / 8));
    out.set(bytes.subarray(0, out.length));
    if (bits % 8) out[out.length - 1] &= (1 << (bits % 8)) - 1;
    return out;
  }
  const out = new Uint8Array(Math.ceil(bits / 8));
  for (let k = 0; k < out.length; k++) out[k] = ((bytes[k] >> shift) | ((bytes[k + 1] ?? 0) << (8 - shift))) & 0xff;
  if (bits % 8) out[out.length - 1] &= (1 << (bits % 8)) - 1;
  return out;
}

/**
 * Syntaxes whose decoders turn colour into RGB: JPEG's baseline and extended processes
 * (libjpeg converts YCbCr to RGB) and JPEG 2000's multi-component transforms (YBR_RCT, YBR_ICT).
 */
const TO_RGB = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51']);
const J2K_TRANSFORMS = new Set(['YBR_RCT', 'YBR_ICT']);

/** The photometric interpretation of frames decoded from a syntax (the decoders' output). */
export function decodedPhotometric(transferSyntaxUid: string, header: SliceHeader): string {
  const pi = header.photometricInterpretation;
  if (header.samplesPerPixel !== 3) return pi;
  if (TO_RGB.has(transferSyntaxUid) && pi.startsWith('YBR_FULL')) return 'RGB';
  if (J2K_TRANSFORMS.has(pi)) return 'RGB';
  return pi;
}

/**
 * Signed samples of fewer stored bits than allocated, extended to their whole word in place. A
 * codestream may hold them unsigned (J2K_pixelrep_mismatch.dcm: 13-bit values whose sign only
 * the DICOM header gives); the bits above HighBit need not be ignored by every client, so they
 * are made to agree with the value.
 */
function signExtend(bytes: Uint8Array, bitsAllocated: number, bitsStored: number): void {
  if (bitsStored >= bitsAllocated || bitsStored <= 0) return;
  const shift = 32 - bitsStored;
  if (bitsAllocated === 8) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = ((bytes[i] << shift) >> shift) & 0xff;
  } else if (bitsAllocated === 16) {
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      const v = (((bytes[i] | (bytes[i + 1] << 8)) << shift) >> shift) & 0xffff;
      bytes[i] = v & 0xff;
      bytes[i + 1] = v >> 8;
    }
  }
}

/**
 * Every frame decoded (compressed input, with the codecs of codecs.ts: `initCodecs` must have
 * completed; signed samples sign-extended to their word) or copied (native input, little endian,
 * as stored), back to back, with the photometric
 * interpretation and planar configuration of the result: the decoders give colour pixels
 * interleaved (planar configuration 0), and YBR JPEG as RGB. Synchronous: it takes as long as
 * decoding every frame. Throws DicomParseError when a frame cannot be decoded.
 */
export function decodedPixelData(parsed: ParsedDicom, header: SliceHeader): NativePixels {
  const px = parsed.pixelData;
  if (!px) throw new DicomParseError('the instance has no pixel data');
  if (px.length >= 0) {
    const bytes = littleEndianBytes(parsed.dataset, px, elementVr(parsed.dataset, px));
    return { bytes, photometricInterpretation: header.photometricInterpretation, planarConfiguration: header.planarConfiguration };
  }
  const info = frameInfo(header);
  const size = decodedFrameBytes(info);
  const frames = encapsulatedFrames(parsed, header);
  if (size * frames.length > MAX_VALUE_BYTES) {
    throw new DicomParseError(`${frames.length} decoded frames of ${size} bytes are more than one element can hold`);
  }
  const bytes = new Uint8Array(size * frames.length);
  frames.forEach((f, i) => {
    decodeFrameInto(parsed.transferSyntaxUid, f, info, bytes.subarray(i * size, (i + 1) * size));
  });
  if (header.pixelRepresentation === 1) signExtend(bytes, header.bitsAllocated, header.bitsStored);
  return {
    bytes,
    photometricInterpretation: decodedPhotometric(parsed.transferSyntaxUid, header),
    planarConfiguration: header.samplesPerPixel > 1 ? 0 : undefined,
  };
}

/**
 * A whole instance (its bytes) rewritten in Explicit VR Little Endian: parsed to its end,
 * compressed pixel data decoded (the codecs are started here), everything else re-encoded as the
 * rules above say. Throws DicomParseError for an instance that cannot be read, decoded or
 * re-encoded.
 */
export async function toExplicitLittle(bytes: Buffer, maxInflatedBytes: number): Promise<Buffer> {
  const parsed = parseDicom(bytes, { maxInflatedBytes, elementsAfterPixelData: true });
  if (parsed.pixelData && parsed.pixelData.length < 0) {
    await initCodecs();
    return explicitLittlePart10(parsed, decodedPixelData(parsed, readSliceHeader(parsed)));
  }
  return explicitLittlePart10(parsed);
}

/**
 * Frame `index` (0-based) of an instance given as its bytes, uncompressed, little endian: native
 * frames copied, compressed ones decoded (the codecs are started here) as the frames route sends
 * them. Throws DicomParseError for an instance that cannot be read or a frame that cannot be decoded.
 */
export async function frameOfInstance(bytes: Buffer, index: number, maxInflatedBytes: number): Promise<Uint8Array> {
  const parsed = parseDicom(bytes, { maxInflatedBytes });
  const header = readSliceHeader(parsed);
  if (isNative(header.transferSyntaxUid)) return nativeFrame(parsed, header, index);
  const frames = encapsulatedFrames(parsed, header);
  if (!(index >= 0 && index < frames.length)) throw new DicomParseError(`frame ${index + 1} is not in the instance (${frames.length} frames)`);
  await initCodecs();
  return decodeFrame(header.transferSyntaxUid, frames[index], frameInfo(header));
}
