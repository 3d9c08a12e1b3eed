import type { FastifyInstance } from 'fastify';
import { badParameter, CircusError } from '../../core/errors.js';
import { orderSummaries, searchSummaries } from '../../sources/summary.js';
import type { SeriesPage } from '../../wire/seriesList.js';
import { numberParam, type Query } from '../params.js';

/** A whole number of at least `min` (400 otherwise); undefined when absent. */
function countParam(q: Query, name: string, min: number): number | undefined {
  const n = numberParam(q, name, { integer: true });
  if (n !== undefined && (n < min || !Number.isSafeInteger(n)))
    throw badParameter(`parameter '${name}' must be a whole number of at least ${min}, got ${n}`);
  return n;
}

/**
 * GET /series[?q=WORDS][&offset=N][&limit=N]: the series the source knows, newest study first,
 * with patient, study and series attributes, a page at a time (at most `listLimit` a page).
 * The list shows patient names and IDs, so in authentication mode it is answered only when
 * `allowListing` is on (403 otherwise). Errors are the current API's `{"status": "ng"}` bodies,
 * like every route under /series.
 */
export async function seriesListRoute(app: FastifyInstance): Promise<void> {
  app.get('/series', { config: { access: 'public', errorStyle: 'status' } }, async (request, reply) => {
    const { auth, allowListing, listLimit } = app.deps.config;
    reply.header('Cache-Control', 'no-store');
    if (auth && !allowListing) {
      throw new CircusError(
        'FORBIDDEN',
        'series are not listed in authentication mode (the list shows patient data); allowListing turns the list on',
      );
    }
    const q = request.query as Query;
    const raw = q.q;
    if (Array.isArray(raw)) throw badParameter(`parameter 'q' is given more than once`);
    const query = raw ?? '';
    const offset = countParam(q, 'offset', 0) ?? 0;
    const limit = Math.min(countParam(q, 'limit', 1) ?? listLimit, listLimit);
    const source = app.deps.listSource;
    if (!source?.listSeries) throw new CircusError('NOT_FOUND', 'this server cannot list the series of its source');
    const found = orderSummaries(searchSummaries(await source.listSeries(), query));
    const page: SeriesPage = { total: found.length, offset, limit, series: found.slice(offset, offset + limit) };
    return page;
  });
}
