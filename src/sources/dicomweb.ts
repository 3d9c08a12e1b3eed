/**
 * Series from a DICOMweb PACS (PS3.18): QIDO-RS finds a series' study and instances, WADO-RS
 * retrieves them when the volume loader first reads them, streamed in and parsed part by part.
 *
 * Policy:
 * - Finding a series: QIDO-RS `/series?SeriesInstanceUID=` gives its study (no match: the
 *   source does not know the series), then `/studies/{study}/series/{series}/instances` its
 *   SOP Instance UIDs, in pages (`limit`, `offset`) until a page is short or brings nothing new.
 *   Instances are listed by InstanceNumber, then UID (slice order comes later, from geometry).
 * - Retrieving: an instance is found on its first read, once, however many reads wait for it
 *   (a shared promise). An instance in the instance cache is read from its file there, as a
 *   folder's file is (checked first, never held in memory). Others are retrieved asking for
 *   `multipart/related; type="application/dicom"; transfer-syntax=*`, so that compressed data
 *   arrives as stored and is decoded by our workers, and their bytes are held in memory for the
 *   life of the load.
 *   The header pass reads every instance before any pixel (it needs every header to order the
 *   slices, and DICOM JSON metadata cannot stand in for a header: it has neither the transfer
 *   syntax nor where the pixel data lies), so the whole series is needed at once: a series
 *   none of whose instances is in the instance cache is retrieved in one WADO-RS stream
 *   (`/studies/{study}/series/{series}`), each instance handed to its readers as its part
 *   arrives. On Orthanc that is 1.7 to 1.9 times as fast as one request an instance, 16 or 8 at
 *   once (`npm run bench:pacs`), and one request instead of hundreds. Otherwise (some
 *   instances are cached), and for any instance the stream left out, instances are retrieved
 *   one request each (`/studies/{study}/series/{series}/instances/{sop}`), only those not in
 *   the cache.
 * - Bounds: at most `concurrency` requests to the PACS at once, from every load together; a
 *   request that waits `timeoutMs` for its answer or for the next bytes of its body is aborted.
 * - Failures are never a hang and never a wrong image: a PACS that cannot be reached, closes
 *   the connection, answers an error status or answers something that is not what was asked
 *   for (not DICOM JSON, not multipart, not a Part 10 instance of the SOP Instance UID asked
 *   for) is a 502 (BAD_GATEWAY); one that does not answer in time a 504 (GATEWAY_TIMEOUT). The
 *   messages name the PACS and the request, never a header value. An instance whose retrieval
 *   failed is asked for again on its next read, so a load started after the failure retries.
 * - Credentials: `headers` ("Name: value" lines) are sent with every request and nowhere else
 *   (redirects are not followed: a PACS that redirects is a 502 naming where to).
 */
import { HEADER_LINE } from '../config/config.js';
import { badGateway, CircusError, gatewayTimeout } from '../core/errors.js';
import { isValidUid } from '../core/uid.js';
import { type InstanceCache, type InstanceCacheStats, type SeriesManifest, sopInstanceUidOf } from './instanceCache.js';
import { boundaryOf, MultipartError, parseContentType, readMultipart } from './multipart.js';
import { FileInstance } from './fileInstance.js';
import type { Instance, WorkerInput } from '../dicom/instance.js';
import type { SeriesInstances, SeriesSource } from './source.js';
import { LIST_REUSE_MS, type SeriesSummary, studyDateText } from './summary.js';
import { Limiter, reuseFor } from '../util/async.js';

export interface DicomwebOptions {
  /** Base URL of the DICOMweb service (QIDO-RS and WADO-RS), such as http://pacs:8042/dicom-web. */
  url: string;
  /** "Name: value" lines sent with every request (credentials). */
  headers?: readonly string[];
  /** Longest wait for an answer, or for the next bytes of one, in milliseconds. */
  timeoutMs: number;
  /** Requests to the PACS at once, all loads together. */
  concurrency: number;
  /** Where retrieved instances are kept on disk; none by default. */
  cache?: InstanceCache | null;
  /** Largest instance accepted, in bytes (a larger one is a 502). */
  maxInstanceBytes?: number;
  /** Largest inflated size of a deflated instance, for checking retrieved and cached instances. */
  maxInflatedBytes?: number;
  /** Instances asked for in one QIDO-RS page. */
  pageSize?: number;
  /** Most instances one series may list (more stop the listing; the caller refuses the series). */
  maxInstances?: number;
  log?: (message: string) => void;
}

