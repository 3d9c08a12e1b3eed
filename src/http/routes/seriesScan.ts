import type { FastifyInstance } from 'fastify';
import { badParameter } from '../../core/errors.js';
import { MAX_SCAN_PIXELS, scanPlane, type ScanPlane, type Vec3Tuple } from '../../core/mpr/scan.js';
import { effectiveWindow } from '../../core/mpr/window.js';
import type { VoxelArray } from '../../core/volume/volume.js';
import { encodeScanlines, scanlineBuffer } from '../../encode/png.js';
import { imageByteLength, writeImage } from '../../encode/imageBytes.js';
import { clientGone, windowParams } from '../render.js';
import { enumParam, flagParam, vectorParam, type Query } from '../params.js';
import { openSeriesImages } from '../series.js';
import { descriptorParam } from '../volumeDescriptor.js';

const vec3 = (q: Query, name: string): Vec3Tuple => vectorParam(q, name, 3, true) as unknown as Vec3Tuple;

/** `size=w,h`: whole numbers >= 1 with w * h <= MAX_SCAN_PIXELS. */
function sizeParam(q: Query): [number, number] {
  const [w, h] = vectorParam(q, 'size', 2, true);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw badParameter(`parameter 'size' must be two whole numbers of at least 1, got ${w},${h}`);
  }
  if (w * h > MAX_SCAN_PIXELS) throw badParameter(`parameter 'size' must have at most ${MAX_SCAN_PIXELS} pixels (2048 x 2048), got ${w}x${h}`);
  return [w, h];
}

/**
 * GET /series/:sid/scan?origin=x,y,z&xAxis=x,y,z&yAxis=x,y,z&size=w,h[&interpolation=1][&ww=W&wl=L[&format=png]]
 * [&start=S&end=E&delta=D]: one plane resampled from the (partial) volume (see core/mpr/scan.ts).
 */
export async function seriesScanRoute(app: FastifyInstance): Promise<void> {
  app.get('/series/:sid/scan', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const origin = vec3(q, 'origin');
    const xAxis = vec3(q, 'xAxis');
    const yAxis = vec3(q, 'yAxis');
    const [width, height] = sizeParam(q);
    const interpolation = flagParam(q, 'interpolation');
    const { ww, wl } = windowParams(q);
    const format = enumParam(q, 'format', ['png'] as const);
    if ((ww === undefined) !== (wl === undefined)) throw badParameter(`parameters 'ww' and 'wl' must be given together`);
    if (format === 'png' && ww === undefined) throw badParameter(`parameter 'format' png needs 'ww' and 'wl'`);
    const descriptor = descriptorParam(q);
    const gone = clientGone(reply);
    const images = await openSeriesImages(app, request, descriptor);
    const volume = await images.volume(gone);
    const plane: ScanPlane = { origin, xAxis, yAxis, width, height, interpolation };
    reply.header('Cache-Control', 'private, max-age=600');

    if (ww !== undefined && wl !== undefined) {
      const window = effectiveWindow(volume.pixelFormat, { width: ww, level: wl, invert: volume.monochrome1 });
      if (format === 'png') {
        const rows = scanlineBuffer(width, height);
        scanPlane(volume, images.slices, plane, { kind: 'window', out: rows, window, stride: width + 1, offset: 1 });
        return reply.type('image/png').send(await encodeScanlines(rows, width, height));
      }
      const out = Buffer.allocUnsafe(width * height);
      scanPlane(volume, images.slices, plane, { kind: 'window', out, window });
      return reply.type('application/octet-stream').send(out);
    }
    // Values in the volume's own type first (interpolated values lie between voxel values), then the API's format.
    const Values = volume.data.constructor as new (length: number) => VoxelArray;
    const values = new Values(width * height);
    scanPlane(volume, images.slices, plane, { kind: 'values', out: values });
    const out = Buffer.allocUnsafe(imageByteLength(images.format, width * height));
    writeImage(values, images.format, out);
    return reply.type('application/octet-stream').send(out);
  });
}
