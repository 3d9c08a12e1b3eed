/**
 * Frames of a DICOM image: where each frame's encoded bytes are (encapsulated pixel data), and
 * each frame's geometry and value transformation (multi-frame images).
 *
 * Encapsulated pixel data: item 0 is the Basic Offset Table. One frame takes every fragment;
 * several frames follow the offset table when it has one entry per frame, else one fragment per
 * frame when the counts agree; anything else cannot be split and is refused.
 *
 * Multi-frame geometry, per frame:
 * - Enhanced images (Shared and Per-frame Functional Groups): Plane Position (0020,9113),
 *   Plane Orientation (0020,9116), Pixel Measures (0028,9110), Pixel Value Transformation
 *   (0028,9145), Frame VOI LUT (0028,9132); per-frame items win over shared ones, which win
 *   over the top-level attributes.
 * - Classic multi-frame images: frame i lies at ImagePositionPatient + offset_i along the normal,
 *   offset_i from Grid Frame Offset Vector (3004,000C) when present, else i times
 *   SpacingBetweenSlices (then SliceThickness, then 1); NM's Slice Vector (0054,0080), when the
 *   Frame Increment Pointer names it, gives each frame's slice number instead of i + 1.
 */
import { DicomParseError, type DataSet, type Element } from './parser.js';
import { tag, Tags } from './tags.js';

const T = {
  FrameIncrementPointer: tag(0x0028, 0x0009),
  SharedFunctionalGroups: tag(0x5200, 0x9229),
  PerFrameFunctionalGroups: tag(0x5200, 0x9230),
  PlanePosition: tag(0x0020, 0x9113),
  PlaneOrientation: tag(0x0020, 0x9116),
  PixelMeasures: tag(0x0028, 0x9110),
  PixelValueTransformation: tag(0x0028, 0x9145),
  FrameVoiLut: tag(0x0028, 0x9132),
  GridFrameOffsetVector: tag(0x3004, 0x000c),
  SliceVector: tag(0x0054, 0x0080),
};

/** Per-frame values that differ from the file's top-level attributes. */
export interface FrameGeometry {
  imagePositionPatient?: number[];
  imageOrientationPatient?: number[];
  pixelSpacing?: number[];
  sliceThickness?: number;
  spacingBetweenSlices?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number;
  windowWidth?: number;
  /** Orders frames like InstanceNumber orders files (frame number, or NM slice number). */
  frameNumber: number;
}

const finite = (v: number[] | undefined): number[] | undefined => (v && v.length > 0 && v.every(Number.isFinite) ? v : undefined);

function fromGroups(groups: DataSet[]): Partial<FrameGeometry> {
  const out: Partial<FrameGeometry> = {};
  for (const g of groups) {
    const item = (t: number): DataSet | undefined => g.sequence(t)?.[0];
    const pos = item(T.PlanePosition);
    if (pos) out.imagePositionPatient = finite(pos.numbers(Tags.ImagePositionPatient)) ?? out.imagePositionPatient;
    const ori = item(T.PlaneOrientation);
    if (ori) out.imageOrientationPatient = finite(ori.numbers(Tags.ImageOrientationPatient)) ?? out.imageOrientationPatient;
    const pm = item(T.PixelMeasures);
    if (pm) {
      out.pixelSpacing = finite(pm.numbers(Tags.PixelSpacing)) ?? out.pixelSpacing;
      out.sliceThickness = pm.number(Tags.SliceThickness) ?? out.sliceThickness;
      out.spacingBetweenSlices = pm.number(Tags.SpacingBetweenSlices) ?? out.spacingBetweenSlices;
    }
    const pvt = item(T.PixelValueTransformation);
    if (pvt) {
      out.rescaleSlope = pvt.number(Tags.RescaleSlope) ?? out.rescaleSlope;
      out.rescaleIntercept = pvt.number(Tags.RescaleIntercept) ?? out.rescaleIntercept;
    }
    const voi = item(T.FrameVoiLut);
    if (voi) {
      out.windowCenter = voi.number(Tags.WindowCenter) ?? out.windowCenter;
      out.windowWidth = voi.number(Tags.WindowWidth) ?? out.windowWidth;
    }
  }
  return out;
}

