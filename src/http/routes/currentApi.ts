import type { FastifyInstance, RouteOptions } from 'fastify';
import { tokenRoute } from './requestToken.js';
import { seriesMetadataRoute } from './seriesMetadata.js';
import { seriesScanRoute } from './seriesScan.js';
import { seriesVolumeRoute } from './seriesVolume.js';

/**
 * The current CIRCUS API's HTTP routes (/series/:sid/metadata, /volume, /scan; /token in
 * authentication mode only, as that API has it: without authentication it is 404). Every route
 * registered here answers errors as `{"status": "ng", "message"}`.
 */
export async function currentApiRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onRoute', (route: RouteOptions) => {
    route.config = { ...route.config, errorStyle: 'status' };
  });
  app.register(seriesMetadataRoute);
  app.register(seriesVolumeRoute);
  app.register(seriesScanRoute);
  if (app.deps.tokens && app.deps.config.auth) app.register(tokenRoute);
}
