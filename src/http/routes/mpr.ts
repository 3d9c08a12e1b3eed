import type { FastifyInstance } from 'fastify';
import { badParameter, tooLarge } from '../../core/errors.js';
import { ORIENTATIONS, planeLayout } from '../../core/mpr/orthogonal.js';
import { enumParam, numberParam, seriesParam, type Query } from '../params.js';
import { volumeId } from '../../services/cacheRegions.js';
import { gridOf } from '../../services/renderJob.js';
import { headerNumber, renderCached, sendPng, windowFor, windowParams } from '../render.js';

/** GET /mpr?series=UID&mode=axial|coronal|sagittal&target=N&ww=W&wl=L */
export async function mprRoute(app: FastifyInstance): Promise<void> {
  app.get('/mpr', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const series = seriesParam(q);
    const mode = enumParam(q, 'mode', ORIENTATIONS, true);
    const target = numberParam(q, 'target', { integer: true });
    const win = windowParams(q);
    const volume = await app.deps.volumes.get(series);
    const layout = planeLayout(volume, mode);
    const t = target ?? Math.floor(layout.count / 2);
    if (t < 0 || t >= layout.count) throw badParameter(`parameter 'target' must be an integer from 0 to ${layout.count - 1} for ${mode}, got ${t}`);
    const maxSide = app.deps.config.maxImageSide;
    if (layout.width > maxSide || layout.height > maxSide) {
      throw tooLarge(`the ${mode} image would be ${layout.width}x${layout.height} pixels, more than maxImageSide (${maxSide}) a side`);
    }
    const w = windowFor(volume, win);
    const image = await renderCached(app, `mpr:${volumeId(volume)}:${mode}:${t}:${w.width}:${w.level}`, async () => {
      return {
        png: await app.deps.renderer.render({ kind: 'mpr', grid: gridOf(volume), mode, target: t, window: w }),
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
