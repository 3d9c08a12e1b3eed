/**
 * WADO-RS (PS3.18 10.4): instances of a study, series or one instance as multipart/related
 * application/dicom, and frames.
 *
 * Transfer syntaxes of instances: `transfer-syntax=*` sends each instance as stored; Explicit VR
 * Little Endian (what a request naming none gets, PS3.18's default) sends each instance stored
 * otherwise rewritten in it, compressed pixel data decoded, on the decoding workers (the event
 * loop only moves bytes); any other syntax is served to instances stored in it. An instance that
 * cannot be sent as asked (a compressed syntax this server cannot decode, a compressed syntax
 * other than the stored one) makes the whole request 406 before anything is sent.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CircusError, isSourceFailure, notFound, tooLarge } from '../../core/errors.js';
import { readPixelBytes } from '../../dicom/fileReader.js';
import { canDecode } from '../../dicom/codecs.js';
import { encapsulatedFrames, nativeFrame, toExplicitLittle } from '../../dicom/transcode.js';
import type { ParsedDicom } from '../../dicom/parser.js';
import { isNative } from '../../dicom/sliceHeader.js';
import { TransferSyntax } from '../../dicom/tags.js';
import type { CatalogInstance, CatalogSeries } from '../../services/dicomwebCatalog.js';
import type { Query } from '../params.js';
import { acceptedRanges, type FrameDelivery, frameDelivery, instanceSyntax, notAcceptable } from './accept.js';
import { multipartBody, multipartType, newBoundary, type Part, readAhead } from './multipart.js';
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
import { decodeOneFrame } from '../../dicomweb/frames.js';

/**
 * Instances read ahead of the one being sent: up to 12, and up to 64 MB by their headers' pixel
 * data size (a few large multi-frame instances are not all held at once).
 */
const READ_AHEAD = { parts: 12, bytes: 64 * 1024 * 1024, sizeOf: ({ entry }: { entry: CatalogInstance }) => instanceBytes(entry) };

/** What an instance takes in memory, about: its pixel data as stored, or decoded when compressed. */
function instanceBytes(e: CatalogInstance): number {
  const h = e.header;
  if (h.pixelData && !h.pixelData.encapsulated) return h.pixelData.length;
  return h.rows * h.columns * h.samplesPerPixel * Math.ceil(h.bitsAllocated / 8) * h.numberOfFrames;
}
/** The Content-Type of a frame part sent uncompressed. */
const UNCOMPRESSED_FRAME = `application/octet-stream; transfer-syntax=${TransferSyntax.ExplicitLittle}`;

/** Most frame numbers one frames request may list. */
const MAX_FRAME_LIST = 10_000;

/** Whether an instance stored in `stored` is sent in `requested`: as it is, rewritten, or not at all. */
function delivery(stored: string, requested: string): 'as stored' | 'rewritten' | null {
  if (requested === '*' || requested === stored) return 'as stored';
  if (requested === TransferSyntax.ExplicitLittle && (isNative(stored) || canDecode(stored))) return 'rewritten';
  return null;
}

/** Checks that every instance can be sent in the requested syntax (406 naming one that cannot). */
function checkSyntax(entries: readonly CatalogInstance[], requested: string): void {
  for (const e of entries) {
    const stored = e.header.transferSyntaxUid;
    if (delivery(stored, requested) !== null) continue;
    throw notAcceptable(
      requested === TransferSyntax.ExplicitLittle
        ? `instance ${e.record.sopInstanceUid} is stored in ${stored}, which this server cannot decode; ask for transfer-syntax=* to have it as stored`
        : `instance ${e.record.sopInstanceUid} is stored in ${stored}; instances are sent as stored (transfer-syntax=*), in the syntax they are stored in, or in Explicit VR Little Endian (${TransferSyntax.ExplicitLittle})`,
    );
  }
}

/** The instance rewritten in Explicit VR Little Endian, on the decoding workers when the server has them. */
async function rewritten(app: FastifyInstance, e: CatalogInstance): Promise<Buffer> {
  const max = app.deps.config.maxInflatedBytes;
  const decoder = app.deps.decoder;
  try {
    if (decoder?.toExplicitLittle) return await decoder.toExplicitLittle(await e.instance.forWorker(), max);
    return await toExplicitLittle(await e.instance.bytes(), max);
  } catch (err) {
    if (err instanceof CircusError) throw err;
    throw new CircusError(
      'UNPROCESSABLE_SERIES',
      `instance ${e.record.sopInstanceUid} cannot be rewritten in Explicit VR Little Endian: ${(err as Error).message}`,
    );
  }
}

