/**
 * What the DICOMweb face knows of studies, series and instances without reading any file: the
 * attributes QIDO-RS matches and returns, as the header index (or a source's listing) keeps them.
 * Text values are as written in the files (DICOM dates `YYYYMMDD`, times `HHMMSS.FFFFFF`, person
 * names `Family^Given`), null when absent or empty.
 */

/** One series, with the attributes of its study and patient (taken from one of its instances). */
export interface SeriesRecord {
  seriesInstanceUid: string;
  studyInstanceUid: string | null;
  patientName: string | null;
  patientId: string | null;
  patientBirthDate: string | null;
  patientSex: string | null;
  studyDate: string | null;
  studyTime: string | null;
  accessionNumber: string | null;
  referringPhysicianName: string | null;
  studyId: string | null;
  studyDescription: string | null;
  modality: string | null;
  seriesNumber: number | null;
  seriesDescription: string | null;
  seriesDate: string | null;
  seriesTime: string | null;
  /** Instances (files) in the series. */
  instances: number;
  /** Images: every frame of every instance. */
  frames: number;
  rows: number;
  columns: number;
}

/** One instance of a series, with what the instance level of QIDO-RS returns. */
export interface InstanceRecord {
  sopInstanceUid: string;
  sopClassUid: string | null;
  seriesInstanceUid: string;
  studyInstanceUid: string | null;
  instanceNumber: number | null;
  rows: number;
  columns: number;
  bitsAllocated: number;
  numberOfFrames: number;
  transferSyntaxUid: string;
}