/** Counters since start. */
export interface DicomwebStats {
  /** Requests sent (QIDO-RS and WADO-RS), and those that failed. */
  requests: number;
  failures: number;
  /** Instances retrieved from the PACS, their bytes, and instances read from the instance cache. */
  retrieved: number;
  retrievedBytes: number;
  fromCache: number;
}

/** Most series `listSeries` gives (a PACS may hold millions: the list is for browsing, not an inventory). */
export const MAX_LISTED = 10_000;

const ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const ACCEPT_JSON = 'application/dicom+json, application/json';

const TAG = {
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SOPInstanceUID: '00080018',
  InstanceNumber: '00200013',
  PatientName: '00100010',
  PatientID: '00100020',
  StudyDate: '00080020',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  Modality: '00080060',
  NumberOfSeriesRelatedInstances: '00201209',
  Rows: '00280010',
  Columns: '00280011',
} as const;

type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

/** The first value of an attribute of a DICOM JSON object as a string (a PN's Alphabetic form). */
function jsonString(obj: DicomJson, tag: string): string | null {
  const v = obj[tag]?.Value?.[0];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v !== null && typeof v === 'object' && typeof (v as { Alphabetic?: unknown }).Alphabetic === 'string') {
    return (v as { Alphabetic: string }).Alphabetic;
  }
  return null;
}

