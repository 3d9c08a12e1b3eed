/**
 * A DICOMweb client (PS3.18) for one PACS: the transport (every request a GET, at most
 * `concurrency` at once), the mapping of its failures to CircusErrors, and the QIDO-RS and
 * WADO-RS calls the DICOMweb source makes, with the multipart answers of WADO-RS read part by
 * part (multipart.ts). What is asked and when is the source's business (dicomweb.ts).
 *
 * Policy:
 * - Bounds: at most `concurrency` requests to the PACS at once, from every load together (the
 *   readiness probe aside); a request that waits `timeoutMs` for its answer or for the next
 *   bytes of its body is aborted. A body not read to its end is given up (the request aborted).
 * - Failures are never a hang and never a wrong image: a PACS that cannot be reached, closes
 *   the connection, answers an error status or answers something that is not what was asked
 *   for (not DICOM JSON, not multipart, not a Part 10 instance of the SOP Instance UID asked
 *   for) is a 502 (BAD_GATEWAY); one that does not answer in time a 504 (GATEWAY_TIMEOUT). The
 *   messages name the PACS and the request, never a header value.
 * - Credentials: `headers` ("Name: value" lines) are sent with every request and nowhere else
 *   (redirects are not followed: a PACS that redirects is a 502 naming where to).
 * - Answers are checked before use: UIDs are valid (they go into URLs and file names), and
 *   each retrieved part is a whole Part 10 instance, handed on with its SOP Instance UID.
 */
import { HEADER_LINE } from '../config/config.js';
import { badGateway, CircusError, gatewayTimeout } from '../core/errors.js';
import { isValidUid } from '../core/uid.js';
import { Limiter } from '../util/async.js';
import { sopInstanceUidOf } from './instanceCheck.js';
import { boundaryOf, MultipartError, parseContentType, readMultipart } from './multipart.js';

export interface DicomwebOptions {
  /** Base URL of the DICOMweb service (QIDO-RS and WADO-RS), such as http://pacs:8042/dicom-web. */
  url: string;
  /** "Name: value" lines sent with every request (credentials). */
  headers?: readonly string[];
  /** Longest wait for an answer, or for the next bytes of one, in milliseconds. */
  timeoutMs: number;
  /** Requests to the PACS at once, all loads together. */
  concurrency: number;
  /** Largest instance accepted, in bytes (a larger one is a 502). */
  maxInstanceBytes?: number;
  /** Largest inflated size of a deflated instance, for checking retrieved instances. */
  maxInflatedBytes?: number;
  /** Instances (and series) asked for in one QIDO-RS page. */
  pageSize?: number;
  /** Most instances one series may list (more stop the listing; the caller refuses the series). */
  maxInstances?: number;
  log?: (message: string) => void;
}

/** A series as QIDO-RS lists it: its study and its instances (InstanceNumber order, then UID). */
export interface SeriesListing {
  studyUid: string;
  instances: { sopInstanceUid: string; instanceNumber: number | null }[];
}

const ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const ACCEPT_JSON = 'application/dicom+json, application/json';

export const TAG = {
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
  PatientBirthDate: '00100030',
  PatientSex: '00100040',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  ReferringPhysicianName: '00080090',
  StudyID: '00200010',
  SeriesNumber: '00200011',
  SeriesDate: '00080021',
  SeriesTime: '00080031',
} as const;

export type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

/** The first value of an attribute of a DICOM JSON object as a string (a PN's Alphabetic form). */
export function jsonString(obj: DicomJson, tag: string): string | null {
  const v = obj[tag]?.Value?.[0];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (v !== null && typeof v === 'object' && typeof (v as { Alphabetic?: unknown }).Alphabetic === 'string') {
    return (v as { Alphabetic: string }).Alphabetic;
  }
  return null;
}

export function jsonNumber(obj: DicomJson, tag: string): number | null {
  const v = obj[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

export class DicomwebClient {
  /** The base URL without a trailing slash. */
  readonly url: string;
  private readonly headers: [string, string][];
  private readonly limiter: Limiter;
  private readonly counts = { requests: 0, failures: 0 };
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
  get where(): string {
    return `DICOMweb PACS ${this.url}`;
  }

  /** Requests sent since start (QIDO-RS and WADO-RS), and those that failed. */
  stats(): { requests: number; failures: number } {
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

  /**
   * A QIDO-RS search (`path` below the base URL, with its query): the JSON array it answers
   * (empty for 204 and for an empty body). `bounded`: within the concurrency bound.
   */
  query(path: string, bounded = true): Promise<DicomJson[]> {
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

  /** The study and instances of a series by QIDO-RS (InstanceNumber order, then UID), or null when the PACS does not have it. */
  async instancesOf(seriesUid: string): Promise<SeriesListing | null> {
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

  /** One instance, in a request of its own: its bytes, checked to be the instance asked for. */
  async retrieveInstance(studyUid: string, seriesUid: string, sopInstanceUid: string): Promise<Buffer> {
    const path = `/studies/${studyUid}/series/${seriesUid}/instances/${sopInstanceUid}`;
    let first: Buffer | null = null;
    await this.retrieveParts(path, (uid, bytes) => {
      if (first !== null) return; // one instance was asked for: others are read past
      if (uid !== sopInstanceUid)
        throw badGateway(`${this.where} answered GET ${path} with an instance that is not the one asked for: its SOPInstanceUID is ${uid}`);
      first = bytes;
    });
    if (first === null) throw badGateway(`${this.where} answered GET ${path} with no instance`);
    return first;
  }

  /**
   * Every instance of a series in one request, each handed to `onInstance` with its SOP
   * Instance UID as soon as its part has arrived; resolves when the stream has ended.
   */
  retrieveSeries(studyUid: string, seriesUid: string, onInstance: (sop: string, bytes: Buffer) => void): Promise<void> {
    return this.retrieveParts(`/studies/${studyUid}/series/${seriesUid}`, onInstance);
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
}
