/**
 * Series held in memory: instances are byte buffers. Used by tests (no files to write) and by
 * anything that has already fetched the bytes (a PACS retrieval). Buffers are never modified;
 * a decoding worker gets a copy.
 */
import { parseDicom } from '../dicom/parser.js';
import { readSliceHeader, type SliceHeader } from '../dicom/sliceHeader.js';
import type { WorkerInput } from '../dicom/instance.js';
import type { SeriesInstances, SeriesSource, SourceInstance } from './source.js';
import type { SeriesSummary } from './summary.js';
import { type SeriesRecord, seriesRecordOf, summaryOfRecord } from '../dicomweb/records.js';

export class MemoryInstance implements SourceInstance {
  constructor(
    readonly name: string,
    private readonly data: Buffer,
    /** Its SOP Instance UID, when it was added as DICOM (`addDicom`): what a cache in front keeps it by. */
    readonly sopInstanceUid?: string,
  ) {}

  async read(target: Buffer, position: number, targetOffset = 0, length = target.length - targetOffset): Promise<number> {
    if (position >= this.data.length) return 0;
    return this.data.copy(target, targetOffset, position, Math.min(this.data.length, position + length));
  }

  async size(): Promise<number> {
    return this.data.length;
  }

  async bytes(): Promise<Buffer> {
    return this.data;
  }

  async forWorker(): Promise<WorkerInput> {
    // A view into a larger buffer would send the whole buffer: send exactly the instance.
    const whole = this.data.byteOffset === 0 && this.data.byteLength === this.data.buffer.byteLength;
    return { kind: 'bytes', bytes: whole ? this.data : new Uint8Array(this.data) };
  }
}

export class MemorySource implements SeriesSource {
  private readonly series = new Map<string, MemoryInstance[]>();

  /** Adds an instance to a series. */
  add(seriesUid: string, name: string, data: Buffer): this {
    return this.push(seriesUid, new MemoryInstance(name, data));
  }

  private push(seriesUid: string, instance: MemoryInstance): this {
    const list = this.series.get(seriesUid) ?? [];
    list.push(instance);
    this.series.set(seriesUid, list);
    return this;
  }

  /** Adds an instance to the series its header names; throws when it is not DICOM or names none. */
  addDicom(name: string, data: Buffer): string {
    const header = readSliceHeader(parseDicom(data, { untilPixelData: true }));
    if (!header.seriesInstanceUid) throw new RangeError(`${name} has no SeriesInstanceUID`);
    this.push(header.seriesInstanceUid, new MemoryInstance(name, data, header.sopInstanceUid || undefined));
    return header.seriesInstanceUid;
  }

  /** Series UIDs held, sorted. */
  seriesUids(): string[] {
    return [...this.series.keys()].sort();
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    const instances = this.series.get(seriesUid);
    return instances ? { instances: [...instances] } : null;
  }

  /** Every series held, from its first instance that parses, images counted over every instance. */
  async listSeries(): Promise<SeriesSummary[]> {
    return (await this.seriesRecords()).map(summaryOfRecord);
  }

  /** The records of the series `listSeries` lists: instances and frames counted over those that parse. */
  async seriesRecords(): Promise<SeriesRecord[]> {
    const out: SeriesRecord[] = [];
    for (const uid of this.seriesUids()) {
      const headers = await this.headersOf(uid);
      const frames = headers.reduce((n, h) => n + h.numberOfFrames, 0);
      if (headers.length > 0) out.push(seriesRecordOf(uid, headers[0], headers.length, frames));
    }
    return out;
  }

  /** The headers of the instances of a series that parse, in the order they were added (not DICOM: left out). */
  async headersOf(seriesUid: string): Promise<SliceHeader[]> {
    const out: SliceHeader[] = [];
    for (const instance of this.series.get(seriesUid) ?? []) {
      try {
        out.push(readSliceHeader(parseDicom(await instance.bytes(), { untilPixelData: true })));
      } catch {
        // Not DICOM: neither summed up nor counted.
      }
    }
    return out;
  }
}
