/**
 * Rendered frames (PS3.18 8.3.5, 10.4): one frame of an instance as an 8-bit image a browser
 * shows, from its uncompressed bytes.
 *
 * - Greyscale: stored value -> modality value (Rescale Slope and Intercept) -> the VOI window
 *   (the `window` parameter, else the instance's first Window Center/Width, else the frame's
 *   value range) through the VOI LUT function PS3.3 C.11.2.1.2 defines: `linear` (the default),
 *   `linear-exact` or `sigmoid`, to 0..255 rounded to nearest; MONOCHROME1 is inverted after.
 * - Colour (RGB, YBR_FULL; planar or interleaved) is shown as RGB, without a window.
 * - `viewport=vw,vh[,sx,sy,sw,sh]`: the region of the frame from (sx, sy) of sw x sh pixels
 *   (the whole frame by default; a negative sw or sh flips the image along that axis) scaled to fit
 *   inside vw x vh, aspect ratio kept; the image is the scaled region's size. Scaling down
 *   averages the pixels each output pixel covers, scaling up takes the nearest pixel.
 */
import { badParameter } from '../core/errors.js';

/** How a frame's uncompressed bytes (little endian) hold its values. */
export interface FrameLayout {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number;
  photometricInterpretation: string;
  planarConfiguration: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  windowCenter?: number;
  windowWidth?: number;
}

export type VoiFunction = 'linear' | 'linear-exact' | 'sigmoid';

export interface RenderWindow {
  center: number;
  width: number;
  fn: VoiFunction;
}

export interface Viewport {
  vw: number;
  vh: number;
  /** Source region; the whole frame when absent. */
  sx?: number;
  sy?: number;
  sw?: number;
  sh?: number;
}

