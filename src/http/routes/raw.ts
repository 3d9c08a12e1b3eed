import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { gzipParallel, strategyOf } from '../../encode/gzip.js';
import { voxelDump, type RawFormat } from '../../encode/voxelDump.js';
import { volumeId } from '../../services/cacheRegions.js';
import { enumParam, seriesParam, type Query } from '../params.js';

const FORMATS = ['combined', 'voxels'] as const;

/**
 * GET /raw?series=UID[&format=combined|voxels] and GET /volume?series=UID (voxels).
 * The gzip stream is made while it is sent. One stream at a time per volume and format also
 * keeps its pieces (up to a quarter of the cache budget); once complete they go into the
 * cache's volume stream region (counted in the budget), so repeated requests are sent from memory. Requests never wait for
 * another client's download: a request that finds no complete stream makes its own.
 */
export async function rawRoute(app: FastifyInstance): Promise<void> {
  const collecting = new Set<string>();

  const serve = async (series: string, format: RawFormat, reply: FastifyReply): Promise<FastifyReply> => {
    const volume = await app.deps.volumes.get(series);
    const streams = app.deps.cache.volumeStreams;
    // Keyed by the loaded volume: a series loaded again never gets an older stream.
    const { gzipLevel: level, gzipStrategy } = app.deps.config;
    const strategy = strategyOf(gzipStrategy);
    const key = `${volumeId(volume)}:${format}:${level}:${strategy}`;
    reply.type('application/octet-stream').header('Content-Encoding', 'gzip').header('Cache-Control', 'private, max-age=600');
    const cached = streams.peek(key);
    if (cached) return reply.header('Content-Length', String(cached.bytes)).send(Readable.from(cached.pieces, { objectMode: false }));

    const keep = !collecting.has(key);
    if (keep) collecting.add(key);
    const limit = Math.floor(app.deps.cache.cache.budgetBytes / 4);
    const pieces: Buffer[] = [];
    let bytes = 0;
    let keeping = keep;
    let complete = false;
    async function* stream(): AsyncGenerator<Buffer> {
      for await (const piece of gzipParallel(voxelDump(volume, format), { level, strategy })) {
        if (keeping) {
          bytes += piece.length;
          if (bytes > limit) {
            keeping = false;
            pieces.length = 0;
          } else pieces.push(piece);
        }
        yield piece;
      }
      complete = true;
    }
    const body = Readable.from(stream(), { objectMode: false });
    // Runs however the stream ends: completed, failed, or destroyed because the client left
    // (even before the generator started).
    body.once('close', () => {
      if (!keep) return;
      collecting.delete(key);
      if (complete && keeping) streams.put(key, { pieces: [...pieces], bytes }, bytes);
      pieces.length = 0;
    });
    return reply.send(body);
  };

  app.get('/raw', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const series = seriesParam(q);
    const format = enumParam(q, 'format', FORMATS) ?? 'combined';
    return serve(series, format, reply);
  });
  app.get('/volume', { config: { access: 'series' } }, async (request, reply) => serve(seriesParam(request.query as Query), 'voxels', reply));
}
