/**
 * Metadata and bulk data (PS3.18 10.4.1.1.2 and 10.4.1.1.5): the attributes of every instance of
 * a study, a series or one instance as a DICOM JSON array, and the values they refer to.
 *
 * - Metadata is read from each instance's header (everything before its pixel data value): the
 *   Pixel Data element is a BulkDataURI, as is every binary value over 1 KiB; the elements some
 *   files carry after their pixel data (trailing padding) are not read.
 * - A BulkDataURI is `{instance}/bulkdata/{path}`, the path the tag as 8 hex digits, inside
 *   sequences `SSSSSSSS/item/TTTTTTTT`. A value is sent as one part of multipart/related;
 *   type="application/octet-stream" (or the bytes alone when the request accepts
 *   application/octet-stream and no multipart). Pixel Data is sent as its frames are by the frames
 *   route: native pixel data as one octet-stream part; encapsulated pixel data a frame a part, in
 *   the stored syntax's media type when accepted, else decoded.
 * - A series' metadata is built once per lookup of the series (src/services/dicomwebCatalog.ts):
 *   asked again while the lookup is reused, the same bytes are sent.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CircusError, notFound } from '../../core/errors.js';
import { readHeaderDataset } from '../../dicom/fileReader.js';
import { bulkValue, datasetJson } from '../../dicom/json.js';
import type { CatalogInstance, CatalogSeries } from '../../services/dicomwebCatalog.js';
import { mapLimit } from '../../util/async.js';
import type { Query } from '../params.js';
import { acceptedRanges, acceptsJson, covers, notAcceptable } from './accept.js';
import { multipartBody, multipartType, newBoundary } from './multipart.js';
import {
  type InstanceParams,
  instanceOfPath,
  instanceUrl,
  parsedInstance,
  rootUrl,
  type SeriesParams,
  seriesOfPath,
  type StudyParams,
  studyOfPath,
} from './resources.js';
import { sendFrames } from './wado.js';

/** Headers read at once while building a series' metadata. */
const READ_CONCURRENCY = 8;

/** The metadata of one instance as JSON text, its BulkDataURIs under `url`. */
async function instanceJson(app: FastifyInstance, entry: CatalogInstance, url: string): Promise<string> {
  let parsed: Awaited<ReturnType<typeof readHeaderDataset>>;
  try {
    parsed = await readHeaderDataset(entry.instance, { maxInflatedBytes: app.deps.config.maxInflatedBytes });
  } catch (err) {
    throw new CircusError('UNPROCESSABLE_SERIES', `instance ${entry.record.sopInstanceUid} cannot be read: ${(err as Error).message}`);
  }
  return JSON.stringify(datasetJson(parsed.dataset, { bulkDataUri: (path) => `${url}/bulkdata/${path}` }));
}

/** Metadata built per looked-up series and root URL (a series looked up again gets new metadata). */
const built = new WeakMap<CatalogSeries, Map<string, Promise<Buffer>>>();

/** The JSON array members of a series' instances, as one buffer (without the brackets). */
function seriesMembers(app: FastifyInstance, series: CatalogSeries, root: string): Promise<Buffer> {
  let byRoot = built.get(series);
  if (!byRoot) {
    byRoot = new Map();
    built.set(series, byRoot);
  }
  let members = byRoot.get(root);
  if (!members) {
    members = mapLimit(series.instances, READ_CONCURRENCY, (e) =>
      instanceJson(app, e, instanceUrl(root, series.studyUid ?? '', series.seriesUid, e.record.sopInstanceUid)),
    ).then((texts) => Buffer.from(texts.join(','), 'utf8'));
    // A failure is not kept: the next request tries again.
    const mine = members;
    members.catch(() => {
      if (byRoot.get(root) === mine) byRoot.delete(root);
    });
    byRoot.set(root, members);
    // Roots are few (the host names the server is reached by); keep the last few.
    while (byRoot.size > 4) byRoot.delete(byRoot.keys().next().value as string);
  }
  return members;
}

function checkJson(request: FastifyRequest): void {
  if (!acceptsJson(acceptedRanges(request.headers.accept, request.query as Query))) {
    throw notAcceptable('metadata is sent as application/dicom+json (the Accept header allows no such thing)');
  }
}