export interface RenderedPixels {
  /** Grey (1 channel) or RGB (3), row by row. */
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** Largest rendered image side, in pixels. */
export const MAX_RENDERED_SIDE = 8192;

const finite = (text: string, what: string): number => {
  const t = text.trim();
  const n = t === '' ? Number.NaN : Number(t);
  if (!Number.isFinite(n)) throw badParameter(`${what} must be a number, got '${text.slice(0, 40)}'`);
  return n;
};

/** The `window` parameter: `center,width[,function]`. */
export function parseWindow(text: string): RenderWindow {
  const parts = text.split(',');
  if (parts.length < 2 || parts.length > 3) throw badParameter(`parameter 'window' must be center,width[,function], got '${text.slice(0, 60)}'`);
  const center = finite(parts[0], "the window's center");
  const width = finite(parts[1], "the window's width");
  const fn = (parts[2]?.trim().toLowerCase() || 'linear') as VoiFunction;
  if (fn !== 'linear' && fn !== 'linear-exact' && fn !== 'sigmoid') {
    throw badParameter(`the window function must be linear, linear-exact or sigmoid, got '${parts[2].slice(0, 40)}'`);
  }
  if (fn === 'linear' ? !(width >= 1) : !(width > 0)) {
    throw badParameter(`the window's width must be ${fn === 'linear' ? 'at least 1' : 'greater than 0'} for ${fn}, got ${width}`);
  }
  return { center, width, fn };
}

/** The `viewport` parameter: `vw,vh` or `vw,vh,sx,sy,sw,sh` (sx..sh may be empty: the whole frame). */
export function parseViewport(text: string): Viewport {
  const parts = text.split(',');
  if (parts.length !== 2 && parts.length !== 6)
    throw badParameter(`parameter 'viewport' must be vw,vh or vw,vh,sx,sy,sw,sh, got '${text.slice(0, 60)}'`);
  const vw = finite(parts[0], "the viewport's width");
  const vh = finite(parts[1], "the viewport's height");
  for (const [v, name] of [
    [vw, 'width'],
    [vh, 'height'],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_RENDERED_SIDE)
      throw badParameter(`the viewport's ${name} must be a whole number from 1 to ${MAX_RENDERED_SIDE}, got ${v}`);
  }
  const out: Viewport = { vw, vh };
  if (parts.length === 6) {
    const [sx, sy, sw, sh] = parts.slice(2).map((p, i) => (p.trim() === '' ? undefined : finite(p, `viewport value ${i + 3}`)));
    for (const v of [sx, sy, sw, sh])
      if (v !== undefined && !Number.isInteger(v)) throw badParameter(`the viewport's source region must be whole pixels, got ${v}`);
    if (sw === 0 || sh === 0) throw badParameter("the viewport's source region must not be empty");
    Object.assign(out, { sx, sy, sw, sh });
  }
  return out;
}

/** The `quality` parameter: 1..100. */
export function parseQuality(text: string): number {
  const q = finite(text, "parameter 'quality'");
  if (!Number.isInteger(q) || q < 1 || q > 100) throw badParameter(`parameter 'quality' must be a whole number from 1 to 100, got ${q}`);
  return q;
}

/** Whether this machine stores 16-bit words little endian (as frames are sent), so a frame's bytes can be read as a Uint16Array. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The stored values of a greyscale frame, sign and BitsStored applied. */
function storedValues(bytes: Uint8Array, f: FrameLayout): Float64Array | Int32Array {
  const n = f.rows * f.columns;
  const out = new Int32Array(n);
  const shift = f.highBit + 1 - f.bitsStored;
  const bits = f.bitsStored;
  const mask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
  const signed = f.pixelRepresentation === 1;
  const span = 2 ** bits;
  const half = 2 ** (bits - 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bytesPer = f.bitsAllocated / 8;
  if (f.bitsAllocated === 1) {
    for (let i = 0; i < n; i++) out[i] = (bytes[i >> 3] >> (i & 7)) & 1;
    return out;
  }
  if (bytes.length < n * bytesPer) throw badParameter('the frame is shorter than its rows and columns say');
  if (bytesPer <= 2 && bits >= 1 && shift >= 0 && shift + bits <= 8 * bytesPer) {
    // Words of 8 or 16 bits: shifts and masks in 32-bit integers (sign from the stored top bit).
    const up = 32 - bits;
    if (bytesPer === 1) {
      for (let i = 0; i < n; i++) {
        const v = (bytes[i] >>> shift) & mask;
        out[i] = signed ? (v << up) >> up : v;
      }
    } else if (LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
      const words = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const v = (words[i] >>> shift) & mask;
        out[i] = signed ? (v << up) >> up : v;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) >>> shift) & mask;
        out[i] = signed ? (v << up) >> up : v;
      }
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const word = bytesPer === 1 ? bytes[i] : bytesPer === 2 ? view.getUint16(i * 2, true) : view.getUint32(i * 4, true);
    let v = Math.floor(word / 2 ** shift) % (mask + 1);
    if (signed && v >= half) v -= span;
    out[i] = v;
  }
  return out;
}

/** The window of a frame when the request gives none: the instance's, else the value range. */
function defaultWindow(values: ArrayLike<number>, f: FrameLayout): RenderWindow {
  if (f.windowCenter !== undefined && f.windowWidth !== undefined && f.windowWidth >= 1) {
    return { center: f.windowCenter, width: f.windowWidth, fn: 'linear' };
  }
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const m = values[i] * f.rescaleSlope + f.rescaleIntercept;
    if (m < lo) lo = m;
    if (m > hi) hi = m;
  }
  if (!Number.isFinite(lo)) return { center: 0, width: 1, fn: 'linear' };
  return { center: (lo + hi) / 2, width: Math.max(1, hi - lo), fn: 'linear-exact' };
}

