/**
 * Where series come from. A source resolves a series UID to its instances; an instance is a
 * provider of bytes (`Instance`, the port the reader owns in src/dicom/instance.ts), wherever
 * they live (a file, memory, a PACS). Sources depend on the reader, never the other way.
 */

import type { Instance } from '../dicom/instance.js';
import type { SeriesRecord } from '../dicomweb/records.js';
import type { SeriesSummary } from './summary.js';

/** An instance as a source hands it out: the reader's Instance, and what the source knows of it. */
export interface SourceInstance extends Instance {
  /**
   * Its SOP Instance UID, when the source knows it before reading any byte (a PACS lists its
   * instances by UID): what a cache in front of the source keeps it by (`CachedInstances`).
   */
  readonly sopInstanceUid?: string;
}

/** The instances of one series as a source found them. */
export interface SeriesInstances {
  /** In the source's own order (natural file order for folders); slice order comes later, from geometry. */
  instances: SourceInstance[];
  /**
   * Told, at most once and before any of them is read, that of `instances` only these will be
   * read (a cache in front holds the others), so that a source that can retrieve a whole
   * series at once (DICOMweb) retrieves only these instead. Without it every instance may be.
   */
  willRead?(instances: readonly SourceInstance[]): void;
}

export interface SeriesSource {
  /** The instances of a series, or null when the source does not know it. `seriesUid` is a valid UID. */
  find(seriesUid: string): Promise<SeriesInstances | null>;
  /**
   * A summary of every series the source can serve (GET /series), in any order; sources that
   * cannot enumerate their series leave it out (a DICOMweb PACS lists through QIDO-RS).
   */
  listSeries?(): Promise<SeriesSummary[]>;
  /**
   * The records of the same series as `listSeries` (what QIDO-RS matches and returns), in any
   * order. A source that lists series but has no records is taken at its summaries
   * (`recordOfSummary`: the attributes a summary lacks are null).
   */
  seriesRecords?(): Promise<SeriesRecord[]>;
  /**
   * Why the source cannot serve now (a remote archive that cannot be reached, refuses the
   * credentials, answers garbage), a sentence for the operator, or null when it can. Sources
   * without it (a folder, memory) are taken as able to serve; /health/ready bounds its time.
   */
  readiness?(): Promise<string | null>;
}
