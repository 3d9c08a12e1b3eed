/**
 * Rendered and thumbnail resources (PS3.18 10.4.1.1.3 and 10.7): a frame through `window` and
 * `viewport` (see src/dicomweb/rendered.ts) as image/jpeg or image/png, whichever the Accept
 * ranges (or the `accept` parameter) name first; image/jpeg, the default PS3.18 gives rendered
 * single frames, for `*\/*`, `image/*` or no Accept at all (see accept.ts renderedType).
 * JPEG is baseline JFIF (src/encode/jpeg.ts) at `quality` (1..100, 90 by default; colour 4:2:0
 * below 90, 4:4:4 from 90); PNG is lossless and `quality` changes nothing for it. An image is
 * made on a rendering worker (src/dicomweb/frameImage.ts: read, decode, window, fit, encode).
 *
 * - instance: its first frame; frames/{n}: frame n (one frame: a list of several is 400);
 * - series: its middle image (the middle frame of all its instances' frames, in InstanceNumber order);
 * - thumbnail of an instance, a series or a study (the study's first series by SeriesNumber):
 *   the same image fitted into `viewport` (128 x 128 by default).
 * Images are kept in the server's image cache, keyed by the looked-up series (a series read again
 * after its files changed gets new keys).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badParameter, notFound } from '../../core/errors.js';
import type { FrameImageJob } from '../../dicomweb/frameImage.js';
import { MAX_RENDERED_SIDE, parseQuality, parseViewport, parseWindow, type Viewport, viewportGeometry } from '../../dicomweb/rendered.js';
import type { CatalogInstance, CatalogSeries } from '../../services/dicomwebCatalog.js';
import { renderCached } from '../render.js';
import { single, type Query } from '../params.js';
import { acceptedRanges, notAcceptable, renderedType } from './accept.js';
import { catalogOf, type InstanceParams, instanceOfPath, type SeriesParams, seriesOfPath, type StudyParams, uidParam } from './resources.js';

const THUMBNAIL: Viewport = { vw: 128, vh: 128 };

/** Parameters PS3.18 defines that change nothing here (annotation, charset, ICC profiles). */
const IGNORED = new Set(['annotation', 'charset', 'iccprofile', 'accept', 'token']);

interface RenderRequest {
  type: 'image/jpeg' | 'image/png';
  window?: ReturnType<typeof parseWindow>;
  viewport?: Viewport;
  quality: number;
  key: string;
}

function renderRequest(request: FastifyRequest, thumbnail: boolean): RenderRequest {
  const q = request.query as Query;
  for (const name of Object.keys(q)) {
    if (!IGNORED.has(name) && name !== 'window' && name !== 'viewport' && name !== 'quality') {
      throw badParameter(`parameter '${name.slice(0, 40)}' is not one of window, viewport, quality, annotation, charset, iccprofile`);
    }
  }
  const type = renderedType(acceptedRanges(request.headers.accept, q));
  if (!type) throw notAcceptable('rendered images are sent as image/jpeg or image/png (the Accept header allows neither)');
  const w = single(q, 'window');
  const v = single(q, 'viewport');
  const quality = single(q, 'quality');
  const window = w !== undefined && !thumbnail ? parseWindow(w) : undefined;
  if (w !== undefined && thumbnail) throw badParameter("a thumbnail takes no 'window' parameter");
  const viewport = v !== undefined ? parseViewport(v) : thumbnail ? THUMBNAIL : undefined;
  const qv = quality !== undefined ? parseQuality(quality) : 90;
  // The quality changes JPEG images only: PNG ones of any quality share a key.
  const key = `${type === 'image/jpeg' ? `${type};q=${qv}` : type}|${window ? `${window.center},${window.width},${window.fn}` : '-'}|${viewport ? Object.values(viewport).join(',') : '-'}`;
  return { type, window, viewport, quality: qv, key };
}

/** Ids of looked-up series, so that cached images of a series read again are not reused. */
const seriesIds = new WeakMap<CatalogSeries, number>();
let nextId = 1;
const idOf = (s: CatalogSeries): number => {
  let id = seriesIds.get(s);
  if (id === undefined) {
    id = nextId++;
    seriesIds.set(s, id);
  }
  return id;
};

