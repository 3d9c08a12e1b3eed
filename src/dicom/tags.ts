/**
 * The DICOM attributes this server reads, as numeric tags `(group << 16 | element) >>> 0`,
 * with their value representations for datasets encoded in Implicit VR (where the file does
 * not say). Attributes not listed here are skipped by length.
 */
export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0;

export const Tags = {
  TransferSyntaxUID: tag(0x0002, 0x0010),
  SpecificCharacterSet: tag(0x0008, 0x0005),
  SOPClassUID: tag(0x0008, 0x0016),
  SOPInstanceUID: tag(0x0008, 0x0018),
  Modality: tag(0x0008, 0x0060),
  SeriesDescription: tag(0x0008, 0x103e),
  StudyDate: tag(0x0008, 0x0020),
  StudyDescription: tag(0x0008, 0x1030),
  PatientName: tag(0x0010, 0x0010),
  PatientID: tag(0x0010, 0x0020),
  SliceThickness: tag(0x0018, 0x0050),
  SpacingBetweenSlices: tag(0x0018, 0x0088),
  StudyInstanceUID: tag(0x0020, 0x000d),
  SeriesInstanceUID: tag(0x0020, 0x000e),
  InstanceNumber: tag(0x0020, 0x0013),
  ImagePositionPatient: tag(0x0020, 0x0032),
  ImageOrientationPatient: tag(0x0020, 0x0037),
  SamplesPerPixel: tag(0x0028, 0x0002),
  PhotometricInterpretation: tag(0x0028, 0x0004),
  PlanarConfiguration: tag(0x0028, 0x0006),
  NumberOfFrames: tag(0x0028, 0x0008),
  Rows: tag(0x0028, 0x0010),
  Columns: tag(0x0028, 0x0011),
  PixelSpacing: tag(0x0028, 0x0030),
  BitsAllocated: tag(0x0028, 0x0100),
  BitsStored: tag(0x0028, 0x0101),
  HighBit: tag(0x0028, 0x0102),
  PixelRepresentation: tag(0x0028, 0x0103),
  PixelPaddingValue: tag(0x0028, 0x0120),
  PixelPaddingRangeLimit: tag(0x0028, 0x0121),
  WindowCenter: tag(0x0028, 0x1050),
  WindowWidth: tag(0x0028, 0x1051),
  RescaleIntercept: tag(0x0028, 0x1052),
  RescaleSlope: tag(0x0028, 0x1053),
  PixelData: tag(0x7fe0, 0x0010),
  Item: tag(0xfffe, 0xe000),
  ItemDelimitation: tag(0xfffe, 0xe00d),
  SequenceDelimitation: tag(0xfffe, 0xe0dd),
} as const;

/** Value representations of the attributes above, used when the encoding is Implicit VR. */
export const IMPLICIT_VR: ReadonlyMap<number, string> = new Map<number, string>([
  [Tags.SpecificCharacterSet, 'CS'],
  [Tags.SOPClassUID, 'UI'],
  [Tags.SOPInstanceUID, 'UI'],
  [Tags.Modality, 'CS'],
  [Tags.SeriesDescription, 'LO'],
  [Tags.StudyDate, 'DA'],
  [Tags.StudyDescription, 'LO'],
  [Tags.PatientName, 'PN'],
  [Tags.PatientID, 'LO'],
  [Tags.SliceThickness, 'DS'],
  [Tags.SpacingBetweenSlices, 'DS'],
  [Tags.StudyInstanceUID, 'UI'],
  [Tags.SeriesInstanceUID, 'UI'],
  [Tags.InstanceNumber, 'IS'],
  [Tags.ImagePositionPatient, 'DS'],
  [Tags.ImageOrientationPatient, 'DS'],
  [Tags.SamplesPerPixel, 'US'],
  [Tags.PhotometricInterpretation, 'CS'],
  [Tags.PlanarConfiguration, 'US'],
  [tag(0x0028, 0x0009), 'AT'],
  [tag(0x5200, 0x9229), 'SQ'],
  [tag(0x5200, 0x9230), 'SQ'],
  [tag(0x0020, 0x9113), 'SQ'],
  [tag(0x0020, 0x9116), 'SQ'],
  [tag(0x0028, 0x9110), 'SQ'],
  [tag(0x0028, 0x9145), 'SQ'],
  [tag(0x0028, 0x9132), 'SQ'],
  [tag(0x3004, 0x000c), 'DS'],
  [tag(0x0054, 0x0080), 'US'],
  [Tags.NumberOfFrames, 'IS'],
  [Tags.Rows, 'US'],
  [Tags.Columns, 'US'],
  [Tags.PixelSpacing, 'DS'],
  [Tags.BitsAllocated, 'US'],
  [Tags.BitsStored, 'US'],
  [Tags.HighBit, 'US'],
  [Tags.PixelRepresentation, 'US'],
  [Tags.PixelPaddingValue, 'US'], // US or SS: interpreted with PixelRepresentation
  [Tags.PixelPaddingRangeLimit, 'US'],
  [Tags.WindowCenter, 'DS'],
  [Tags.WindowWidth, 'DS'],
  [Tags.RescaleIntercept, 'DS'],
  [Tags.RescaleSlope, 'DS'],
  [Tags.PixelData, 'OW'],
]);

export const TransferSyntax = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
} as const;

/** Transfer syntaxes whose pixel data is stored uncompressed (native). */
export const NATIVE_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set(Object.values(TransferSyntax));

const TRANSFER_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (12-bit)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** "JPEG 2000 (1.2.840.10008.1.2.4.91)" or the bare UID when the name is not known. */
export const describeTransferSyntax = (uid: string): string => (TRANSFER_SYNTAX_NAMES[uid] ? `${TRANSFER_SYNTAX_NAMES[uid]} (${uid})` : uid);