async function instancePart(app: FastifyInstance, e: CatalogInstance, location: string, requested: string): Promise<Part> {
  const stored = e.header.transferSyntaxUid;
  if (delivery(stored, requested) === 'rewritten') {
    return { contentType: `application/dicom; transfer-syntax=${requested}`, bytes: await rewritten(app, e), location };
  }
  return { contentType: `application/dicom; transfer-syntax=${stored}`, bytes: await e.instance.bytes(), location };
}

/** Sends instances as a multipart/related application/dicom stream. */
function sendInstances(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  items: readonly { series: CatalogSeries; entry: CatalogInstance }[],
) {
  const requested = instanceSyntax(acceptedRanges(request.headers.accept, request.query as Query));
  if (requested === null)
    throw notAcceptable('instances are sent as multipart/related; type="application/dicom" (the Accept header allows no such thing)');
  checkSyntax(
    items.map((i) => i.entry),
    requested,
  );
  const root = rootUrl(request);
  const boundary = newBoundary();
  const parts = readAhead(items, READ_AHEAD, ({ series, entry }) =>
    instancePart(app, entry, instanceUrl(root, series.studyUid ?? '', series.seriesUid, entry.record.sopInstanceUid), requested),
  );
  const ts = requested === '*' ? '' : `; transfer-syntax=${requested}`;
  reply.header('Content-Type', multipartType('application/dicom', boundary, ts)).header('Cache-Control', 'private, no-cache');
  return reply.send(multipartBody(parts, boundary));
}

const allOf = (seriesList: readonly CatalogSeries[]) => seriesList.flatMap((series) => series.instances.map((entry) => ({ series, entry })));

/** The frame numbers of a `frames/{list}` path (1-based, comma-separated), each checked against the instance's frames. */
export function frameList(text: string, frames: number): number[] {
  const parts = text.split(',');
  if (parts.length > MAX_FRAME_LIST) throw tooLarge(`a frame list may name at most ${MAX_FRAME_LIST} frames`);
  return parts.map((p) => {
    if (!/^\d{1,9}$/.test(p.trim()))
      throw new CircusError('BAD_PARAMETER', `the frame list must be frame numbers from 1 separated by commas, got '${text.slice(0, 60)}'`);
    const n = Number(p.trim());
    if (n < 1) throw new CircusError('BAD_PARAMETER', 'frame numbers start at 1');
    if (n > frames) throw notFound(`frame ${n} is not in the instance, which has ${frames} frame${frames === 1 ? '' : 's'}`);
    return n;
  });
}

/** The bytes of frame `n` (1-based) as a delivery says. */
async function framePart(parsed: ParsedDicom, e: CatalogInstance, n: number, how: FrameDelivery, stored: Uint8Array[] | null): Promise<Part> {
  if (how.kind === 'stored') {
    return { contentType: `${how.mediaType}; transfer-syntax=${how.transferSyntaxUid}`, bytes: stored![n - 1] };
  }
  const bytes = isNative(e.header.transferSyntaxUid) ? nativeFrame(parsed, e.header, n - 1) : await decodeOneFrame(e.header, stored![n - 1]);
  return { contentType: UNCOMPRESSED_FRAME, bytes };
}

/** Bytes of one frame when frames can be read from the file as they are (little endian, native, whole bytes a sample, not deflated); else 0. */
function readableFrameBytes(h: CatalogInstance['header']): number {
  const ts = h.transferSyntaxUid;
  if ((ts !== TransferSyntax.ExplicitLittle && ts !== TransferSyntax.ImplicitLittle) || !h.pixelData || h.pixelData.encapsulated) return 0;
  if (h.bitsAllocated % 8 !== 0 || h.bitsAllocated === 0) return 0;
  const size = h.rows * h.columns * h.samplesPerPixel * (h.bitsAllocated / 8);
  return size > 0 && size * h.numberOfFrames <= h.pixelData.length ? size : 0;
}