/** One modality value through a VOI window to 0..255 (PS3.3 C.11.2.1.2, output range 0..255), rounded. */
export function voi(x: number, w: RenderWindow): number {
  let y: number;
  if (w.fn === 'linear') {
    const c = w.center - 0.5;
    const half = (w.width - 1) / 2;
    if (x <= c - half) y = 0;
    else if (x > c + half) y = 255;
    else y = ((x - c) / (w.width - 1) + 0.5) * 255;
  } else if (w.fn === 'linear-exact') {
    if (x <= w.center - w.width / 2) y = 0;
    else if (x > w.center + w.width / 2) y = 255;
    else y = ((x - w.center) / w.width + 0.5) * 255;
  } else {
    y = 255 / (1 + Math.exp((-4 * (x - w.center)) / w.width));
  }
  return Math.min(255, Math.max(0, Math.round(y)));
}

/**
 * Integer stored values repeat: through a table over the frame's value range, when that range is
 * small (2^17 values at most); false, with `out` untouched, when it is not. A function of its own
 * so that its loops see one array type.
 */
function tabled(values: Int32Array, f: FrameLayout, w: RenderWindow, invert: boolean, out: Uint8Array): boolean {
  const n = values.length;
  let lo = values[0];
  let hi = values[0];
  for (let i = 1; i < n; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    else if (v > hi) hi = v;
  }
  if (hi - lo > 1 << 17) return false;
  const table = new Uint8Array(hi - lo + 1);
  for (let v = lo; v <= hi; v++) {
    const g = voi(v * f.rescaleSlope + f.rescaleIntercept, w);
    table[v - lo] = invert ? 255 - g : g;
  }
  for (let i = 0; i < n; i++) out[i] = table[values[i] - lo];
  return true;
}

/** The frame as 8-bit grey or RGB at its own size. */
export function renderFrame(bytes: Uint8Array, f: FrameLayout, window?: RenderWindow): RenderedPixels {
  const n = f.rows * f.columns;
  if (f.samplesPerPixel === 3) {
    if (f.bitsAllocated !== 8) throw badParameter('colour frames of more than 8 bits a sample are not rendered');
    if (bytes.length < n * 3) throw badParameter('the frame is shorter than its rows and columns say');
    const rgb = new Uint8Array(n * 3);
    const planar = f.planarConfiguration === 1;
    const ybr = f.photometricInterpretation === 'YBR_FULL';
    for (let i = 0; i < n; i++) {
      let a = planar ? bytes[i] : bytes[i * 3];
      let b = planar ? bytes[n + i] : bytes[i * 3 + 1];
      let c = planar ? bytes[2 * n + i] : bytes[i * 3 + 2];
      if (ybr) {
        // PS3.3 C.7.6.3.1.2: YBR_FULL to RGB.
        const y = a;
        const cb = b - 128;
        const cr = c - 128;
        a = y + 1.402 * cr;
        b = y - 0.344136 * cb - 0.714136 * cr;
        c = y + 1.772 * cb;
      }
      rgb[i * 3] = Math.min(255, Math.max(0, Math.round(a)));
      rgb[i * 3 + 1] = Math.min(255, Math.max(0, Math.round(b)));
      rgb[i * 3 + 2] = Math.min(255, Math.max(0, Math.round(c)));
    }
    return { pixels: rgb, width: f.columns, height: f.rows, channels: 3 };
  }
  if (f.samplesPerPixel !== 1) throw badParameter(`frames of ${f.samplesPerPixel} samples a pixel are not rendered`);
  if (f.photometricInterpretation !== 'MONOCHROME1' && f.photometricInterpretation !== 'MONOCHROME2') {
    throw badParameter(`frames of photometric interpretation ${f.photometricInterpretation} are not rendered`);
  }
  const values = storedValues(bytes, f);
  const w = window ?? defaultWindow(values, f);
  const invert = f.photometricInterpretation === 'MONOCHROME1';
  const out = new Uint8Array(n);
  if (values instanceof Int32Array && tabled(values, f, w, invert, out)) return { pixels: out, width: f.columns, height: f.rows, channels: 1 };
  for (let i = 0; i < n; i++) {
    const g = voi(values[i] * f.rescaleSlope + f.rescaleIntercept, w);
    out[i] = invert ? 255 - g : g;
  }
  return { pixels: out, width: f.columns, height: f.rows, channels: 1 };
}

