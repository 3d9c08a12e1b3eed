import type { FastifyInstance } from 'fastify';
import { estimatedWindow, type Volume } from '../../core/volume/volume.js';
import { seriesParam, type Query } from '../params.js';

/** The /metadata body for a volume (the contract's fields and extensions). */
export function metadataOf(v: Volume): Record<string, unknown> {
  const first = v.sliceWindows[0];
  return {
    voxelCount: [...v.dims],
    voxelSize: [...v.voxelSize],
    estimatedWindow: estimatedWindow(v),
    ...(first ? { dicomWindow: { width: first.width, level: first.level } } : {}),
    pixelFormat: v.pixelFormat,
    modality: v.attributes.modality,
    photometricInterpretation: v.attributes.photometricInterpretation,
    seriesInstanceUid: v.attributes.seriesInstanceUid,
    studyInstanceUid: v.attributes.studyInstanceUid,
    seriesDescription: v.attributes.seriesDescription,
    imageOrientationPatient: [...v.geometry.imageOrientationPatient],
    imagePositionPatient: v.geometry.origin ? [...v.geometry.origin] : null,
    sliceDirection: [...v.geometry.sliceDirection],
    minValue: v.minValue,
    maxValue: v.maxValue,
    uniformSpacing: v.uniformSpacing,
  };
}

/** GET /metadata?series=UID */
export async function metadataRoute(app: FastifyInstance): Promise<void> {
  app.get('/metadata', { config: { access: 'series' } }, async (request) => {
    const series = seriesParam(request.query as Query);
    const volume = await app.deps.volumes.get(series);
    return metadataOf(volume);
  });
}