/** Sends frames of an instance as multipart/related, in the form the Accept header asks for (406 when none can be). */
export async function sendFrames(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, e: CatalogInstance, frames: number[]) {
  const compressed = !isNative(e.header.transferSyntaxUid);
  const how = frameDelivery(acceptedRanges(request.headers.accept, request.query as Query), e.header.transferSyntaxUid, compressed);
  if (!how) {
    throw notAcceptable(
      `frames of instance ${e.record.sopInstanceUid} (stored in ${e.header.transferSyntaxUid}) are sent as multipart/related; type="application/octet-stream"` +
        (compressed ? ' (decoded), or as stored with transfer-syntax=* or the media type of the stored syntax' : ''),
    );
  }
  if (how.kind === 'native' && compressed && !canDecode(e.header.transferSyntaxUid)) {
    throw notAcceptable(
      `instance ${e.record.sopInstanceUid} is stored in ${e.header.transferSyntaxUid}, which this server cannot decode; ask for transfer-syntax=*`,
    );
  }
  const boundary = newBoundary();
  const type = how.kind === 'stored' ? how.mediaType : 'application/octet-stream';
  const ts = how.kind === 'stored' ? how.transferSyntaxUid : TransferSyntax.ExplicitLittle;
  let parts: AsyncGenerator<Part>;
  const size = readableFrameBytes(e.header);
  if (size > 0) {
    // Little-endian native frames of whole bytes are read straight from the file, each its range.
    const limits = { maxInflatedBytes: app.deps.config.maxInflatedBytes };
    parts = readAhead(frames, 2, async (n) => {
      const bytes = Buffer.allocUnsafe(size);
      try {
        await readPixelBytes(e.instance, e.header, bytes, (n - 1) * size, limits);
      } catch (err) {
        if (isSourceFailure(err)) throw err;
        throw new CircusError('UNPROCESSABLE_SERIES', `instance ${e.record.sopInstanceUid} cannot be read: ${(err as Error).message}`);
      }
      return { contentType: UNCOMPRESSED_FRAME, bytes };
    });
  } else if (how.kind === 'native' && compressed && app.deps.decoder?.decodeFrame) {
    // Compressed frames asked uncompressed: decoded on the decoding workers, not the event loop.
    const decoder = app.deps.decoder;
    const input = await e.instance.forWorker();
    const max = app.deps.config.maxInflatedBytes;
    parts = readAhead(frames, 2, async (n) => {
      try {
        return { contentType: UNCOMPRESSED_FRAME, bytes: await decoder.decodeFrame!(input, n - 1, max) };
      } catch (err) {
        throw new CircusError(
          'UNPROCESSABLE_SERIES',
          `instance ${e.record.sopInstanceUid} has a frame that cannot be decoded: ${(err as Error).message}`,
        );
      }
    });
  } else {
    const parsed = await parsedInstance(app, e);
    const stored = compressed ? encapsulatedFrames(parsed, e.header) : null;
    parts = readAhead(frames, 2, (n) => framePart(parsed, e, n, how, stored));
  }
  reply.header('Content-Type', multipartType(type, boundary, `; transfer-syntax=${ts}`)).header('Cache-Control', 'private, max-age=600');
  return reply.send(multipartBody(parts, boundary));
}

export async function wadoRoutes(app: FastifyInstance): Promise<void> {
  const maxInstances = () => app.deps.config.dicomwebMaxInstances;
  const series = { config: { access: 'series' as const } };
  const listing = { config: { access: 'listing' as const } };

  app.get('/studies/:study', listing, async (request, reply) => {
    return sendInstances(app, request, reply, allOf(await studyOfPath(app, request.params as StudyParams, maxInstances())));
  });
  app.get('/studies/:study/series/:series', series, async (request, reply) => {
    return sendInstances(app, request, reply, allOf([await seriesOfPath(app, request.params as SeriesParams)]));
  });
  app.get('/studies/:study/series/:series/instances/:instance', series, async (request, reply) => {
    const { series: s, entry } = await instanceOfPath(app, request.params as InstanceParams);
    return sendInstances(app, request, reply, [{ series: s, entry }]);
  });

  app.get('/studies/:study/series/:series/instances/:instance/frames/:frames', series, async (request, reply) => {
    const { entry } = await instanceOfPath(app, request.params as InstanceParams);
    const frames = frameList((request.params as { frames: string }).frames, entry.header.numberOfFrames);
    return sendFrames(app, request, reply, entry, frames);
  });
}
