import type { FastifyInstance, RouteOptions } from 'fastify';
import { tokenRoute } from './requestToken.js';
import { seriesMetadataRoute } from './seriesMetadata.js';
import { seriesScanRoute } from './seriesScan.js';
import { seriesVolumeRoute } from './seriesVolume.js';

/**
 * The current CIRCUS API's HTTP routes (/series/:sid/metadata, /volume, /scan; /token when tokens
 * are issued). Every route registered here answers errors as `{"status": "ng", "message"}`.
 */
export async function currentApiRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onRoute', (route: RouteOptions) => {
    route.config = { ...route.config, errorStyle: 'status' };
  });
  app.register(seriesMetadataRoute);
  app.register(seriesVolumeRoute);
  app.register(seriesScanRoute);
  if (app.deps.tokens) app.register(tokenRoute);
}
