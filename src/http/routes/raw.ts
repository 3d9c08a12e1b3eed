import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorize } from '../auth.js';
import { gzipParallel } from '../../encode/gzip.js';
import { voxelDump, type RawFormat } from '../../encode/voxelDump.js';
import { enumParam, seriesParam, type Query } from '../params.js';

const FORMATS = ['combined', 'voxels'] as const;

/**
 * GET /raw?series=UID[&format=combined|voxels] and GET /volume?series=UID (voxels).
 * The gzip stream is made while it is sent; once complete it is kept in the cache (its bytes
 * counted in the budget) when it fits, so a repeated request is sent from memory.
 */
export async function rawRoute(app: FastifyInstance): Promise<void> {
  const serve = async (series: string, format: RawFormat, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    authorize(app, request, series);
    const volume = await app.deps.volumes.get(series);
    const cache = app.deps.volumes.cache;
    const key = `raw:${series}:${format}:${app.deps.config.gzipLevel}`;
    reply.type('application/octet-stream').header('Content-Encoding', 'gzip').header('Cache-Control', 'private, max-age=600');
    const cached = cache.peek(key) as Buffer | undefined;
    if (cached) return reply.header('Content-Length', String(cached.length)).send(cached);

    const limit = Math.floor(cache.budgetBytes / 2);
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let keeping = true;
    async function* stream(): AsyncGenerator<Buffer> {
      for await (const piece of gzipParallel(voxelDump(volume, format), { level: app.deps.config.gzipLevel })) {
        if (keeping) {
          keptBytes += piece.length;
          if (keptBytes > limit) {
            keeping = false;
            kept.length = 0;
          } else kept.push(piece);
        }
        yield piece;
      }
      if (keeping) cache.put(key, Buffer.concat(kept, keptBytes), keptBytes);
    }
    return reply.send(Readable.from(stream(), { objectMode: false }));
  };

  app.get('/raw', async (request, reply) => {
    const q = request.query as Query;
    const series = seriesParam(q);
    const format = enumParam(q, 'format', FORMATS) ?? 'combined';
    return serve(series, format, request, reply);
  });
  app.get('/volume', async (request, reply) => serve(seriesParam(request.query as Query), 'voxels', request, reply));
}
