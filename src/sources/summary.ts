/**
 * What `GET /series` says of a series: the patient, study and series attributes of one of its
 * instances (the first one a source comes to, in its own order), the number of images and the
 * size of that instance's images. Sources build summaries with `summaryOf`; the route orders,
 * searches and pages them with `orderSummaries` and `searchSummaries`.
 */
import type { SliceHeader } from '../dicom/sliceHeader.js';
import type { SeriesSummary } from '../wire/seriesList.js';

export type { SeriesSummary } from '../wire/seriesList.js';

/**
 * How long one listing of a source answers the next ones, in ms: a search box asks at every
 * key, and its calls in quick succession walk the folders (or ask the PACS) once.
 */
export const LIST_REUSE_MS = 2000;

const text = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

/** A DICOM date (`YYYYMMDD`, or the old `YYYY.MM.DD`) as `YYYY-MM-DD`; anything else as it is. */
export function studyDateText(da: string | undefined): string | null {
  if (!da) return null;
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : da;
}

/** The summary of a series from one instance's header and its number of images. */
export function summaryOf(seriesUid: string, header: SliceHeader, images: number): SeriesSummary {
  return {
    seriesUid,
    studyUid: text(header.studyInstanceUid),
    patientName: text(header.patientName),
    patientId: text(header.patientId),
    studyDate: studyDateText(header.studyDate),
    studyDescription: text(header.studyDescription),
    seriesDescription: text(header.seriesDescription),
    modality: text(header.modality),
    images,
    rows: header.rows,
    columns: header.columns,
  };
}

const compareText = (a: string | null, b: string | null): number => (a ?? '').localeCompare(b ?? '');

/** Newest study first (series without a date last), then patient, study, series description and UID. */
export function orderSummaries(list: SeriesSummary[]): SeriesSummary[] {
  return [...list].sort((a, b) => {
    if (a.studyDate !== b.studyDate) {
      if (a.studyDate === null) return 1;
      if (b.studyDate === null) return -1;
      return b.studyDate.localeCompare(a.studyDate);
    }
    return (
      compareText(a.patientName, b.patientName) ||
      compareText(a.studyUid, b.studyUid) ||
      compareText(a.seriesDescription, b.seriesDescription) ||
      a.seriesUid.localeCompare(b.seriesUid)
    );
  });
}

/** The words a summary is found by: its patient, study and series attributes and UIDs, lower case. */
function haystack(s: SeriesSummary): string {
  return [
    s.patientName?.replace(/\^/g, ' '),
    s.patientId,
    s.studyDate,
    s.studyDate?.replace(/-/g, ''),
    s.studyDescription,
    s.seriesDescription,
    s.modality,
    s.seriesUid,
    s.studyUid,
  ]
    .filter(Boolean)
    .join('\n')
    .toLowerCase();
}

/**
 * The summaries that contain every word of `query` (split at spaces; case-insensitive) in one of
 * their attributes; all of them for an empty query.
 */
export function searchSummaries(list: SeriesSummary[], query: string): SeriesSummary[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return list;
  return list.filter((s) => {
    const h = haystack(s);
    return words.every((w) => h.includes(w));
  });
}
