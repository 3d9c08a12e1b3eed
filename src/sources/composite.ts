/**
 * Several sources as one: a series is looked up in each, in the order given, and the first
 * that knows it answers (the data directory before a PACS, so a series in the folder is never
 * asked of the PACS). A source that fails (a PACS that is down) fails the lookups that reach
 * it, never those a source before it answers.
 */
import type { SeriesInstances, SeriesSource } from './source.js';
import { recordOfSummary, type SeriesRecord } from '../dicomweb/records.js';
import type { SeriesSummary } from './summary.js';

export class CompositeSource implements SeriesSource {
  constructor(readonly sources: readonly SeriesSource[]) {}

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    for (const source of this.sources) {
      const found = await source.find(seriesUid);
      if (found) return found;
    }
    return null;
  }

  /**
   * The series of every source that can list its own, each once: a series in an earlier source
   * is listed as that source has it. A source that fails to list (a PACS that is down) fails
   * the list with its error (502, 504), rather than leave its series out unsaid.
   */
  async listSeries(): Promise<SeriesSummary[]> {
    const out = new Map<string, SeriesSummary>();
    for (const source of this.sources) {
      if (!source.listSeries) continue;
      for (const s of await source.listSeries()) if (!out.has(s.seriesUid)) out.set(s.seriesUid, s);
    }
    return [...out.values()];
  }

  /**
   * The records of the series `listSeries` lists, each once, a series in an earlier source as
   * that source has it; a source that lists only summaries is taken at them (`recordOfSummary`).
   * Failures fail the list, as for `listSeries`.
   */
  async seriesRecords(): Promise<SeriesRecord[]> {
    const out = new Map<string, SeriesRecord>();
    for (const source of this.sources) {
      const records = source.seriesRecords ? await source.seriesRecords() : source.listSeries ? (await source.listSeries()).map(recordOfSummary) : [];
      for (const r of records) if (!out.has(r.seriesInstanceUid)) out.set(r.seriesInstanceUid, r);
    }
    return [...out.values()];
  }

  /** Why one of the sources that can tell (a PACS) cannot serve now, or null. */
  async readiness(): Promise<string | null> {
    for (const source of this.sources) {
      const why = source.readiness ? await source.readiness() : null;
      if (why !== null) return why;
    }
    return null;
  }
}
