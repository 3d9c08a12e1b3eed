/**
 * Content negotiation of the DICOMweb routes (PS3.18 8.7): the media ranges of the Accept header
 * (or of the `accept` query parameter, which takes precedence), with their parameters (`type`,
 * `transfer-syntax`) and quality values, and the transfer syntaxes each image media type stands for.
 */
import { CircusError } from '../../core/errors.js';
import { TransferSyntax } from '../../dicom/tags.js';
import type { Query } from '../params.js';

export interface MediaRange {
  /** Lower case, e.g. `multipart/related`, `image/*`, `*\/*`. */
  readonly type: string;
  /** Parameters by lower-case name, values unquoted (`type` lower case too). */
  readonly params: ReadonlyMap<string, string>;
  readonly q: number;
}

/** More media ranges than this in one request is no real client. */
const MAX_RANGES = 64;

export const notAcceptable = (message: string): CircusError => new CircusError('NOT_ACCEPTABLE', message);

/** Splits at `sep` outside double quotes. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    else if (c === sep && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const MEDIA_TYPE = /^([a-z0-9!#$&^_.+-]+|\*)\/([a-z0-9!#$&^_.+-]+|\*)$/;

/** One media range; null for one that does not parse (ignored, as RFC 9110 clients expect). */
function parseRange(text: string): MediaRange | null {
  const [head, ...rest] = splitOutsideQuotes(text, ';');
  const type = head.trim().toLowerCase();
  if (!MEDIA_TYPE.test(type)) return null;
  const params = new Map<string, string>();
  let q = 1;
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    if (name === 'q') {
      const n = Number(value);
      q = Number.isFinite(n) && n >= 0 && n <= 1 ? n : 1;
    } else params.set(name, name === 'type' ? value.toLowerCase() : value);
  }
  return { type, params, q };
}

/**
 * The media ranges a request accepts, best first (stable for equal quality), without those of
 * quality 0; `*\/*` when it states none. The `accept` query parameter (PS3.18 8.3.3.1), when given,
 * replaces the header.
 */
export function acceptedRanges(header: string | string[] | undefined, query: Query): MediaRange[] {
  const fromQuery = query.accept;
  const text =
    fromQuery !== undefined ? (Array.isArray(fromQuery) ? fromQuery.join(',') : fromQuery) : Array.isArray(header) ? header.join(',') : header;
  if (text === undefined || text.trim() === '') return [{ type: '*/*', params: new Map(), q: 1 }];
  const pieces = splitOutsideQuotes(text, ',');
  if (pieces.length > MAX_RANGES) throw new CircusError('BAD_PARAMETER', `the Accept header lists more than ${MAX_RANGES} media ranges`);
  const ranges = pieces.map(parseRange).filter((r): r is MediaRange => r !== null && r.q > 0);
  return ranges
    .map((r, i) => ({ r, i }))
    .sort((a, b) => b.r.q - a.r.q || a.i - b.i)
    .map(({ r }) => r);
}

/** Whether `range` (e.g. `image/*`) covers the media type `type` (e.g. `image/png`). */
export function covers(range: string, type: string): boolean {
  if (range === '*/*' || range === type) return true;
  return range.endsWith('/*') && type.startsWith(range.slice(0, -1));
}

/**
 * The image media types of PS3.18 Table 8.7.3-2 for compressed frames, by transfer syntax; the
 * first syntax listed for a media type is its default (the one meant when the request names none).
 */
const IMAGE_MEDIA: Record<string, readonly string[]> = {
  'image/jpeg': ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70'],
  'image/jls': ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'],
  'image/jp2': ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  'image/jpx': ['1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93'],
  'image/jphc': ['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'],
  'image/dicom-rle': ['1.2.840.10008.1.2.5'],
};

const LEGACY_RLE = 'image/x-dicom-rle';

