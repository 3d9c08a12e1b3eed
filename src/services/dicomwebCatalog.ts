/**
 * What the DICOMweb face serves, by study, series and instance UID, over the server's source:
 * the series records QIDO-RS searches (from the header index when the source has one, else from
 * its listing), and the instances of a series with their headers (what WADO-RS, metadata, frames
 * and rendered need to find an instance by its SOP Instance UID).
 *
 * A series' instances are read once (known headers from the index, else the first kilobytes of
 * each file) and reused for `reuseMs`, so a viewer asking for metadata, then frames of every
 * instance, reads the headers once; a few series are kept (the most recently used).
 */
import type { ReadLimits } from '../dicom/fileReader.js';
import { readHeader } from '../dicom/fileReader.js';
import type { SliceHeader } from '../dicom/sliceHeader.js';
import { type InstanceRecord, instanceRecordOf, recordOfSummary, type SeriesRecord, seriesRecordOf } from '../dicomweb/records.js';
import type { SeriesSource, SourceInstance } from '../sources/source.js';
import { isSourceFailure } from '../core/errors.js';
import { mapLimit } from '../util/async.js';

export interface CatalogInstance {
  readonly instance: SourceInstance;
  readonly header: SliceHeader;
  readonly record: InstanceRecord;
}

/** One series as the DICOMweb face sees it: its instances in InstanceNumber order, by SOP Instance UID. */
export interface CatalogSeries {
  readonly seriesUid: string;
  /** The StudyInstanceUID its instances name (the first that names one); null when none does. */
  readonly studyUid: string | null;
  readonly instances: readonly CatalogInstance[];
  readonly bySop: ReadonlyMap<string, CatalogInstance>;
  readonly record: SeriesRecord;
}

export interface CatalogOptions {
  readLimits?: ReadLimits;
  /** Headers read at once. */
  concurrency?: number;
  /** How long a series' instances are reused before they are looked up again, in ms. */
  reuseMs?: number;
  /** Series whose instances are kept. */
  keepSeries?: number;
}

const DEFAULTS = { concurrency: 16, reuseMs: 5000, keepSeries: 16 };

const text = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

const byInstanceNumber = (a: CatalogInstance, b: CatalogInstance): number =>
  (a.record.instanceNumber ?? Number.MAX_SAFE_INTEGER) - (b.record.instanceNumber ?? Number.MAX_SAFE_INTEGER) ||
  (a.record.sopInstanceUid < b.record.sopInstanceUid ? -1 : a.record.sopInstanceUid > b.record.sopInstanceUid ? 1 : 0);

export class DicomwebCatalog {
  private readonly options: Required<Omit<CatalogOptions, 'readLimits'>> & { readLimits?: ReadLimits };
  /** Series looked up lately: the lookup (settled or under way) and when it started. */
  private readonly recent = new Map<string, { at: number; series: Promise<CatalogSeries | null> }>();

  constructor(
    private readonly source: SeriesSource,
    options: CatalogOptions = {},
    private readonly now: () => number = () => Date.now(),
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Whether the source can enumerate its series (QIDO-RS over studies and series needs it). */
  get canList(): boolean {
    return this.source.seriesRecords !== undefined || this.source.listSeries !== undefined;
  }

  /** Every series the source can enumerate, as records; empty when it cannot. */
  async seriesRecords(): Promise<SeriesRecord[]> {
    if (this.source.seriesRecords) return this.source.seriesRecords();
    if (this.source.listSeries) return (await this.source.listSeries()).map(recordOfSummary);
    return [];
  }

  /** The series of one study, as records. */
  async studySeries(studyUid: string): Promise<SeriesRecord[]> {
    return (await this.seriesRecords()).filter((s) => s.studyInstanceUid === studyUid);
  }

  /** A series with its instances, or null when the source does not know it (or holds no readable instance of it). */
  series(seriesUid: string): Promise<CatalogSeries | null> {
    const at = this.now();
    const hit = this.recent.get(seriesUid);
    if (hit && at - hit.at < this.options.reuseMs) {
      // Most recently used last.
      this.recent.delete(seriesUid);
      this.recent.set(seriesUid, hit);
      return hit.series;
    }
    const series = this.lookUp(seriesUid);
    this.recent.delete(seriesUid);
    this.recent.set(seriesUid, { at, series });
    series.catch(() => this.recent.delete(seriesUid));
    while (this.recent.size > this.options.keepSeries) this.recent.delete(this.recent.keys().next().value as string);
    return series;
  }

  /** Forgets what was read of a series (its files changed). */
  forget(seriesUid: string): void {
    this.recent.delete(seriesUid);
  }

  private async lookUp(seriesUid: string): Promise<CatalogSeries | null> {
    const found = await this.source.find(seriesUid);
    if (!found) return null;
    const read = await mapLimit(found.instances, this.options.concurrency, async (instance): Promise<CatalogInstance | null> => {
      let header: SliceHeader;
      try {
        header = (await instance.knownHeader?.()) ?? (await readHeader(instance, this.options.readLimits));
      } catch (err) {
        // A PACS that fails fails the lookup; a file that is not DICOM is no instance.
        if (isSourceFailure(err)) throw err;
        return null;
      }
      const record = instanceRecordOf(header);
      // An instance of another series in the series' folder is not one of its instances.
      if (!record || record.seriesInstanceUid !== seriesUid) return null;
      return { instance, header, record };
    });
    const instances: CatalogInstance[] = [];
    const bySop = new Map<string, CatalogInstance>();
    for (const entry of read) {
      // An instance held twice (the same file copied) is served once.
      if (!entry || bySop.has(entry.record.sopInstanceUid)) continue;
      bySop.set(entry.record.sopInstanceUid, entry);
      instances.push(entry);
    }
    if (instances.length === 0) return null;
    instances.sort(byInstanceNumber);
    const frames = instances.reduce((n, e) => n + e.header.numberOfFrames, 0);
    const first = instances.find((e) => e.header.studyInstanceUid) ?? instances[0];
    return {
      seriesUid,
      studyUid: text(first.header.studyInstanceUid),
      instances,
      bySop,
      record: seriesRecordOf(seriesUid, first.header, instances.length, frames),
    };
  }
}