async function sendRendered(
  app: FastifyInstance,
  reply: FastifyReply,
  series: CatalogSeries,
  entry: CatalogInstance,
  frame: number,
  r: RenderRequest,
) {
  const key = `dicomweb:${idOf(series)}:${entry.record.sopInstanceUid}:${frame}:${r.key}`;
  const image = await renderCached(app, key, async () => {
    // The size is checked here, before a worker reads the instance.
    const { rows, columns } = entry.header;
    const size = r.viewport ? viewportGeometry(columns, rows, r.viewport) : { ow: columns, oh: rows };
    if (size.ow > MAX_RENDERED_SIDE || size.oh > MAX_RENDERED_SIDE)
      throw badParameter(`the image would be larger than ${MAX_RENDERED_SIDE} pixels a side`);
    const job: FrameImageJob = {
      kind: 'frame',
      input: await entry.instance.forWorker(),
      frame,
      maxInflatedBytes: app.deps.config.maxInflatedBytes,
      window: r.window,
      viewport: r.viewport,
      type: r.type,
      quality: r.quality,
    };
    // The cache's entries call their bytes `png`; here they are those of the type negotiated.
    return { png: await app.deps.renderer.render(job), headers: {} };
  });
  return reply.type(r.type).header('Cache-Control', 'private, max-age=600').send(image.png);
}

/** The middle image of a series: its instance and frame (0-based). */
function middleOf(series: CatalogSeries): { entry: CatalogInstance; frame: number } {
  const total = series.instances.reduce((n, e) => n + e.header.numberOfFrames, 0);
  let k = Math.floor((total - 1) / 2);
  for (const entry of series.instances) {
    if (k < entry.header.numberOfFrames) return { entry, frame: k };
    k -= entry.header.numberOfFrames;
  }
  return { entry: series.instances[0], frame: 0 };
}

/** The one frame number of a rendered frames path (1-based), checked. */
function oneFrame(text: string, frames: number): number {
  if (!/^\d{1,9}$/.test(text)) throw badParameter(`a rendered frame is one frame number from 1, got '${text.slice(0, 40)}'`);
  const n = Number(text);
  if (n < 1) throw badParameter('frame numbers start at 1');
  if (n > frames) throw notFound(`frame ${n} is not in the instance, which has ${frames} frame${frames === 1 ? '' : 's'}`);
  return n - 1;
}

export async function renderedRoutes(app: FastifyInstance): Promise<void> {
  const series = { config: { access: 'series' as const } };
  const listing = { config: { access: 'listing' as const } };
  for (const [suffix, thumbnail] of [
    ['rendered', false],
    ['thumbnail', true],
  ] as const) {
    app.get(`/studies/:study/series/:series/instances/:instance/${suffix}`, series, async (request, reply) => {
      const r = renderRequest(request, thumbnail);
      const { series: s, entry } = await instanceOfPath(app, request.params as InstanceParams);
      return sendRendered(app, reply, s, entry, 0, r);
    });
    app.get(`/studies/:study/series/:series/instances/:instance/frames/:frames/${suffix}`, series, async (request, reply) => {
      const r = renderRequest(request, thumbnail);
      const { series: s, entry } = await instanceOfPath(app, request.params as InstanceParams);
      return sendRendered(app, reply, s, entry, oneFrame((request.params as { frames: string }).frames, entry.header.numberOfFrames), r);
    });
    app.get(`/studies/:study/series/:series/${suffix}`, series, async (request, reply) => {
      const r = renderRequest(request, thumbnail);
      const s = await seriesOfPath(app, request.params as SeriesParams);
      const { entry, frame } = middleOf(s);
      return sendRendered(app, reply, s, entry, frame, r);
    });
  }
  app.get('/studies/:study/thumbnail', listing, async (request, reply) => {
    const r = renderRequest(request, true);
    const study = uidParam((request.params as StudyParams).study, 'study');
    const catalog = catalogOf(app);
    const records = (await catalog.studySeries(study)).sort(
      (a, b) =>
        (a.seriesNumber ?? Number.MAX_SAFE_INTEGER) - (b.seriesNumber ?? Number.MAX_SAFE_INTEGER) ||
        a.seriesInstanceUid.localeCompare(b.seriesInstanceUid),
    );
    for (const record of records) {
      const s = await catalog.series(record.seriesInstanceUid);
      if (!s || s.studyUid !== study) continue;
      const { entry, frame } = middleOf(s);
      return sendRendered(app, reply, s, entry, frame, r);
    }
    throw notFound(`study ${study} is not found`);
  });
}
