/**
 * Series from a DICOMweb PACS (PS3.18): QIDO-RS finds a series' study and instances, WADO-RS
 * retrieves them when the volume loader first reads them, streamed in and parsed part by part.
 * The requests, their bounds and what their failures answer are the client's
 * (dicomwebClient.ts); the instance cache, when there is one, is a wrapper in front of this
 * source (`CachedInstances`, cachedInstances.ts), which this source knows nothing of.
 *
 * Policy:
 * - Finding a series: QIDO-RS `/series?SeriesInstanceUID=` gives its study (no match: the
 *   source does not know the series), then `/studies/{study}/series/{series}/instances` its
 *   SOP Instance UIDs, in pages (`limit`, `offset`) until a page is short or brings nothing new.
 *   Instances are listed by InstanceNumber, then UID (slice order comes later, from geometry),
 *   each with its SOP Instance UID (`sopInstanceUid`, what a cache keeps it by).
 * - Retrieving: an instance is retrieved on its first read, once, however many reads wait for
 *   it (a shared promise), asking for `multipart/related; type="application/dicom";
 *   transfer-syntax=*`, so that compressed data arrives as stored and is decoded by our
 *   workers; its bytes are held in memory for the life of the load.
 *   The header pass reads every instance before any pixel (it needs every header to order the
 *   slices, and DICOM JSON metadata cannot stand in for a header: it has neither the transfer
 *   syntax nor where the pixel data lies), so the whole series is needed at once: a series
 *   every instance of which will be read (no `willRead` said otherwise: a cache in front holds
 *   none of them) is retrieved in one WADO-RS stream (`/studies/{study}/series/{series}`),
 *   each instance handed to its readers as its part arrives. On Orthanc that is 1.7 to 1.9
 *   times as fast as one request an instance, 16 or 8 at once (`npm run bench:pacs`), and one
 *   request instead of hundreds. Otherwise (a cache holds some), and for any instance the
 *   stream left out, instances are retrieved one request each
 *   (`/studies/{study}/series/{series}/instances/{sop}`), only those that will be read.
 * - Failures (502, 504: see the client) fail the reads that wait for them. An instance whose
 *   retrieval failed is asked for again on its next read, so a load started after the failure
 *   retries.
 */
import { isValidUid } from '../core/uid.js';
import type { Instance, WorkerInput } from '../dicom/instance.js';
import { reuseFor } from '../util/async.js';
import { DicomwebClient, type DicomwebOptions, jsonNumber, jsonString, TAG } from './dicomwebClient.js';
import type { SeriesInstances, SeriesSource, SourceInstance } from './source.js';
import { LIST_REUSE_MS, type SeriesSummary } from './summary.js';
import { type SeriesRecord, summaryOfRecord } from '../dicomweb/records.js';

export type { DicomwebOptions } from './dicomwebClient.js';

/** Counters since start. */
export interface DicomwebStats {
  /** Requests sent (QIDO-RS and WADO-RS), and those that failed. */
  requests: number;
  failures: number;
  /** Instances retrieved from the PACS, and their bytes. */
  retrieved: number;
  retrievedBytes: number;
}

/** Most series `listSeries` gives (a PACS may hold millions: the list is for browsing, not an inventory). */
export const MAX_LISTED = 10_000;

/**
 * One instance of a PACS, retrieved on its first read (once, however many reads wait for it)
 * as its series decides, then held in memory; a retrieval that failed is tried again on the
 * next read.
 */
export class DicomwebInstance implements Instance {
  private retrieved: Promise<Buffer> | null = null;

  constructor(
    /** The retrieval of the series this instance was found with (one a lookup). */
    readonly series: SeriesRetrieval,
    readonly sopInstanceUid: string,
    readonly instanceNumber: number | null,
  ) {}

  get studyUid(): string {
    return this.series.studyUid;
  }

  get seriesUid(): string {
    return this.series.seriesUid;
  }

  get name(): string {
    return this.sopInstanceUid;
  }

  bytes(): Promise<Buffer> {
    if (!this.retrieved) {
      const p = this.series.get(this);
      this.retrieved = p;
      p.catch(() => {
        if (this.retrieved === p) this.retrieved = null;
      });
    }
    return this.retrieved;
  }

  async read(target: Buffer, position: number, targetOffset = 0, length = target.length - targetOffset): Promise<number> {
    const data = await this.bytes();
    if (position >= data.length) return 0;
    return data.copy(target, targetOffset, position, Math.min(data.length, position + length));
  }

  async size(): Promise<number> {
    return (await this.bytes()).length;
  }

  async forWorker(): Promise<WorkerInput> {
    const data = await this.bytes();
    // A view into a larger buffer would send the whole buffer: send exactly the instance.
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    return { kind: 'bytes', bytes: whole ? data : new Uint8Array(data) };
  }
}

/**
 * How the instances of one series are retrieved for one load: decided at the first instance
 * read, in one stream for the whole series when every instance will be read, else one request
 * an instance (see the module comment).
 */