/** The media type compressed frames of a transfer syntax are sent as; undefined for native syntaxes and unknown ones. */
export function mediaTypeOfSyntax(transferSyntaxUid: string): string | undefined {
  for (const [type, syntaxes] of Object.entries(IMAGE_MEDIA)) if (syntaxes.includes(transferSyntaxUid)) return type;
  return undefined;
}

/** Frames as they go out: as stored (compressed, with their media type) or as uncompressed little-endian bytes. */
export type FrameDelivery = { kind: 'stored'; mediaType: string; transferSyntaxUid: string } | { kind: 'native' };

/**
 * How to send the frames of an instance stored in `storedSyntax` (compressed or not) for the
 * ranges a request accepts; null when none of them can be served. `application/octet-stream`
 * means uncompressed Explicit VR Little Endian bytes, unless its transfer-syntax is `*` (as
 * stored, whatever the media type); an image media type is served only as stored (no transcoding
 * to a compressed syntax), when the stored syntax is the one it names (its default when it names none, any with `*`).
 */
export function frameDelivery(ranges: readonly MediaRange[], storedSyntax: string, compressed: boolean): FrameDelivery | null {
  const storedMedia = compressed ? mediaTypeOfSyntax(storedSyntax) : undefined;
  for (const range of ranges) {
    let type = range.type;
    let ts = range.params.get('transfer-syntax');
    if (type === 'multipart/related') {
      type = range.params.get('type') ?? 'application/octet-stream';
    } else if (type !== '*/*') continue; // single-part frames are not offered
    if (type === '*/*' || type === 'application/octet-stream') {
      if (ts === '*' && compressed && storedMedia) return { kind: 'stored', mediaType: storedMedia, transferSyntaxUid: storedSyntax };
      if (ts === undefined || ts === '*' || ts === TransferSyntax.ExplicitLittle) return { kind: 'native' };
      continue;
    }
    // The name RLE frames had before PS3.18 registered image/dicom-rle (dicomweb-client asks for it): answered in it.
    const legacy = type === LEGACY_RLE && storedMedia === 'image/dicom-rle';
    if (!compressed || storedMedia === undefined || (!legacy && !covers(type, storedMedia))) continue;
    ts ??= IMAGE_MEDIA[storedMedia][0];
    if (ts === '*' || ts === storedSyntax) return { kind: 'stored', mediaType: legacy ? LEGACY_RLE : storedMedia, transferSyntaxUid: storedSyntax };
  }
  return null;
}

/**
 * The transfer syntax instances are retrieved in (`multipart/related; type="application/dicom"`),
 * or null when no range accepts DICOM instances: `*` for as stored, else a syntax UID (Explicit
 * VR Little Endian when the range names none, as PS3.18 makes it the default).
 */
export function instanceSyntax(ranges: readonly MediaRange[]): string | null {
  for (const range of ranges) {
    if (range.type === '*/*') return range.params.get('transfer-syntax') ?? TransferSyntax.ExplicitLittle;
    if (range.type !== 'multipart/related') continue;
    const type = range.params.get('type') ?? 'application/dicom';
    if (type !== 'application/dicom' && type !== '*/*') continue;
    return range.params.get('transfer-syntax') ?? TransferSyntax.ExplicitLittle;
  }
  return null;
}

/** Whether the ranges accept DICOM JSON (`application/dicom+json`, `application/json`, or any). */
export function acceptsJson(ranges: readonly MediaRange[]): boolean {
  return ranges.some((r) => covers(r.type, 'application/dicom+json') || covers(r.type, 'application/json'));
}

/**
 * The rendered media type for the ranges, of those the server renders (JPEG and PNG): that of
 * the first range (best quality value first) covering one of them, image/jpeg for a range covering
 * both (`*\/*`, `image/*`), as PS3.18 Table 8.7.4-1 makes it the default for single frame images;
 * null when no range covers either.
 */
export function renderedType(ranges: readonly MediaRange[]): 'image/jpeg' | 'image/png' | null {
  for (const r of ranges) {
    if (covers(r.type, 'image/jpeg')) return 'image/jpeg';
    if (r.type === 'image/png') return 'image/png';
  }
  return null;
}
