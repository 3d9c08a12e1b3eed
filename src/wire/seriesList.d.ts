/**
 * The JSON of `GET /series`, as the server writes it and the viewer reads it. Types only (a
 * declaration file, so that both builds include it: the server's and the viewer's, whose
 * tsconfig compiles nothing outside src/viewer).
 */

/** What `GET /series` says of one series. */
export interface SeriesSummary {
  seriesUid: string;
  studyUid: string | null;
  /** DICOM PN as written (`Family^Given`). */
  patientName: string | null;
  patientId: string | null;
  /** `YYYY-MM-DD` when StudyDate is a DICOM date (`YYYYMMDD`), else as written. */
  studyDate: string | null;
  studyDescription: string | null;
  seriesDescription: string | null;
  modality: string | null;
  /** Images in the series: every frame of every instance. */
  images: number;
  rows: number;
  columns: number;
}

/** One page of the list: `series` from `offset`, at most `limit`, of `total` found. */
export interface SeriesPage {
  total: number;
  offset: number;
  limit: number;
  series: SeriesSummary[];
}