/** The geometry of each frame of a multi-frame image; undefined for a single frame. */
export function frameGeometries(ds: DataSet, frames: number): FrameGeometry[] | undefined {
  if (frames <= 1) return undefined;
  const shared = ds.sequence(T.SharedFunctionalGroups)?.[0];
  const perFrame = ds.sequence(T.PerFrameFunctionalGroups);
  if (shared || perFrame) {
    if (perFrame && perFrame.length !== frames) {
      throw new DicomParseError(`Per-frame Functional Groups has ${perFrame.length} items for ${frames} frames`);
    }
    return Array.from({ length: frames }, (_, i) => ({
      ...fromGroups([shared, perFrame?.[i]].filter((g): g is DataSet => g !== undefined)),
      frameNumber: i + 1,
    }));
  }
  // Classic multi-frame: frames stacked along the normal from the one position given.
  const ipp = finite(ds.numbers(Tags.ImagePositionPatient));
  const iop = finite(ds.numbers(Tags.ImageOrientationPatient));
  const offsets = finite(ds.numbers(T.GridFrameOffsetVector));
  const pointers = ds.elements.get(T.FrameIncrementPointer);
  const pointsTo = pointers ? tagList(ds, pointers) : [];
  const sliceVector = pointsTo.includes(T.SliceVector) ? finite(ds.numbers(T.SliceVector)) : undefined;
  const spacing = ds.number(Tags.SpacingBetweenSlices) ?? ds.number(Tags.SliceThickness) ?? 1;
  let normal: number[] | undefined;
  if (iop && iop.length >= 6) {
    const [a, b, c, d, e, f] = iop;
    const n = [b * f - c * e, c * d - a * f, a * e - b * d];
    const len = Math.hypot(n[0], n[1], n[2]);
    normal = len > 0 ? n.map((x) => x / len) : undefined;
  }
  return Array.from({ length: frames }, (_, i) => {
    const number = sliceVector && sliceVector.length === frames ? sliceVector[i] : i + 1;
    const offset = offsets && offsets.length === frames ? offsets[i] - offsets[0] : (number - 1) * spacing;
    return {
      imagePositionPatient: ipp && normal ? ipp.map((p, k) => p + offset * normal![k]) : undefined,
      frameNumber: number,
    };
  });
}

/** The tags an AT attribute lists (Frame Increment Pointer). */
function tagList(ds: DataSet, e: Element): number[] {
  const out: number[] = [];
  for (let o = e.offset; o + 4 <= e.offset + e.length && o + 4 <= ds.buf.length; o += 4) {
    const g = ds.littleEndian ? ds.buf.readUInt16LE(o) : ds.buf.readUInt16BE(o);
    const el = ds.littleEndian ? ds.buf.readUInt16LE(o + 2) : ds.buf.readUInt16BE(o + 2);
    out.push(tag(g, el));
  }
  return out;
}

/** The encoded bytes of each frame of encapsulated pixel data. */
export function encapsulatedFrames(buf: Buffer, pixelData: Element, frames: number): Uint8Array[] {
  const fragments = pixelData.fragments;
  if (!fragments || fragments.length < 2) throw new DicomParseError('encapsulated pixel data holds no fragment');
  const [table, ...data] = fragments;
  const bytes = (f: { offset: number; length: number }) => buf.subarray(f.offset, f.offset + f.length);
  const join = (list: { offset: number; length: number }[]): Uint8Array => (list.length === 1 ? bytes(list[0]) : Buffer.concat(list.map(bytes)));
  if (frames === 1) return [join(data)];
  if (table.length === frames * 4) {
    // Offsets count from the first byte of the first data fragment's item tag.
    const base = data[0].offset - 8;
    const starts = Array.from({ length: frames }, (_, i) => buf.readUInt32LE(table.offset + 4 * i));
    return starts.map((start, i) => {
      const end = i + 1 < frames ? starts[i + 1] : Infinity;
      const list = data.filter((f) => f.offset - 8 - base >= start && f.offset - 8 - base < end);
      if (list.length === 0) throw new DicomParseError(`frame ${i + 1} has no fragment at offset ${start}`);
      return join(list);
    });
  }
  if (data.length === frames) return data.map(bytes);
  throw new DicomParseError(`${data.length} fragments cannot be split into ${frames} frames without a Basic Offset Table`);
}
