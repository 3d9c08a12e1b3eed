/** What the image routes share: window parameters, headers, and the cache of rendered images. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { estimatedWindow, type Volume } from '../core/volume/volume.js';
import type { WindowSpec } from '../core/mpr/window.js';
import { numberParam, type Query } from './params.js';

/** `ww` and `wl` as given (validated now, before any loading), defaults filled in later. */
export function windowParams(query: Query): { ww?: number; wl?: number } {
  return { ww: numberParam(query, 'ww', { above: 0 }), wl: numberParam(query, 'wl') };
}

export function windowFor(v: Volume, p: { ww?: number; wl?: number }): WindowSpec {
  const e = estimatedWindow(v);
  return { width: p.ww ?? e.width, level: p.wl ?? e.level, invert: v.monochrome1 };
}

/** A number for a header: whole numbers as they are, others with at most 6 decimals. */
export const headerNumber = (x: number): string => String(Number(x.toFixed(6)) + 0);

export function sendPng(reply: FastifyReply, png: Buffer, headers: Record<string, string>): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.type('image/png').header('Cache-Control', 'private, max-age=600').send(png);
}

/** A rendered image as it is sent. */
export interface RenderedImage {
  png: Buffer;
  headers: Record<string, string>;
}

const volumeIds = new WeakMap<Volume, number>();
let nextVolumeId = 1;

/** An id for one loaded volume, so that images of a volume loaded again are never mixed up. */
export function volumeId(v: Volume): number {
  let id = volumeIds.get(v);
  if (id === undefined) {
    id = nextVolumeId++;
    volumeIds.set(v, id);
  }
  return id;
}

const IMAGE = 'img:';
const isImage = (key: string): boolean => key.startsWith(IMAGE);

/**
 * The image for `key` from the cache, or made now and kept there: viewers scroll back and forth
 * and several look at the same study, so the same image is asked for again and again. Images
 * share the volumes' byte budget but take only free room or other images' room: an image never
 * evicts a volume or a volume stream.
 */
export async function renderCached(app: FastifyInstance, key: string, make: () => Promise<RenderedImage>): Promise<RenderedImage> {
  const cache = app.deps.volumes.cache;
  const hit = cache.peek(IMAGE + key) as RenderedImage | undefined;
  if (hit) return hit;
  const image = await make();
  cache.put(IMAGE + key, image, image.png.length + 512, isImage);
  return image;
}