export class SeriesRetrieval {
  instances: DicomwebInstance[] = [];
  private mode: 'stream' | 'instance' | null = null;
  /** The instances that will be read, when a cache in front said so (`willRead`); null: every one. */
  private wanted: ReadonlySet<SourceInstance> | null = null;
  /** Per SOP Instance UID, while streaming: settled as the instance's part arrives, or when the stream ends. */
  private readonly parts = new Map<
    string,
    { promise: Promise<Buffer>; resolve: (b: Buffer) => void; reject: (e: unknown) => void; settled: boolean }
  >();

  constructor(
    private readonly source: DicomwebSource,
    readonly studyUid: string,
    readonly seriesUid: string,
  ) {}

  /** Only `instances` will be read (before any read; later, the retrieval is already decided). */
  willRead(instances: readonly SourceInstance[]): void {
    if (this.mode === null) this.wanted = new Set(instances);
  }

  /** The bytes of `instance`. */
  get(instance: DicomwebInstance): Promise<Buffer> {
    if (this.mode === null) {
      const every = this.wanted === null || this.instances.every((i) => this.wanted!.has(i));
      const whole = this.instances.length > 1 && every;
      this.mode = whole ? 'stream' : 'instance';
      if (whole) this.stream();
    }
    const part = this.parts.get(instance.sopInstanceUid);
    return this.mode === 'stream' && part ? part.promise : this.source.retrieveInstance(instance);
  }

  private stream(): void {
    for (const i of this.instances) {
      let resolve!: (b: Buffer) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<Buffer>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => {}); // seen by the instance's readers
      this.parts.set(i.sopInstanceUid, { promise, resolve, reject, settled: false });
    }
    this.source
      .retrieveSeries(this, (sop, bytes) => {
        const part = this.parts.get(sop);
        if (!part || part.settled) return false; // not listed by QIDO-RS (added since), or sent twice
        part.settled = true;
        part.resolve(bytes);
        return true;
      })
      .then(
        () => {
          // An instance the stream left out is asked for on its own.
          for (const i of this.instances) {
            const part = this.parts.get(i.sopInstanceUid)!;
            if (part.settled) continue;
            part.settled = true;
            this.source.retrieveInstance(i).then(part.resolve, part.reject);
          }
        },
        (err: unknown) => {
          // The instances not delivered fail (their load with them); asked for again, each is retrieved on its own.
          this.mode = 'instance';
          for (const part of this.parts.values()) {
            if (part.settled) continue;
            part.settled = true;
            part.reject(err);
          }
        },
      );
  }
}

export class DicomwebSource implements SeriesSource {
  /** The requests to the PACS. */
  readonly client: DicomwebClient;
  private readonly counts = { retrieved: 0, retrievedBytes: 0 };
  private readonly log: (message: string) => void;
  /** The listing, reused for LIST_REUSE_MS. */
  private readonly listing = reuseFor(LIST_REUSE_MS, () => this.listAll());

  constructor(private readonly options: DicomwebOptions) {
    this.client = new DicomwebClient(options);
    this.log = options.log ?? (() => {});
  }

  /** The base URL without a trailing slash. */
  get url(): string {
    return this.client.url;
  }

  stats(): DicomwebStats {
    return { ...this.client.stats(), ...this.counts };
  }

  /** The study of a series, or null when the PACS does not have it. */
  studyOf(seriesUid: string): Promise<string | null> {
    return this.client.studyOf(seriesUid);
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    if (!isValidUid(seriesUid)) return null;
    const listed = await this.client.instancesOf(seriesUid);
    if (listed === null) return null;
    const series = new SeriesRetrieval(this, listed.studyUid, seriesUid);
    series.instances = listed.instances.map((i) => new DicomwebInstance(series, i.sopInstanceUid, i.instanceNumber));
    return { instances: series.instances, willRead: (instances) => series.willRead(instances) };
  }

  /** One instance, in a request of its own. */
  async retrieveInstance(instance: DicomwebInstance): Promise<Buffer> {
    const bytes = await this.client.retrieveInstance(instance.studyUid, instance.seriesUid, instance.sopInstanceUid);
    this.delivered(bytes);
    return bytes;
  }

  /**
   * Every instance of a series in one request, each handed to `onInstance` as it arrives
   * (which says whether it was one of those wanted); resolves when the stream has ended.
   */
  async retrieveSeries(series: SeriesRetrieval, onInstance: (sop: string, bytes: Buffer) => boolean): Promise<void> {
    await this.client.retrieveSeries(series.studyUid, series.seriesUid, (sop, bytes) => {
      if (onInstance(sop, bytes)) this.delivered(bytes);
    });
  }

  /** Counts an instance retrieved. */
  private delivered(bytes: Buffer): void {
    this.counts.retrieved++;
    this.counts.retrievedBytes += bytes.length;
  }

