/**
 * The page's state as its URL query, so a view can be shared: `series`, `token` (when the page
 * was opened with one), the window (`ww`, `wl`), the cursor (`c=x,y,z` in voxel index
 * coordinates) and the oblique angle (`a`, degrees). Values that do not parse are ignored, so a
 * hand-edited URL opens with defaults instead of failing. No DOM here.
 */
import { normalizeAngle, type Vec3 } from './geometry.js';

export interface ViewState {
  series: string | null;
  token: string | null;
  ww: number | null;
  wl: number | null;
  cursor: Vec3 | null;
  /** Oblique angle in degrees. */
  angle: number;
}

const finite = (text: string | null): number | null => {
  if (text === null || text.trim() === '') return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
};

export function parseState(search: string): ViewState {
  const q = new URLSearchParams(search);
  const ww = finite(q.get('ww'));
  const wl = finite(q.get('wl'));
  const parts = (q.get('c') ?? '').split(',').map((p) => finite(p));
  const cursor = parts.length === 3 && parts.every((p) => p !== null && p >= 0) ? (parts as Vec3) : null;
  const series = q.get('series')?.trim() || null;
  return {
    series,
    token: q.get('token') || null,
    // A window is only taken whole (both values) and with a positive width.
    ww: ww !== null && ww > 0 && wl !== null ? ww : null,
    wl: ww !== null && ww > 0 && wl !== null ? wl : null,
    cursor,
    angle: normalizeAngle(finite(q.get('a')) ?? 0),
  };
}

/** The query string (with its `?`) of a state: series first, the rest only when set. */
export function stateSearch(s: ViewState): string {
  const q = new URLSearchParams();
  if (s.series) q.set('series', s.series);
  if (s.token) q.set('token', s.token);
  if (s.ww !== null && s.wl !== null) {
    q.set('ww', String(s.ww));
    q.set('wl', String(s.wl));
  }
  if (s.cursor) q.set('c', s.cursor.join(','));
  if (s.angle !== 0) q.set('a', String(s.angle));
  const text = q.toString().replace(/%2C/g, ',');
  return text ? `?${text}` : '';
}
