import type { FastifyInstance } from 'fastify';
import { badParameter, tooLarge } from '../../core/errors.js';
import { ORIENTATIONS, planeLayout } from '../../core/mpr/orthogonal.js';
import { enumParam, numberParam, seriesParam, type Query } from '../params.js';
import { volumeId } from '../../services/cacheRegions.js';
import { clientGone, headerNumber, mprSource, renderCached, sendPng, slabParams, windowOfLoad, windowParams } from '../render.js';

/** GET /mpr?series=UID&mode=axial|coronal|sagittal&target=N&ww=W&wl=L[&slab=mm[&projection=mip|minip|average]] */
export async function mprRoute(app: FastifyInstance): Promise<void> {
  app.get('/mpr', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const series = seriesParam(q);
    const mode = enumParam(q, 'mode', ORIENTATIONS, true);
    const target = numberParam(q, 'target', { integer: true });
    const win = windowParams(q);
    const slab = slabParams(q);
    // Watched from the start: a client that leaves while the load opens no longer keeps its slice first.
    const gone = clientGone(reply);
    // The load as soon as its header pass is done: an axial image may not need the whole volume.
    const load = await app.deps.volumes.open(series);
    const layout = planeLayout(load, mode);
    const t = target ?? Math.floor(layout.count / 2);
    if (t < 0 || t >= layout.count) throw badParameter(`parameter 'target' must be an integer from 0 to ${layout.count - 1} for ${mode}, got ${t}`);
    const maxSide = app.deps.config.maxImageSide;
    if (layout.width > maxSide || layout.height > maxSide) {
      throw tooLarge(`the ${mode} image would be ${layout.width}x${layout.height} pixels, more than maxImageSide (${maxSide}) a side`);
    }
    const w = await windowOfLoad(load, win);
    const slabKey = slab ? `:${slab.projection}:${slab.thickness}` : '';
    const image = await renderCached(app, `mpr:${volumeId(load)}:${mode}:${t}:${w.width}:${w.level}${slabKey}`, async () => {
      // A slab needs its neighbouring slices: the complete volume, not one slice loaded first.
      const { grid, target: plane } = await mprSource(load, mode, t, slab ? {} : win, gone);
      return {
        png: await app.deps.renderer.render({ kind: 'mpr', grid, mode, target: plane, window: w, slab }),
        headers: {
          'X-Circus-Pixel-Size': layout.pixelSize.map(headerNumber).join(','),
          'X-Circus-Pixel-Columns': String(layout.width),
          'X-Circus-Pixel-Rows': String(layout.height),
        },
      };
    });
    return sendPng(reply, image.png, image.headers);
  });
}
