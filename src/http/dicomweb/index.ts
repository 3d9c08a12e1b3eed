/**
 * The DICOMweb face (PS3.18), read-only, under /dicom-web below the base path: QIDO-RS searches,
 * WADO-RS retrieve and frames, metadata and bulk data, rendered images and thumbnails. Errors are
 * `{"status": "ng", "message"}` bodies with PS3.18's statuses (400 with the reason, 404, 406,
 * 413). Responses may be read from pages served elsewhere (a viewer that isolates itself with
 * COEP): they carry Cross-Origin-Resource-Policy: cross-origin beside the CORS headers.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import { DICOMWEB_PREFIX } from './resources.js';
import { metadataRoutes } from './metadata.js';
import { qidoRoutes } from './qidoRoutes.js';
import { renderedRoutes } from './renderedRoutes.js';
import { wadoRoutes } from './wado.js';

export async function dicomwebRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onRoute', (route: RouteOptions) => {
    route.config = { ...route.config, errorStyle: 'status', counter: route.config?.counter ?? 'dicom-web' };
  });
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('Cross-Origin-Resource-Policy', 'cross-origin');
  });
  app.register(
    async (face) => {
      face.register(qidoRoutes);
      face.register(wadoRoutes);
      face.register(metadataRoutes);
      face.register(renderedRoutes);
    },
    { prefix: DICOMWEB_PREFIX },
  );
}
