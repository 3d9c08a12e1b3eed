/**
 * What the DICOMweb face knows of studies, series and instances without reading any file: the
 * attributes QIDO-RS matches and returns, as the header index (or a source's listing) keeps them.
 * Text values are as written in the files (DICOM dates `YYYYMMDD`, times `HHMMSS.FFFFFF`, person
 * names `Family^Given`), null when absent or empty.
 */
import type { SliceHeader } from '../dicom/sliceHeader.js';
import { type SeriesSummary, studyDateText } from '../sources/summary.js';

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

const text = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);
const whole = (v: number | undefined): number | null => (v !== undefined && Number.isFinite(v) ? Math.trunc(v) : null);

/**
 * The record of a series from one of its instances' headers (where the patient, study and series
 * attributes come from), with its counts of instances and frames, which the caller knows.
 */
export function seriesRecordOf(seriesUid: string, header: SliceHeader, instances: number, frames: number): SeriesRecord {
  return {
    seriesInstanceUid: seriesUid,
    studyInstanceUid: text(header.studyInstanceUid),
    patientName: text(header.patientName),
    patientId: text(header.patientId),
    patientBirthDate: text(header.patientBirthDate),
    patientSex: text(header.patientSex),
    studyDate: text(header.studyDate),
    studyTime: text(header.studyTime),
    accessionNumber: text(header.accessionNumber),
    referringPhysicianName: text(header.referringPhysicianName),
    studyId: text(header.studyId),
    studyDescription: text(header.studyDescription),
    modality: text(header.modality),
    seriesNumber: whole(header.seriesNumber),
    seriesDescription: text(header.seriesDescription),
    seriesDate: text(header.seriesDate),
    seriesTime: text(header.seriesTime),
    instances,
    frames,
    rows: header.rows,
    columns: header.columns,
  };
}

/**
 * The record of one instance from its header, or null when the header names no SOP Instance
 * UID or no series (such an instance cannot be addressed by DICOMweb).
 */
export function instanceRecordOf(header: SliceHeader): InstanceRecord | null {
  const sop = text(header.sopInstanceUid);
  const series = text(header.seriesInstanceUid);
  if (sop === null || series === null) return null;
  return {
    sopInstanceUid: sop,
    sopClassUid: text(header.sopClassUid),
    seriesInstanceUid: series,
    studyInstanceUid: text(header.studyInstanceUid),
    instanceNumber: whole(header.instanceNumber),
    rows: header.rows,
    columns: header.columns,
    bitsAllocated: header.bitsAllocated,
    numberOfFrames: header.numberOfFrames,
    transferSyntaxUid: header.transferSyntaxUid,
  };
}

/** What `GET /series` says of a series: its record, with the study date as `YYYY-MM-DD` and its frames as images. */
export function summaryOfRecord(r: SeriesRecord): SeriesSummary {
  return {
    seriesUid: r.seriesInstanceUid,
    studyUid: r.studyInstanceUid,
    patientName: r.patientName,
    patientId: r.patientId,
    studyDate: studyDateText(r.studyDate ?? undefined),
    studyDescription: r.studyDescription,
    seriesDescription: r.seriesDescription,
    modality: r.modality,
    images: r.frames,
    rows: r.rows,
    columns: r.columns,
  };
}

/**
 * A record from a summary, for a source that lists only summaries: the attributes a summary
 * lacks are null, its images are taken for instances and frames both, and a `YYYY-MM-DD` study
 * date is written back as a DICOM date.
 */
export function recordOfSummary(s: SeriesSummary): SeriesRecord {
  const da = s.studyDate !== null && /^\d{4}-\d{2}-\d{2}$/.test(s.studyDate) ? s.studyDate.replace(/-/g, '') : s.studyDate;
  return {
    seriesInstanceUid: s.seriesUid,
    studyInstanceUid: s.studyUid,
    patientName: s.patientName,
    patientId: s.patientId,
    patientBirthDate: null,
    patientSex: null,
    studyDate: da,
    studyTime: null,
    accessionNumber: null,
    referringPhysicianName: null,
    studyId: null,
    studyDescription: s.studyDescription,
    modality: s.modality,
    seriesNumber: null,
    seriesDescription: s.seriesDescription,
    seriesDate: null,
    seriesTime: null,
    instances: s.images,
    frames: s.images,
    rows: s.rows,
    columns: s.columns,
  };
}

/**
 * Which instances an instance query wants, in terms a store can filter by (the header index
 * does it in SQL): every list given must hold the instance's value, every number given must
 * equal it; what is not given is not filtered on.
 */
export interface InstanceFilter {
  seriesUids?: readonly string[];
  sopInstanceUids?: readonly string[];
  sopClassUids?: readonly string[];
  instanceNumber?: number;
  rows?: number;
  columns?: number;
  bitsAllocated?: number;
  numberOfFrames?: number;
}
