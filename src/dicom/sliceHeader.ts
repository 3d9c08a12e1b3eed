/**
 * The attributes of one image file that volume assembly needs, read from a parsed dataset.
 * Plain data (no buffers), so it can be logged, compared and moved between threads.
 */
import { frameGeometries, type FrameGeometry } from './frames.js';
import { DicomParseError, type ParsedDicom } from './parser.js';
import { NATIVE_TRANSFER_SYNTAXES, Tags, TransferSyntax } from './tags.js';

export interface PixelDataLocation {
  /** Byte offset of the pixel data value in the file (or in the inflated dataset when deflated). */
  readonly offset: number;
  /** Length in bytes; -1 for encapsulated (compressed) pixel data. */
  readonly length: number;
  readonly encapsulated: boolean;
  /** OB or OW (8-bit data in OW is byte-swapped in pairs under Explicit VR Big Endian). */
  readonly vr: string;
}

export interface SliceHeader {
  readonly transferSyntaxUid: string;
  readonly sopInstanceUid?: string;
  readonly sopClassUid?: string;
  readonly seriesInstanceUid?: string;
  readonly studyInstanceUid?: string;
  readonly modality?: string;
  readonly seriesDescription?: string;
  readonly seriesNumber?: number;
  readonly seriesDate?: string;
  readonly seriesTime?: string;
  /**
   * Patient and study attributes, for lists of series and QIDO-RS (not used to build volumes).
   * Text as written (DICOM dates, times and person names are not reformatted).
   */
  readonly patientName?: string;
  readonly patientId?: string;
  readonly patientBirthDate?: string;
  readonly patientSex?: string;
  readonly studyDate?: string;
  readonly studyTime?: string;
  readonly studyDescription?: string;
  readonly studyId?: string;
  readonly accessionNumber?: string;
  readonly referringPhysicianName?: string;
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly photometricInterpretation: string;
  readonly numberOfFrames: number;
  readonly planarConfiguration: number;
  /** Per-frame geometry of a multi-frame image. */
  readonly frames?: FrameGeometry[];
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly highBit: number;
  readonly pixelRepresentation: number;
  readonly pixelSpacing?: number[];
  readonly imagePositionPatient?: number[];
  readonly imageOrientationPatient?: number[];
  readonly instanceNumber?: number;
  readonly sliceThickness?: number;
  readonly spacingBetweenSlices?: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  readonly windowCenter?: number;
  readonly windowWidth?: number;
  /** Raw stored values (before rescale) that mark padding, as [low, high] inclusive. */
  readonly padding?: readonly [number, number];
  readonly pixelData?: PixelDataLocation;
}

const finiteList = (v: number[] | undefined): number[] | undefined => (v !== undefined && v.length > 0 && v.every(Number.isFinite) ? v : undefined);

/** Interprets a 16-bit word as the padding value type the PixelRepresentation implies. */
function paddingValue(word: number | undefined, signed: boolean, bitsAllocated: number): number | undefined {
  if (word === undefined) return undefined;
  if (bitsAllocated === 8) {
    const b = word & 0xff;
    return signed && b >= 0x80 ? b - 0x100 : b;
  }
  return signed && word >= 0x8000 ? word - 0x10000 : word;
}

/** More frames than this in one file is not a plausible image (and would cost memory to describe). */
export const MAX_FRAMES_PER_FILE = 65536;