/** The region a viewport takes from an image and the size it is scaled to. */
export function viewportGeometry(
  width: number,
  height: number,
  v: Viewport,
): { sx: number; sy: number; sw: number; sh: number; ow: number; oh: number } {
  const sx = v.sx ?? 0;
  const sy = v.sy ?? 0;
  const sw = v.sw ?? width - sx;
  const sh = v.sh ?? height - sy;
  const x0 = Math.min(sx, sx + sw);
  const y0 = Math.min(sy, sy + sh);
  if (x0 < 0 || y0 < 0 || Math.max(sx, sx + sw) > width || Math.max(sy, sy + sh) > height || sw === 0 || sh === 0) {
    throw badParameter(`the viewport's source region ${sx},${sy},${sw},${sh} is not inside the ${width} x ${height} frame`);
  }
  const scale = Math.min(v.vw / Math.abs(sw), v.vh / Math.abs(sh));
  return { sx, sy, sw, sh, ow: Math.max(1, Math.round(Math.abs(sw) * scale)), oh: Math.max(1, Math.round(Math.abs(sh) * scale)) };
}

/** The image through a viewport (see the module's comment). */
export function applyViewport(img: RenderedPixels, v: Viewport): RenderedPixels {
  const g = viewportGeometry(img.width, img.height, v);
  const { ow, oh } = g;
  const ch = img.channels;
  const aw = Math.abs(g.sw);
  const ah = Math.abs(g.sh);
  const x0 = Math.min(g.sx, g.sx + g.sw);
  const y0 = Math.min(g.sy, g.sy + g.sh);
  const flipX = g.sw < 0;
  const flipY = g.sh < 0;
  if (ow === aw && oh === ah && !flipX && !flipY && x0 === 0 && y0 === 0 && aw === img.width && ah === img.height) return img;
  const out = new Uint8Array(ow * oh * ch);
  const fx = aw / ow;
  const fy = ah / oh;
  for (let oy = 0; oy < oh; oy++) {
    const ty = flipY ? oh - 1 - oy : oy;
    const ya = ty * fy;
    const yb = (ty + 1) * fy;
    for (let ox = 0; ox < ow; ox++) {
      const tx = flipX ? ow - 1 - ox : ox;
      const xa = tx * fx;
      const xb = (tx + 1) * fx;
      const o = (oy * ow + ox) * ch;
      if (fx <= 1 && fy <= 1) {
        // Scaling up: the nearest source pixel.
        const s = ((y0 + Math.min(ah - 1, Math.floor((ya + yb) / 2))) * img.width + x0 + Math.min(aw - 1, Math.floor((xa + xb) / 2))) * ch;
        for (let c = 0; c < ch; c++) out[o + c] = img.pixels[s + c];
        continue;
      }
      // Scaling down: the mean of the covered source pixels, each weighted by the area it covers.
      for (let c = 0; c < ch; c++) {
        let sum = 0;
        let area = 0;
        for (let y = Math.floor(ya); y < Math.ceil(yb) && y < ah; y++) {
          const wy = Math.min(yb, y + 1) - Math.max(ya, y);
          for (let x = Math.floor(xa); x < Math.ceil(xb) && x < aw; x++) {
            const wgt = wy * (Math.min(xb, x + 1) - Math.max(xa, x));
            sum += img.pixels[((y0 + y) * img.width + x0 + x) * ch + c] * wgt;
            area += wgt;
          }
        }
        out[o + c] = Math.round(sum / area);
      }
    }
  }
  return { pixels: out, width: ow, height: oh, channels: ch };
}
