/** What the image routes share: window parameters and headers. */
import type { FastifyReply } from 'fastify';
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
