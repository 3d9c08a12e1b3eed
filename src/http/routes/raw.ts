import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { gzipParallel } from '../../encode/gzip.js';
import { voxelDump, type RawFormat } from '../../encode/voxelDump.js';
import { authorize } from '../auth.js';
import { enumParam, seriesParam, type Query } from '../params.js';

const FORMATS = ['combined', 'voxels'] as const;

/** A complete gzip stream kept in the cache, as the pieces it was made of (no final copy). */
interface Compressed {
  pieces: Buffer[];
  bytes: number;
}

/**
 * GET /raw?series=UID[&format=combined|voxels] and GET /volume?series=UID (voxels).
 * The gzip stream is made while it is sent; once complete it is kept in the cache (its bytes
 * counted in the budget) when it fits, so a repeated request is sent from memory. Requests that
 * arrive while the same stream is being made wait for it instead of compressing again.
 */
export async function rawRoute(app: FastifyInstance): Promise<void> {
  const making = new Map<string, Promise<Compressed | null>>();

  const sendKept = (reply: FastifyReply, kept: Compressed): FastifyReply =>
    reply.header('Content-Length', String(kept.bytes)).send(Readable.from(kept.pieces, { objectMode: false }));

  const serve = async (series: string, format: RawFormat, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    authorize(app, request, series);
    const volume = await app.deps.volumes.get(series);
    const cache = app.deps.volumes.cache;
    const key = `raw:${series}:${format}:${app.deps.config.gzipLevel}`;
    reply.type('application/octet-stream').header('Content-Encoding', 'gzip').header('Cache-Control', 'private, max-age=600');
    const cached = cache.peek(key) as Compressed | undefined;
    if (cached) return sendKept(reply, cached);
    const inFlight = making.get(key);
    if (inFlight) {
      const kept = await inFlight;
      if (kept) return sendKept(reply, kept);
    }

    const limit = Math.floor(cache.budgetBytes / 2);
    let settle!: (kept: Compressed | null) => void;
    const done = new Promise<Compressed | null>((resolve) => (settle = resolve));
    making.set(key, done);
    async function* stream(): AsyncGenerator<Buffer> {
      const pieces: Buffer[] = [];
      let bytes = 0;
      let keeping = true;
      let complete = false;
      try {
        for await (const piece of gzipParallel(voxelDump(volume, format), { level: app.deps.config.gzipLevel })) {
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
      } finally {
        // Also reached when the client goes away mid-stream: then nothing is kept.
        const kept = complete && keeping ? { pieces, bytes } : null;
        if (kept) cache.put(key, kept, bytes);
        settle(kept);
        if (making.get(key) === done) making.delete(key);
      }
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
