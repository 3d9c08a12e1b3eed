/**
 * The partial volume descriptor as the current CIRCUS API's clients give it: `start`, `end` and
 * `delta` in the query string (metadata, volume, scan), or an object in a WebSocket
 * BEGIN_TRANSFER's `partialVolumeDescriptor`. Either gives integers, or no descriptor; 400 when
 * malformed. Whether the descriptor fits the series (its rules against the image count) is
 * checked where the series is opened (services/seriesImages.ts, descriptorSlices).
 */
import { badParameter } from '../core/errors.js';
import type { PartialVolumeDescriptor } from '../services/seriesImages.js';
import { numberParam, type Query } from './params.js';

/** `start`, `end` and `delta` from a query: all three (integers) or none; 400 otherwise. */
export function descriptorParam(query: Query): PartialVolumeDescriptor | undefined {
  const start = numberParam(query, 'start', { integer: true });
  const end = numberParam(query, 'end', { integer: true });
  const delta = numberParam(query, 'delta', { integer: true });
  const given = [start, end, delta].filter((v) => v !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) throw badParameter('Volume descriptor is invalid: start, end and delta must be given together');
  return { start: start!, end: end!, delta: delta! };
}

/** A descriptor given as a JSON object (the WebSocket's BEGIN_TRANSFER); 400 when malformed. */
export function descriptorOf(value: unknown): PartialVolumeDescriptor | undefined {
  if (value === undefined || value === null) return undefined;
  const d = value as Record<string, unknown>;
  if (typeof d !== 'object' || ![d.start, d.end, d.delta].every((v) => typeof v === 'number' && Number.isInteger(v))) {
    throw badParameter('Volume descriptor is invalid: start, end and delta must be integers');
  }
  return { start: d.start as number, end: d.end as number, delta: d.delta as number };
}
