/**
 * What the current CIRCUS API's series routes share: the images a request names (the series in
 * the path, the partial volume descriptor in the query), opened without waiting for the whole
 * volume.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SeriesImages, type PartialVolumeDescriptor } from '../services/seriesImages.js';
import { seriesOf } from './auth.js';

/**
 * The images of the request's series (`:sid`) that `descriptor` names, as soon as the header
 * pass is done and their format is known. A series that is not a volume is opened as a stack
 * of images when the loader can. Rejects with 404 (no such series), 422 (not a volume nor a
 * stack), 400 (a descriptor that breaks a rule for this series).
 */
export async function openSeriesImages(app: FastifyInstance, request: FastifyRequest, descriptor?: PartialVolumeDescriptor): Promise<SeriesImages> {
  const load = await app.deps.volumes.open(seriesOf(request), { allowStack: true });
  return SeriesImages.of(load, descriptor);
}