  /**
   * One page of the PACS's series (QIDO-RS `/series`, `limit` from `offset`), summed up as
   * `GET /series` shows them: patient, study and series attributes and the number of instances
   * (images: frames are not counted at this level; rows and columns are 0 unless the PACS
   * answers them for a series). Series whose UIDs are not valid are left out; `answered` counts
   * every object of the page.
   */
  async list(options: { limit?: number; offset?: number } = {}): Promise<SeriesSummary[] & { answered?: number }> {
    const records = await this.listRecords(options);
    const out: SeriesSummary[] & { answered?: number } = records.map(summaryOfRecord);
    out.answered = records.answered;
    return out;
  }

  /**
   * The records of one page of the PACS's series (as `list`): every attribute QIDO-RS keeps is
   * asked for (includefield); the PACS's NumberOfSeriesRelatedInstances is taken for instances
   * and for frames both (QIDO-RS does not count frames). A study UID that is not valid is null.
   */
  async listRecords(options: { limit?: number; offset?: number } = {}): Promise<SeriesRecord[] & { answered?: number }> {
    const fields = [
      TAG.PatientName,
      TAG.PatientID,
      TAG.PatientBirthDate,
      TAG.PatientSex,
      TAG.StudyDate,
      TAG.StudyTime,
      TAG.AccessionNumber,
      TAG.ReferringPhysicianName,
      TAG.StudyID,
      TAG.StudyDescription,
      TAG.SeriesDescription,
      TAG.SeriesNumber,
      TAG.SeriesDate,
      TAG.SeriesTime,
      TAG.Modality,
      TAG.NumberOfSeriesRelatedInstances,
      TAG.StudyInstanceUID,
      TAG.Rows,
      TAG.Columns,
    ];
    const q = fields.map((f) => `includefield=${f}`);
    if (options.limit !== undefined) q.push(`limit=${options.limit}`);
    if (options.offset !== undefined && options.offset > 0) q.push(`offset=${options.offset}`);
    const found = await this.client.query(`/series?${q.join('&')}`);
    const out: SeriesRecord[] & { answered?: number } = [];
    out.answered = found.length;
    for (const o of found) {
      const seriesUid = jsonString(o, TAG.SeriesInstanceUID);
      const studyUid = jsonString(o, TAG.StudyInstanceUID);
      if (seriesUid === null || !isValidUid(seriesUid)) continue;
      const text = (tag: string): string | null => jsonString(o, tag) || null;
      const number = jsonNumber(o, TAG.SeriesNumber);
      const instances = jsonNumber(o, TAG.NumberOfSeriesRelatedInstances) ?? 0;
      out.push({
        seriesInstanceUid: seriesUid,
        studyInstanceUid: studyUid !== null && isValidUid(studyUid) ? studyUid : null,
        patientName: text(TAG.PatientName),
        patientId: text(TAG.PatientID),
        patientBirthDate: text(TAG.PatientBirthDate),
        patientSex: text(TAG.PatientSex),
        studyDate: text(TAG.StudyDate),
        studyTime: text(TAG.StudyTime),
        accessionNumber: text(TAG.AccessionNumber),
        referringPhysicianName: text(TAG.ReferringPhysicianName),
        studyId: text(TAG.StudyID),
        studyDescription: text(TAG.StudyDescription),
        modality: text(TAG.Modality),
        seriesNumber: number === null ? null : Math.trunc(number),
        seriesDescription: text(TAG.SeriesDescription),
        seriesDate: text(TAG.SeriesDate),
        seriesTime: text(TAG.SeriesTime),
        instances,
        frames: instances,
        rows: jsonNumber(o, TAG.Rows) ?? 0,
        columns: jsonNumber(o, TAG.Columns) ?? 0,
      });
    }
    return out;
  }

  /**
   * Every series of the PACS (`list` page by page, at most `MAX_LISTED`), for `GET /series`.
   * A listing is reused for two seconds, so a search typed key by key asks the PACS once.
   */
  async listSeries(): Promise<SeriesSummary[]> {
    return (await this.listing()).map(summaryOfRecord);
  }

  /** The records of the series `listSeries` lists (the same listing). */
  seriesRecords(): Promise<SeriesRecord[]> {
    return this.listing();
  }

  private async listAll(): Promise<SeriesRecord[]> {
    const pageSize = this.options.pageSize ?? 1000;
    const out = new Map<string, SeriesRecord>();
    for (let offset = 0; offset < MAX_LISTED; offset += pageSize) {
      const page = await this.listRecords({ limit: pageSize, offset });
      let added = 0;
      for (const s of page) {
        if (out.has(s.seriesInstanceUid)) continue;
        out.set(s.seriesInstanceUid, s);
        added++;
      }
      if ((page.answered ?? page.length) < pageSize || added === 0) break;
    }
    if (out.size >= MAX_LISTED) this.log(`the series list of ${this.url} is cut at ${MAX_LISTED} series`);
    return [...out.values()];
  }

  /** Why the PACS cannot serve now, or null (the client's probe, outside the concurrency bound). */
  readiness(): Promise<string | null> {
    return this.client.readiness();
  }
}