function jsonNumber(obj: DicomJson, tag: string): number | null {
  const v = obj[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

/** Where an instance's bytes are: a checked file of the instance cache, or in memory (retrieved). */
export type Located = { kind: 'file'; file: FileInstance; size: number } | { kind: 'bytes'; data: Buffer };

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

/**
 * One instance of a PACS, found on its first read (once, however many reads wait for it): a
 * file of the instance cache, read where it lies like a folder's file, or retrieved and then
 * held in memory. A cached file that disappears under a read (evicted for other instances) is
 * retrieved instead; a retrieval that failed is tried again on the next read.
 */
export class DicomwebInstance implements Instance {
  private located: Promise<Located> | null = null;

  constructor(
    private readonly source: DicomwebSource,
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

  private locate(skipCache = false): Promise<Located> {
    if (!this.located) {
      const p = this.source.locate(this, skipCache);
      this.located = p;
      p.catch(() => {
        if (this.located === p) this.located = null;
      });
    }
    return this.located;
  }

  /** `use` on where the bytes are; again on retrieved bytes when the cached file has gone. */
  private async use<T>(use: (at: Located) => Promise<T>): Promise<T> {
    const at = await this.locate();
    try {
      return await use(at);
    } catch (err) {
      if (at.kind !== 'file' || !isMissing(err)) throw err;
      if (this.located && (await this.located) === at) this.located = null;
      return use(await this.locate(true));
    }
  }

  read(target: Buffer, position: number, targetOffset = 0, length = target.length - targetOffset): Promise<number> {
    return this.use(async (at) => {
      if (at.kind === 'file') return at.file.read(target, position, targetOffset, length);
      if (position >= at.data.length) return 0;
      return at.data.copy(target, targetOffset, position, Math.min(at.data.length, position + length));
    });
  }

  size(): Promise<number> {
    return this.use(async (at) => (at.kind === 'file' ? at.size : at.data.length));
  }

  bytes(): Promise<Buffer> {
    return this.use(async (at) => (at.kind === 'file' ? at.file.bytes() : at.data));
  }

  async forWorker(): Promise<WorkerInput> {
    // Bytes, never a cache file's path: a file evicted before the worker opened it would fail
    // the decoding (a 422) where a read here finds the instance again.
    const data = await this.bytes();
    // A view into a larger buffer would send the whole buffer: send exactly the instance.
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    return { kind: 'bytes', bytes: whole ? data : new Uint8Array(data) };
  }
}

/**
 * How the instances of one series are retrieved for one load: decided at the first instance
 * that is not in the instance cache, in one stream for the whole series when none of them is
 * cached, else one request an instance (see the module comment).
 */
export class SeriesRetrieval {
  instances: DicomwebInstance[] = [];
  private mode: 'stream' | 'instance' | null = null;
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

  /** The bytes of `instance` (not in the instance cache). */
  get(instance: DicomwebInstance, cache: InstanceCache | null): Promise<Buffer> {
    if (this.mode === null) {
      const cold = this.instances.length > 1 && !this.instances.some((i) => cache?.has(i.sopInstanceUid));
      this.mode = cold ? 'stream' : 'instance';
      if (cold) this.stream();
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
  /** The listing, reused for LIST_REUSE_MS. */
  private readonly listing = reuseFor(LIST_REUSE_MS, () => this.listAll());
  /** The base URL without a trailing slash. */
  readonly url: string;
  private readonly headers: [string, string][];
  private readonly limiter: Limiter;
  private readonly counts: DicomwebStats = { requests: 0, failures: 0, retrieved: 0, retrievedBytes: 0, fromCache: 0 };
  private readonly log: (message: string) => void;

  constructor(private readonly options: DicomwebOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`DICOMweb URL ${options.url} is not http:// or https://`);
    if (url.username || url.password) throw new RangeError('the DICOMweb URL must not hold credentials: give them as a header (Authorization)');
    if (url.search || url.hash) throw new RangeError('the DICOMweb URL must not have a query or a fragment');
    this.url = url.href.replace(/\/+$/, '');
    this.headers = (options.headers ?? []).map((line) => {
      const m = HEADER_LINE.exec(line);
      if (!m) throw new RangeError('a DICOMweb header must be "Name: value" on one line');
      return [m[1], m[2].trim()];
    });
    this.limiter = new Limiter(Math.max(1, options.concurrency));
    this.log = options.log ?? (() => {});
  }

  /** Where messages say the PACS is. */
  private get where(): string {
    return `DICOMweb PACS ${this.url}`;
  }

  stats(): DicomwebStats {
    return { ...this.counts };
  }

  /**
   * One GET to the PACS, with its answer handed to `consume` (whose reading of the body keeps
   * the request alive); at most `concurrency` at once. Rejects with 502 or 504 (see the module).
   */
  private request<T>(
    path: string,
    accept: string,
    consume: (res: Response, body: AsyncIterable<Uint8Array>) => Promise<T>,
    bounded = true,
  ): Promise<T> {
    const send = async (): Promise<T> => {
      this.counts.requests++;
      const what = `GET ${path.split('?')[0]}`;
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, this.options.timeoutMs);
      let res: Response | null = null;
      let ended = false;
      try {
        const headers = new Headers(this.headers);
        headers.set('Accept', accept);
        res = await fetch(this.url + path, { headers, signal: controller.signal, redirect: 'manual' });
        timer.refresh();
        if (res.status >= 300 && res.status < 400) {
          const to = res.headers.get('location');
          throw badGateway(
            `${this.where} answered ${what} with a redirect (${res.status}${to ? ` to ${to.slice(0, 200)}` : ''}): give dicomwebUrl the address it redirects to`,
          );
        }
        if (res.status === 401 || res.status === 403) {
          throw badGateway(
            `${this.where} refused ${what} (${res.status}): ${this.headers.length > 0 ? 'check the headers given with dicomwebHeaders' : 'it wants credentials (dicomwebHeaders)'}`,
          );
        }
        const source = res.body;
        const body: AsyncIterable<Uint8Array> = {
          async *[Symbol.asyncIterator]() {
            if (source) {
              for await (const chunk of source) {
                timer.refresh();
                yield chunk;
              }
            }
            ended = true;
          },
        };
        return await consume(res, body);
      } catch (err) {
        this.counts.failures++;
        if (timedOut) {
          throw gatewayTimeout(`${this.where} did not answer ${what} within ${this.options.timeoutMs} ms (dicomwebTimeoutMs)`);
        }
        if (err instanceof CircusError) throw err;
        if (err instanceof MultipartError && err.cutShort) {
          throw badGateway(`${this.where} broke off its answer to ${what}: ${err.message}`);
        }
        if (err instanceof MultipartError || err instanceof SyntaxError) {
          throw badGateway(`${this.where} answered ${what} with a malformed body: ${err.message}`);
        }
        const cause = (err as { cause?: { message?: string; code?: string } }).cause;
        const why = cause?.message ?? (err as Error).message;
        throw badGateway(`${this.where} cannot be reached for ${what}: ${why}`);
      } finally {
        clearTimeout(timer);
        // A body not read to its end would keep the connection busy: give it up.
        if (res && !ended) controller.abort();
      }
    };
    return bounded ? this.limiter.run(send) : send();
  }

  /** A QIDO-RS search: the JSON array it answers (empty for 204 and for an empty body). */
  private query(path: string, bounded = true): Promise<DicomJson[]> {
    return this.request(
      path,
      ACCEPT_JSON,
      async (res, body) => {
        const what = `GET ${path.split('?')[0]}`;
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of body) {
          size += chunk.byteLength;
          if (size > 256 * 1024 * 1024) throw badGateway(`${this.where} answered ${what} with more than 256 MiB of JSON`);
          chunks.push(Buffer.from(chunk));
        }
        if (res.status === 204) return [];
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.status !== 200) {
          throw badGateway(`${this.where} answered ${what} with ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
        }
        if (text.trim() === '') return [];
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw badGateway(`${this.where} answered ${what} with something that is not DICOM JSON: ${JSON.stringify(text.slice(0, 100))}`);
        }
        if (!Array.isArray(json) || !json.every((o) => o !== null && typeof o === 'object' && !Array.isArray(o))) {
          throw badGateway(`${this.where} answered ${what} with JSON that is not an array of DICOM JSON objects`);
        }
        return json as DicomJson[];
      },
      bounded,
    );
  }

  /** A UID the PACS answered, checked before it goes into a URL or a file name. */
  private uid(obj: DicomJson, tag: string, what: string): string {
    const v = jsonString(obj, tag);
    if (v === null || !isValidUid(v)) {
      throw badGateway(`${this.where} answered ${what} with an invalid UID (${tag}): ${JSON.stringify(v)?.slice(0, 80)}`);
    }
    return v;
  }

  /** The study of a series, or null when the PACS does not have it. */
  async studyOf(seriesUid: string): Promise<string | null> {
    const found = await this.query(`/series?SeriesInstanceUID=${seriesUid}&includefield=${TAG.StudyInstanceUID}`);
    // A PACS may ignore the filter for an attribute it does not match on: keep exact matches only.
    const matches = found.filter((o) => jsonString(o, TAG.SeriesInstanceUID) === seriesUid || jsonString(o, TAG.SeriesInstanceUID) === null);
    if (matches.length === 0) return null;
    if (matches.length > 1) this.log(`series ${seriesUid} is in ${matches.length} studies of ${this.url}; the first is used`);
    return this.uid(matches[0], TAG.StudyInstanceUID, 'GET /series');
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    if (!isValidUid(seriesUid)) return null;
    const cache = this.options.cache;
    let manifest: SeriesManifest | null;
    try {
      manifest = await this.listInstances(seriesUid);
    } catch (err) {
      // A PACS that is down: a series whose instances are all in the instance cache is served from there.
      const kept = err instanceof CircusError && cache ? await cache.getSeries(seriesUid) : null;
      if (!kept?.instances.every((i) => cache!.has(i.sopInstanceUid))) throw err;
      this.log(`series ${seriesUid} is served from the instance cache: ${(err as Error).message}`);
      manifest = kept;
    }
    if (manifest === null) return null;
    if (cache) void cache.putSeries(seriesUid, manifest);
    const series = new SeriesRetrieval(this, manifest.studyUid, seriesUid);
    series.instances = manifest.instances.map((i) => new DicomwebInstance(this, series, i.sopInstanceUid, i.instanceNumber));
    return { instances: series.instances };
  }

  /** The study and instances of a series by QIDO-RS (InstanceNumber order, then UID), or null when the PACS does not have it. */
  private async listInstances(seriesUid: string): Promise<SeriesManifest | null> {
    const studyUid = await this.studyOf(seriesUid);
    if (studyUid === null) return null;
    const pageSize = this.options.pageSize ?? 1000;
    const maxInstances = this.options.maxInstances ?? Infinity;
    const seen = new Map<string, number | null>();
    const path = `/studies/${studyUid}/series/${seriesUid}/instances`;
    for (let offset = 0; ; offset += pageSize) {
      const page = await this.query(`${path}?includefield=${TAG.InstanceNumber}&limit=${pageSize}&offset=${offset}`);
      let added = 0;
      for (const o of page) {
        const sop = this.uid(o, TAG.SOPInstanceUID, `GET ${path}`);
        if (seen.has(sop)) continue;
        seen.set(sop, jsonNumber(o, TAG.InstanceNumber));
        added++;
      }
      if (page.length < pageSize || added === 0 || seen.size > maxInstances) break;
    }
    if (seen.size === 0) return null;
    const instances = [...seen]
      .sort(([a, na], [b, nb]) => (na ?? Infinity) - (nb ?? Infinity) || (a < b ? -1 : a > b ? 1 : 0))
      .map(([sopInstanceUid, instanceNumber]) => ({ sopInstanceUid, instanceNumber }));
    return { studyUid, instances };
  }

  /**
   * Where an instance's bytes are: its file in the instance cache (unless `skipCache`), else
   * retrieved as its series decides (and then cached).
   */
  async locate(instance: DicomwebInstance, skipCache = false): Promise<Located> {
    const cache = this.options.cache ?? null;
    const cached = skipCache ? null : await cache?.locate(instance.sopInstanceUid);
    if (cached) {
      this.counts.fromCache++;
      cache!.touchSeries(instance.seriesUid);
      return { kind: 'file', file: new FileInstance(cached.path, instance.name), size: cached.size };
    }
    return { kind: 'bytes', data: await instance.series.get(instance, cache) };
  }

  /** One instance, in a request of its own. */
  async retrieveInstance(instance: DicomwebInstance): Promise<Buffer> {
    const { studyUid, seriesUid, sopInstanceUid: sop } = instance;
    const path = `/studies/${studyUid}/series/${seriesUid}/instances/${sop}`;
    let first: Buffer | null = null;
    await this.retrieveParts(path, (uid, bytes) => {
      if (first !== null) return; // one instance was asked for: others are read past
      if (uid !== sop)
        throw badGateway(`${this.where} answered GET ${path} with an instance that is not the one asked for: its SOPInstanceUID is ${uid}`);
      first = bytes;
    });
    if (first === null) throw badGateway(`${this.where} answered GET ${path} with no instance`);
    this.delivered(seriesUid, sop, first);
    return first;
  }

  /**
   * Every instance of a series in one request, each handed to `onInstance` as it arrives
   * (which says whether it was one of those wanted); resolves when the stream has ended.
   */
  async retrieveSeries(series: SeriesRetrieval, onInstance: (sop: string, bytes: Buffer) => boolean): Promise<void> {
    await this.retrieveParts(`/studies/${series.studyUid}/series/${series.seriesUid}`, (sop, bytes) => {
      if (onInstance(sop, bytes)) this.delivered(series.seriesUid, sop, bytes);
    });
  }

  /** Counts an instance retrieved, and keeps it in the instance cache. */
  private delivered(seriesUid: string, sop: string, bytes: Buffer): void {
    this.counts.retrieved++;
    this.counts.retrievedBytes += bytes.length;
    const cache = this.options.cache;
    if (cache) {
      void cache.putInstance(sop, bytes);
      cache.touchSeries(seriesUid);
    }
  }

  /**
   * A WADO-RS retrieval: each part of the multipart answer, checked to be a whole Part 10
   * instance, handed to `onPart` with its SOP Instance UID as soon as it has arrived.
   */
  private retrieveParts(path: string, onPart: (sop: string, bytes: Buffer) => void): Promise<void> {
    const what = `GET ${path}`;
    const max = this.options.maxInstanceBytes ?? 2 ** 31 - 1;
    const maxInflatedBytes = this.options.maxInflatedBytes ?? 1 << 30;
    return this.request(path, ACCEPT_DICOM, async (res, body) => {
      if (res.status !== 200) {
        let text = '';
        for await (const chunk of body) {
          if (text.length < 200) text += Buffer.from(chunk).toString('utf8');
        }
        const detail = text.trim() ? `: ${text.trim().slice(0, 200)}` : '';
        throw badGateway(`${this.where} answered ${what} with ${res.status}${detail}`);
      }
      let n = 0;
      await readMultipart(
        body,
        boundaryOf(res.headers.get('content-type')),
        (part) => {
          n++;
          const type = part.headers.get('content-type');
          if (type !== undefined && parseContentType(type).type !== 'application/dicom') {
            throw badGateway(`${this.where} answered ${what} with a part of type ${type.slice(0, 100)}, not application/dicom`);
          }
          let sop: string;
          try {
            sop = sopInstanceUidOf(part.body, maxInflatedBytes);
          } catch (err) {
            throw badGateway(`${this.where} answered ${what} with part ${n} that is not a DICOM instance: ${(err as Error).message}`);
          }
          onPart(sop, part.body);
        },
        max,
      );
    });
  }

  /**
   * One page of the PACS's series (QIDO-RS `/series`, `limit` from `offset`), summed up as
   * `GET /series` shows them: patient, study and series attributes and the number of instances
   * (images: frames are not counted at this level; rows and columns are 0 unless the PACS
   * answers them for a series). Series whose UIDs are not valid are left out; `answered` counts
   * every object of the page.
   */
  async list(options: { limit?: number; offset?: number } = {}): Promise<SeriesSummary[] & { answered?: number }> {
    const fields = [
      TAG.PatientName,
      TAG.PatientID,
      TAG.StudyDate,
      TAG.StudyDescription,
      TAG.SeriesDescription,
      TAG.Modality,
      TAG.NumberOfSeriesRelatedInstances,
      TAG.StudyInstanceUID,
      TAG.Rows,
      TAG.Columns,
    ];
    const q = fields.map((f) => `includefield=${f}`);
    if (options.limit !== undefined) q.push(`limit=${options.limit}`);
    if (options.offset !== undefined && options.offset > 0) q.push(`offset=${options.offset}`);
    const found = await this.query(`/series?${q.join('&')}`);
    const out: SeriesSummary[] & { answered?: number } = [];
    out.answered = found.length;
    for (const o of found) {
      const seriesUid = jsonString(o, TAG.SeriesInstanceUID);
      const studyUid = jsonString(o, TAG.StudyInstanceUID);
      if (seriesUid === null || !isValidUid(seriesUid)) continue;
      const text = (tag: string): string | null => jsonString(o, tag) || null;
      out.push({
        seriesUid,
        studyUid: studyUid !== null && isValidUid(studyUid) ? studyUid : null,
        patientName: text(TAG.PatientName),
        patientId: text(TAG.PatientID),
        studyDate: studyDateText(jsonString(o, TAG.StudyDate) ?? undefined),
        studyDescription: text(TAG.StudyDescription),
        seriesDescription: text(TAG.SeriesDescription),
        modality: text(TAG.Modality),
        images: jsonNumber(o, TAG.NumberOfSeriesRelatedInstances) ?? 0,
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
  listSeries(): Promise<SeriesSummary[]> {
    return this.listing();
  }

  private async listAll(): Promise<SeriesSummary[]> {
    const pageSize = this.options.pageSize ?? 1000;
    const out = new Map<string, SeriesSummary>();
    for (let offset = 0; offset < MAX_LISTED; offset += pageSize) {
      const page = await this.list({ limit: pageSize, offset });
      let added = 0;
      for (const s of page) {
        if (out.has(s.seriesUid)) continue;
        out.set(s.seriesUid, s);
        added++;
      }
      if ((page.answered ?? page.length) < pageSize || added === 0) break;
    }
    if (out.size >= MAX_LISTED) this.log(`the series list of ${this.url} is cut at ${MAX_LISTED} series`);
    return [...out.values()];
  }

  /** The instance cache's figures, or null without one. */
  cacheStats(): InstanceCacheStats | null {
    return this.options.cache?.stats() ?? null;
  }

  /**
   * Why the PACS cannot serve now (it cannot be reached, refuses the credentials, answers
   * garbage), or null: one QIDO-RS search for a single series, outside the concurrency bound
   * so that loads under way do not make it late.
   */
  async readiness(): Promise<string | null> {
    try {
      await this.query('/series?limit=1', false);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Resolves once the instance cache's writes under way are done. */
  async idle(): Promise<void> {
    await this.options.cache?.idle();
  }
}
