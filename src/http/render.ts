/** What the image routes share: window parameters, headers, and the cache of rendered images. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { estimatedWindow, type Volume } from '../core/volume/volume.js';
import { effectiveWindow, type WindowSpec } from '../core/mpr/window.js';
import type { RenderedImage } from '../services/cacheRegions.js';
import { numberParam, type Query } from './params.js';

/** `ww` and `wl` as given (validated now, before any loading), defaults filled in later. */
export function windowParams(query: Query): { ww?: number; wl?: number } {
  return { ww: numberParam(query, 'ww', { above: 0 }), wl: numberParam(query, 'wl') };
}

/**
 * The window an image of `v` is made with (and cached under): `ww`/`wl` as given, else the
 * estimated window, inverted for MONOCHROME1. A Binary volume always gets BINARY_WINDOW
 * (width 1, level 0.5, not inverted: 0 -> 0, 1 -> 255), so its images and cache keys do not
 * depend on ww/wl. Throws a 400 CircusError when the window is not valid.
 */
export function windowFor(v: Volume, p: { ww?: number; wl?: number }): WindowSpec {
  const e = estimatedWindow(v);
  return effectiveWindow(v.pixelFormat, { width: p.ww ?? e.width, level: p.wl ?? e.level, invert: v.monochrome1 });
}

/** A number for a header: whole numbers as they are, others with at most 6 decimals. */
export const headerNumber = (x: number): string => String(Number(x.toFixed(6)) + 0);

export function sendPng(reply: FastifyReply, png: Buffer, headers: Record<string, string>): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.type('image/png').header('Cache-Control', 'private, max-age=600').send(png);
}

/**
 * The image for `key` from the image region of the cache, or made now and kept there: viewers
 * scroll back and forth and several look at the same study, so the same image is asked for
 * again and again. Keys name the loaded volume (volumeId). Images share the budget with volumes
 * but never evict one (see services/cacheRegions.ts).
 */
export async function renderCached(app: FastifyInstance, key: string, make: () => Promise<RenderedImage>): Promise<RenderedImage> {
  const images = app.deps.cache.images;
  const hit = images.peek(key);
  if (hit) return hit;
  const image = await make();
  images.put(key, image, image.png.length + 512);
  return image;
}
