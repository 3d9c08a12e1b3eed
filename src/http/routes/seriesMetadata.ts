import type { FastifyInstance } from 'fastify';
import { estimatedWindow, type Window } from '../../core/volume/volume.js';
import { pixelFormatName } from '../../encode/imageBytes.js';
import type { PartialVolumeDescriptor, SeriesImages } from '../../services/seriesImages.js';
import { clientGone } from '../render.js';
import { enumParam, type Query } from '../params.js';
import { openSeriesImages } from '../series.js';
import { descriptorParam } from '../volumeDescriptor.js';

const ESTIMATES = ['full', 'first', 'center', 'none'] as const;
type Estimate = (typeof ESTIMATES)[number];

/** Modalities whose volumes the CIRCUS viewers slice in 3d. */
const VOLUME_MODALITIES = new Set(['CT', 'MR', 'PT']);

/**
 * The distance between consecutive images of the (partial) volume along the slice normal, in mm:
 * |delta| slices of the series' spacing (its median spacing when the slices are not evenly
 * spaced), never 0; 1 for a stack of images that is not a volume.
 */
export function imageSpacing(images: SeriesImages, descriptor: PartialVolumeDescriptor | undefined): number {
  if (images.load.stack) return 1;
  const sz = images.load.voxelSize[2];
  const spacing = images.count > 1 && descriptor ? Math.abs(descriptor.delta) * sz : sz;
  return spacing > 0 ? spacing : 1;
}

/** GET /series/:sid/metadata[?estimateWindow=full|first|center|none][&start=S&end=E&delta=D] */
export async function seriesMetadataRoute(app: FastifyInstance): Promise<void> {
  app.get('/series/:sid/metadata', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const estimate: Estimate = enumParam(q, 'estimateWindow', ESTIMATES) ?? 'none';
    const descriptor = descriptorParam(q);
    const gone = clientGone(reply);
    const images = await openSeriesImages(app, request, descriptor);
    const load = images.load;

    // Every estimate leaves padding out the same way; full covers the images the descriptor names.
    let estimated: Window | undefined;
    if (estimate === 'full') estimated = estimatedWindow(await images.imagesRange(gone));
    else if (estimate !== 'none') {
      const k = estimate === 'first' ? 0 : Math.floor(images.count / 2);
      estimated = estimatedWindow(await images.valueRange(k, gone));
    }
    const dicom = load.sliceWindows[images.slices[0]];
    const modality = load.attributes.modality;
    return {
      voxelCount: [images.columns, images.rows, images.count],
      voxelSize: [load.voxelSize[0], load.voxelSize[1], imageSpacing(images, descriptor)],
      pixelFormat: pixelFormatName(images.format),
      ...(dicom ? { dicomWindow: { level: dicom.level, width: dicom.width } } : {}),
      ...(estimated ? { estimatedWindow: { level: estimated.level, width: estimated.width } } : {}),
      mode: !load.stack && modality !== null && VOLUME_MODALITIES.has(modality) ? '3d' : '2d',
      modality,
    };
  });
}
