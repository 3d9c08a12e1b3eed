import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { gzipParallel, strategyOf } from '../../encode/gzip.js';
import { clientGone } from '../render.js';
import type { Query } from '../params.js';
import { openSeriesImages } from '../series.js';
import { descriptorParam } from '../volumeDescriptor.js';

/** Whether an Accept-Encoding header accepts gzip (`gzip` or `x-gzip`, q not 0). */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text.split(',').some((part) => {
    const [name, ...params] = part.trim().split(';');
    const coding = name.trim().toLowerCase();
    if (coding !== 'gzip' && coding !== 'x-gzip') return false;
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)).find(Boolean);
    return !q || Number(q[1]) > 0;
  });
}

/** Adds `value` to the response's Vary header. */
export function addVary(reply: FastifyReply, value: string): void {
  const current = reply.getHeader('Vary');
  reply.header('Vary', current ? `${current}, ${value}` : value);
}

/**
 * GET /series/:sid/volume[?start=S&end=E&delta=D]: the images' voxels one after the other,
 * streamed image by image as each is known (gzip when the client accepts it).
 */
export async function seriesVolumeRoute(app: FastifyInstance): Promise<void> {
  app.get('/series/:sid/volume', { config: { access: 'series' } }, async (request, reply) => {
    const descriptor = descriptorParam(request.query as Query);
    const gone = clientGone(reply);
    const images = await openSeriesImages(app, request, descriptor);
    // The first image before the headers: a series whose first image fails still gets its status.
    const first = await images.image(0, gone);
    async function* body(): AsyncGenerator<Buffer> {
      yield first;
      for (let k = 1; k < images.count; k++) yield await images.image(k, gone);
    }
    reply.type('application/octet-stream').header('Cache-Control', 'private, max-age=600');
    addVary(reply, 'Accept-Encoding');
    if (acceptsGzip(request.headers['accept-encoding'])) {
      reply.header('Content-Encoding', 'gzip');
      const { gzipLevel: level, gzipStrategy } = app.deps.config;
      const strategy = strategyOf(gzipStrategy);
      return reply.send(Readable.from(gzipParallel(body(), { level, strategy }), { objectMode: false }));
    }
    reply.header('Content-Length', String(images.count * images.imageBytes));
    return reply.send(Readable.from(body(), { objectMode: false }));
  });
}