export function readSliceHeader(parsed: ParsedDicom): SliceHeader {
  const ds = parsed.dataset;
  const bitsAllocated = ds.number(Tags.BitsAllocated) ?? 0;
  const bitsStored = ds.number(Tags.BitsStored) ?? bitsAllocated;
  const pixelRepresentation = ds.number(Tags.PixelRepresentation) ?? 0;
  const signed = pixelRepresentation === 1;
  const slope = ds.number(Tags.RescaleSlope);
  const intercept = ds.number(Tags.RescaleIntercept);
  const padLow = paddingValue(ds.uint16(Tags.PixelPaddingValue), signed, bitsAllocated);
  const padHigh = paddingValue(ds.uint16(Tags.PixelPaddingRangeLimit), signed, bitsAllocated);
  let padding: [number, number] | undefined;
  if (padLow !== undefined) {
    padding = padHigh === undefined ? [padLow, padLow] : [Math.min(padLow, padHigh), Math.max(padLow, padHigh)];
  }
  const numberOfFrames = Math.max(1, Math.trunc(ds.number(Tags.NumberOfFrames) ?? 1));
  if (numberOfFrames > MAX_FRAMES_PER_FILE) {
    throw new DicomParseError(`NumberOfFrames ${numberOfFrames} is more than ${MAX_FRAMES_PER_FILE}`);
  }
  const px = parsed.pixelData;
  const encapsulated = px !== undefined && px.length < 0;
  return {
    transferSyntaxUid: parsed.transferSyntaxUid,
    sopInstanceUid: ds.string(Tags.SOPInstanceUID),
    sopClassUid: ds.string(Tags.SOPClassUID),
    seriesInstanceUid: ds.string(Tags.SeriesInstanceUID),
    studyInstanceUid: ds.string(Tags.StudyInstanceUID),
    modality: ds.string(Tags.Modality),
    seriesDescription: ds.string(Tags.SeriesDescription),
    seriesNumber: ds.number(Tags.SeriesNumber),
    seriesDate: ds.string(Tags.SeriesDate),
    seriesTime: ds.string(Tags.SeriesTime),
    patientName: ds.string(Tags.PatientName),
    patientId: ds.string(Tags.PatientID),
    patientBirthDate: ds.string(Tags.PatientBirthDate),
    patientSex: ds.string(Tags.PatientSex),
    studyDate: ds.string(Tags.StudyDate),
    studyTime: ds.string(Tags.StudyTime),
    studyDescription: ds.string(Tags.StudyDescription),
    studyId: ds.string(Tags.StudyID),
    accessionNumber: ds.string(Tags.AccessionNumber),
    referringPhysicianName: ds.string(Tags.ReferringPhysicianName),
    rows: ds.number(Tags.Rows) ?? 0,
    columns: ds.number(Tags.Columns) ?? 0,
    samplesPerPixel: ds.number(Tags.SamplesPerPixel) ?? 1,
    photometricInterpretation: (ds.string(Tags.PhotometricInterpretation) ?? 'MONOCHROME2').toUpperCase(),
    numberOfFrames,
    planarConfiguration: ds.number(Tags.PlanarConfiguration) ?? 0,
    frames: frameGeometries(ds, numberOfFrames),
    bitsAllocated,
    bitsStored,
    highBit: ds.number(Tags.HighBit) ?? bitsStored - 1,
    pixelRepresentation,
    pixelSpacing: finiteList(ds.numbers(Tags.PixelSpacing)),
    imagePositionPatient: finiteList(ds.numbers(Tags.ImagePositionPatient)),
    imageOrientationPatient: finiteList(ds.numbers(Tags.ImageOrientationPatient)),
    instanceNumber: ds.number(Tags.InstanceNumber),
    sliceThickness: ds.number(Tags.SliceThickness),
    spacingBetweenSlices: ds.number(Tags.SpacingBetweenSlices),
    rescaleSlope: slope !== undefined && slope !== 0 ? slope : 1,
    rescaleIntercept: intercept ?? 0,
    windowCenter: ds.number(Tags.WindowCenter),
    windowWidth: ds.number(Tags.WindowWidth),
    padding,
    pixelData: px ? { offset: px.offset, length: px.length, encapsulated, vr: px.vr } : undefined,
  };
}

/** Whether the pixel data of this transfer syntax is stored uncompressed. */
export const isNative = (transferSyntaxUid: string): boolean => NATIVE_TRANSFER_SYNTAXES.has(transferSyntaxUid);
export const isBigEndian = (transferSyntaxUid: string): boolean => transferSyntaxUid === TransferSyntax.ExplicitBig;
export const isDeflated = (transferSyntaxUid: string): boolean => transferSyntaxUid === TransferSyntax.DeflatedExplicitLittle;