function sendJsonArray(reply: FastifyReply, members: readonly Buffer[]): FastifyReply {
  const parts: Buffer[] = [];
  for (const m of members) {
    if (m.length === 0) continue;
    parts.push(parts.length === 0 ? OPEN : COMMA, m);
  }
  parts.push(parts.length === 0 ? EMPTY : CLOSE);
  return reply.type('application/dicom+json').header('Cache-Control', 'private, no-cache').send(Buffer.concat(parts));
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');
const EMPTY = Buffer.from('[]');

/** Whether the request takes a bare application/octet-stream body rather than multipart/related. */
function wantsBare(request: FastifyRequest): boolean {
  const ranges = acceptedRanges(request.headers.accept, request.query as Query);
  const multipart = ranges.some((r) => covers(r.type, 'multipart/related'));
  return !multipart && ranges.some((r) => r.type === 'application/octet-stream');
}

async function sendBulk(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, entry: CatalogInstance, path: string) {
  if (path === '7FE00010') {
    const frames = Array.from({ length: entry.header.numberOfFrames }, (_, i) => i + 1);
    if (entry.header.pixelData && !entry.header.pixelData.encapsulated) {
      // Native pixel data: the whole value, one part.
      const parsed = await parsedInstance(app, entry, true);
      const value = bulkValue(parsed.dataset, path);
      if (value) return sendValue(request, reply, value);
    }
    return sendFrames(app, request, reply, entry, frames);
  }
  const value = bulkValue((await parsedInstance(app, entry, true)).dataset, path);
  if (!value) throw notFound(`instance ${entry.record.sopInstanceUid} has no bulk data at ${path.slice(0, 80)}`);
  return sendValue(request, reply, value);
}

function sendValue(request: FastifyRequest, reply: FastifyReply, value: Buffer) {
  const ranges = acceptedRanges(request.headers.accept, request.query as Query);
  if (!ranges.some((r) => covers(r.type, 'multipart/related') || covers(r.type, 'application/octet-stream'))) {
    throw notAcceptable('bulk data is sent as multipart/related; type="application/octet-stream" or application/octet-stream');
  }
  reply.header('Cache-Control', 'private, max-age=600');
  if (wantsBare(request)) return reply.type('application/octet-stream').send(value);
  const boundary = newBoundary();
  async function* one() {
    yield { contentType: 'application/octet-stream', bytes: value };
  }
  reply.header('Content-Type', multipartType('application/octet-stream', boundary));
  return reply.send(multipartBody(one(), boundary));
}

export async function metadataRoutes(app: FastifyInstance): Promise<void> {
  const series = { config: { access: 'series' as const } };
  const listing = { config: { access: 'listing' as const } };

  app.get('/studies/:study/metadata', listing, async (request, reply) => {
    checkJson(request);
    const all = await studyOfPath(app, request.params as StudyParams, app.deps.config.dicomwebMaxInstances);
    const root = rootUrl(request);
    return sendJsonArray(reply, await Promise.all(all.map((s) => seriesMembers(app, s, root))));
  });
  app.get('/studies/:study/series/:series/metadata', series, async (request, reply) => {
    checkJson(request);
    const s = await seriesOfPath(app, request.params as SeriesParams);
    return sendJsonArray(reply, [await seriesMembers(app, s, rootUrl(request))]);
  });
  app.get('/studies/:study/series/:series/instances/:instance/metadata', series, async (request, reply) => {
    checkJson(request);
    const { series: s, entry } = await instanceOfPath(app, request.params as InstanceParams);
    const url = instanceUrl(rootUrl(request), s.studyUid ?? '', s.seriesUid, entry.record.sopInstanceUid);
    return sendJsonArray(reply, [Buffer.from(await instanceJson(app, entry, url), 'utf8')]);
  });
  app.get('/studies/:study/series/:series/instances/:instance/bulkdata/*', series, async (request, reply) => {
    const { entry } = await instanceOfPath(app, request.params as InstanceParams);
    const path = (request.params as { '*': string })['*'].toUpperCase();
    return sendBulk(app, request, reply, entry, path);
  });
}
