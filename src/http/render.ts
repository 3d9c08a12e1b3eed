/** What the image routes share: window parameters, headers, and the cache of rendered images. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { badParameter, CircusError } from '../core/errors.js';
import type { Orientation, SlabSpec } from '../core/mpr/orthogonal.js';
import { PROJECTIONS } from '../core/reslice/reslice.js';
import { estimatedWindow, type Volume, type VoxelGrid } from '../core/volume/volume.js';
import { effectiveWindow, type WindowSpec } from '../core/mpr/window.js';
import type { VolumeLoad } from '../dicom/progressiveVolume.js';
import type { RenderedImage } from '../services/cacheRegions.js';
import { gridOf } from '../services/renderJob.js';
import { enumParam, numberParam, type Query } from './params.js';

/** `ww` and `wl` as given (validated now, before any loading), defaults filled in later. */
export function windowParams(query: Query): { ww?: number; wl?: number } {
  return { ww: numberParam(query, 'ww', { above: 0 }), wl: numberParam(query, 'wl') };
}

/**
 * `slab` (the slab's thickness in mm, above 0) and `projection` (mip, minip or average; mip when
 * not given): undefined without `slab`; `projection` without `slab` is 400.
 */
export function slabParams(query: Query): SlabSpec | undefined {
  const thickness = numberParam(query, 'slab', { above: 0 });
  const projection = enumParam(query, 'projection', PROJECTIONS);
  if (thickness === undefined) {
    if (projection !== undefined) throw badParameter("parameter 'projection' needs 'slab', the slab's thickness in mm");
    return undefined;
  }
  return { thickness, projection: projection ?? 'mip' };
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

/**
 * The window images of a series' load are made with (and cached under), as `windowFor` gives it
 * for the complete volume: when `ww` and `wl` are both given it needs only the header pass
 * (MONOCHROME1, Binary); otherwise it waits for the complete volume, whose estimated window
 * fills in. Throws a 400 CircusError when the window is not valid; rejects with the load's
 * failure.
 */
export async function windowOfLoad(load: VolumeLoad, p: { ww?: number; wl?: number }): Promise<WindowSpec> {
  if (p.ww !== undefined && p.wl !== undefined) {
    // Binary volumes are exactly those stored with BitsAllocated 1.
    return effectiveWindow(load.storedFormat, { width: p.ww, level: p.wl, invert: load.monochrome1 });
  }
  return windowFor(await load.complete, p);
}

/**
 * What an /mpr image of a load is drawn from: the grid and the index of the plane in it. An axial
 * image with `ww` and `wl` given is drawn from its slice alone once that slice is in place and
 * its values are known exactly (VolumeLoad.axialSlice), without waiting for the rest of the
 * series; anything else from the complete volume. Both give the same image, byte for byte.
 * Rejects with the load's failure, or with `signal.reason` when it fires while the slice is awaited.
 */
export async function mprSource(
  load: VolumeLoad,
  mode: Orientation,
  target: number,
  p: { ww?: number; wl?: number },
  signal?: AbortSignal,
): Promise<{ grid: VoxelGrid; target: number }> {
  if (mode === 'axial' && p.ww !== undefined && p.wl !== undefined && load.volume === null) {
    await load.slice(target, signal);
    const grid = load.axialSlice(target);
    if (grid) return { grid, target: 0 };
  }
  return { grid: gridOf(await load.complete), target };
}

/**
 * A signal that fires when the client goes away (its connection closes) before the response
 * is sent, with a CLIENT_GONE error as its reason.
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableEnded) controller.abort(new CircusError('CLIENT_GONE', 'the client went away before its image was ready'));
  });
  return controller.signal;
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
