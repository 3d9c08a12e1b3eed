/**
 * QIDO-RS (PS3.18 10.6): searches for studies, series and instances as DICOM JSON, over the
 * records of the catalog (the header index's tables for a data directory: no file is read for
 * studies and series). Matching, includefield, limit and offset are src/dicomweb/qido.ts's.
 * A page cut short by dicomwebMaxResults carries a Warning header (299) saying so. A path naming
 * a study or series the server does not have (or a series of another study) is a search that
 * matches nothing: 200 and [], not 404 (PS3.18 lists no 404 for searches).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { tooLarge } from '../../core/errors.js';
import type { InstanceRecord, SeriesRecord } from '../../dicomweb/records.js';
import { parseQido, type QidoLevel, type QidoQuery, type QidoResult, queryInstances, querySeries, queryStudies } from '../../dicomweb/qido.js';
import type { CatalogSeries } from '../../services/dicomwebCatalog.js';
import type { Query } from '../params.js';
import { acceptedRanges, acceptsJson, notAcceptable } from './accept.js';
import { catalogOf, rootUrl, type SeriesParams, type StudyParams, uidParam } from './resources.js';

interface Fixed {
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
}

function parse(app: FastifyInstance, request: FastifyRequest, level: QidoLevel, fixed: Fixed) {
  if (!acceptsJson(acceptedRanges(request.headers.accept, request.query as Query))) {
    throw notAcceptable('search results are sent as application/dicom+json (the Accept header allows no such thing)');
  }
  // token and accept are the transport's, not the search's.
  return parseQido(level, request.query as Query, { maxLimit: app.deps.config.dicomwebMaxResults, fixed, ignore: ['token', 'accept'] });
}

function send(request: FastifyRequest, reply: FastifyReply, q: QidoQuery, answer: QidoResult) {
  const warnings = q.warnings.map((w) => `299 ${request.host} "${w.replace(/["\\]/g, "'")}"`);
  if (answer.truncated && q.limit === request.server.deps.config.dicomwebMaxResults) {
    warnings.push(`299 ${request.host} "The number of results exceeded the maximum supported by the server. Additional results can be requested."`);
  }
  if (warnings.length > 0) reply.header('Warning', warnings.join(', '));
  return reply.type('application/dicom+json').header('Cache-Control', 'no-store').send(JSON.stringify(answer.results));
}

/** The instances of `series` with their series' records, at most `max` in all (413 beyond). */
function instancesOf(seriesList: readonly CatalogSeries[], max: number): { instance: InstanceRecord; series: SeriesRecord }[] {
  const out: { instance: InstanceRecord; series: SeriesRecord }[] = [];
  for (const s of seriesList) {
    for (const e of s.instances) {
      if (out.length >= max)
        throw tooLarge(`the search would look through more than ${max} instances (dicomwebMaxInstances); name a study or series`);
      out.push({ instance: e.record, series: s.record });
    }
  }
  return out;
}

/** The looked-up series of records, those the source still knows. */
async function lookUp(app: FastifyInstance, records: readonly SeriesRecord[]): Promise<CatalogSeries[]> {
  const catalog = catalogOf(app);
  const out: CatalogSeries[] = [];
  for (const r of records) {
    const s = await catalog.series(r.seriesInstanceUid);
    if (s) out.push(s);
  }
  return out;
}

/** A UID list value (`a\b`) of a query parameter, or undefined. */
function uidsOf(query: Query, name: string): Set<string> | undefined {
  const v = query[name];
  if (typeof v !== 'string' || v === '' || /[*?]/.test(v)) return undefined;
  return new Set(v.split('\\'));
}

export async function qidoRoutes(app: FastifyInstance): Promise<void> {
  const listing = { config: { access: 'listing' as const } };
  const series = { config: { access: 'series' as const } };
  const maxInstances = () => app.deps.config.dicomwebMaxInstances;

  app.get('/studies', listing, async (request, reply) => {
    const q = parse(app, request, 'study', {});
    return send(request, reply, q, queryStudies(await catalogOf(app).seriesRecords(), q, { retrieveBase: rootUrl(request) }));
  });
  app.get('/series', listing, async (request, reply) => {
    const q = parse(app, request, 'series', {});
    return send(request, reply, q, querySeries(await catalogOf(app).seriesRecords(), q, { retrieveBase: rootUrl(request) }));
  });
  app.get('/studies/:study/series', listing, async (request, reply) => {
    const study = uidParam((request.params as StudyParams).study, 'study');
    const q = parse(app, request, 'series', { StudyInstanceUID: study });
    return send(request, reply, q, querySeries(await catalogOf(app).studySeries(study), q, { retrieveBase: rootUrl(request) }));
  });
  app.get('/studies/:study/series/:series/instances', series, async (request, reply) => {
    const p = request.params as SeriesParams;
    const study = uidParam(p.study, 'study');
    const seriesUid = uidParam(p.series, 'series');
    const q = parse(app, request, 'instance', { StudyInstanceUID: study, SeriesInstanceUID: seriesUid });
    // A search: a series the server does not have, or has in another study, matches nothing
    // (200 and []), as /studies/{study}/series does for a study it does not have.
    const s = await catalogOf(app).series(seriesUid);
    const found = s && s.studyUid === study ? [s] : [];
    return send(request, reply, q, queryInstances(instancesOf(found, maxInstances()), q, { retrieveBase: rootUrl(request) }));
  });
  app.get('/studies/:study/instances', listing, async (request, reply) => {
    const study = uidParam((request.params as StudyParams).study, 'study');
    const q = parse(app, request, 'instance', { StudyInstanceUID: study });
    const records0 = await catalogOf(app).studySeries(study);
    let records = records0;
    const wanted = uidsOf(request.query as Query, 'SeriesInstanceUID');
    if (wanted) records = records.filter((r) => wanted.has(r.seriesInstanceUid));
    const all = records0;
    const found = (await lookUp(app, records)).filter((s) => s.studyUid === study);
    return send(request, reply, q, queryInstances(instancesOf(found, maxInstances()), q, { retrieveBase: rootUrl(request), studySeries: all }));
  });
  app.get('/instances', listing, async (request, reply) => {
    const q = parse(app, request, 'instance', {});
    let records = await catalogOf(app).seriesRecords();
    // Series and study UIDs narrow the series to read before their instances are matched.
    const studies = uidsOf(request.query as Query, 'StudyInstanceUID');
    const seriesUids = uidsOf(request.query as Query, 'SeriesInstanceUID');
    if (studies) records = records.filter((r) => r.studyInstanceUid !== null && studies.has(r.studyInstanceUid));
    if (seriesUids) records = records.filter((r) => seriesUids.has(r.seriesInstanceUid));
    return send(request, reply, q, queryInstances(instancesOf(await lookUp(app, records), maxInstances()), q, { retrieveBase: rootUrl(request) }));
  });
}
