import type { FastifyInstance } from 'fastify';
import { badParameter } from '../../core/errors.js';
import { obliqueLayout } from '../../core/mpr/oblique.js';
import { ORIENTATIONS } from '../../core/mpr/orthogonal.js';
import { enumParam, numberParam, parseDecimal, seriesParam, single, type Query } from '../params.js';
import { volumeId } from '../../services/cacheRegions.js';
import { gridOf } from '../../services/renderJob.js';
import { headerNumber, renderCached, sendPng, slabParams, windowFor, windowParams } from '../render.js';

function cursorParam(q: Query): [number, number, number] {
  const text = single(q, 'c', true);
  const parts = text.split(',');
  if (parts.length !== 3) throw badParameter(`parameter 'c' must be three comma-separated numbers, got '${text.slice(0, 60)}'`);
  return parts.map((p, i) => parseDecimal(p, `parameter 'c' (${'xyz'[i]})`)) as [number, number, number];
}

/** GET /oblique?series=UID&a=ANGLE&b=axial|coronal|sagittal&c=x,y,z&ww=W&wl=L[&slab=mm[&projection=mip|minip|average]] */
export async function obliqueRoute(app: FastifyInstance): Promise<void> {
  app.get('/oblique', { config: { access: 'series' } }, async (request, reply) => {
    const q = request.query as Query;
    const series = seriesParam(q);
    const a = numberParam(q, 'a', { required: true });
    const b = enumParam(q, 'b', ORIENTATIONS, true);
    const c = cursorParam(q);
    const win = windowParams(q);
    const slab = slabParams(q);
    const volume = await app.deps.volumes.get(series);
    const layout = obliqueLayout(volume, { a, b, c }, app.deps.config.maxImageSide);
    const w = windowFor(volume, win);
    const slabKey = slab ? `:${slab.projection}:${slab.thickness}` : '';
    const image = await renderCached(app, `oblique:${volumeId(volume)}:${b}:${a}:${c.join(',')}:${w.width}:${w.level}${slabKey}`, async () => {
      return {
        png: await app.deps.renderer.render({ kind: 'oblique', grid: gridOf(volume), layout, window: w, slab }),
        headers: {
          'X-Circus-Pixel-Size': headerNumber(layout.pixelSize),
          'X-Circus-Pixel-Columns': String(layout.width),
          'X-Circus-Pixel-Rows': String(layout.height),
          'X-Circus-Center': layout.center.map(headerNumber).join(','),
        },
      };
    });
    return sendPng(reply, image.png, image.headers);
  });
}
