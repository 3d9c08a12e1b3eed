/**
 * One pane: an image of `/mpr` or `/oblique` drawn at its own resolution into a canvas, which
 * CSS scales to fill the pane at the image's true aspect (X-Circus-Pixel-Size), an SVG overlay
 * for the crosshair, orientation letters at the image's edges, the slice and window in the
 * corners, a loading indicator and the server's message when an image cannot be had.
 *
 * A pane wants one image at a time: asking for another releases the one under way (so a stale
 * request is aborted unless the prefetcher wants it too) and keeps the image on screen until the
 * new one is there. Its element carries what tests and scripts drive it by: `data-pane`,
 * `data-slice`, `data-ww`, `data-wl` (set by the viewer as its state changes), `data-src` (the
 * API URL of the image shown), `data-state` (`empty`, `loading`, `ready`, `error`).
 */
import { ApiError, isAbort, type LoadedImage } from './api.js';
import { clipLine, type EdgeLabels, fitBox, type PaneName, type Segment } from './geometry.js';
import type { ImageStore } from './images.js';

/** Each plane's colour, on its pane's border and on its line in the other panes. */
export const PANE_COLORS: Record<PaneName, string> = {
  axial: '#ef5350',
  coronal: '#66bb6a',
  sagittal: '#fdd835',
  oblique: '#ce93d8',
};

export const PANE_TITLES: Record<PaneName, string> = { axial: 'Axial', coronal: 'Coronal', sagittal: 'Sagittal', oblique: 'Oblique' };

/** A line of the overlay, in image pixel coordinates (pixel i spans [i, i + 1)). */
export interface OverlayLine extends Segment {
  color: string;
  dashed?: boolean;
  /** What the line is, for tests and styling (`axial`, `oblique`, ...). */
  kind: string;
}

export interface PaneStats {
  /** Images asked of the network (not in the cache when wanted). */
  requested: number;
  /** Images drawn. */
  drawn: number;
  /** Images wanted and found in the cache. */
  cacheHits: number;
  /** The most requests this pane had under way at once (one: stale ones are released first). */
  maxInFlight: number;
  /** performance.now() of the first and of the latest draw. */
  firstDrawAt: number | null;
  lastDrawAt: number | null;
}

const SVG = 'http://www.w3.org/2000/svg';

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, parent?: HTMLElement): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  parent?.appendChild(el);
  return el;
}

export class Pane {
  readonly el: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly svg: SVGSVGElement;
  private readonly edges: Record<keyof EdgeLabels, HTMLElement>;
  private readonly sliceInfo: HTMLElement;
  private readonly windowInfo: HTMLElement;
  private readonly message: HTMLElement;
  /** The image on screen. */
  image: LoadedImage | null = null;
  private wanted: string | null = null;
  private pendingUrl: string | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The user stepped before the pane's image came: its own requests wait for a pause. */
  private outrun = false;
  /** The pane's size in CSS pixels, read again on resize only. */
  private size: { w: number; h: number } | null = null;
  /** What the page shows now of the layout and of the overlay, so unchanged ones are not written again. */
  private layoutKey = '';
  private overlayKey = '';
  private lines: OverlayLine[] = [];
  private labels: EdgeLabels | null = null;
  /** Where the image is in the pane, CSS pixels. */
  box = { left: 0, top: 0, width: 0, height: 0 };
  readonly stats: PaneStats = { requested: 0, drawn: 0, cacheHits: 0, maxInFlight: 0, firstDrawAt: null, lastDrawAt: null };
  /** Called after each new image is drawn. */
  onDraw: () => void = () => {};
  /** Called when the pane shows the server's message instead of an image. */
  onFail: () => void = () => {};

  constructor(
    readonly name: PaneName,
    private readonly store: ImageStore,
  ) {
    this.el = element('section', 'pane');
    this.el.dataset.pane = name;
    this.el.dataset.state = 'empty';
    this.el.tabIndex = 0;
    this.el.style.setProperty('--pane-color', PANE_COLORS[name]);
    this.el.setAttribute('aria-label', `${PANE_TITLES[name]} pane`);
    this.canvas = element('canvas', 'image', this.el);
    this.canvas.width = 1;
    this.canvas.height = 1;
    const ctx = this.canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('no 2d canvas');
    this.ctx = ctx;
    this.svg = document.createElementNS(SVG, 'svg');
    this.svg.classList.add('overlay');
    this.el.appendChild(this.svg);
    const title = element('div', 'title', this.el);
    title.textContent = PANE_TITLES[name];
    this.edges = {
      left: element('div', 'edge edge-left', this.el),
      right: element('div', 'edge edge-right', this.el),
      top: element('div', 'edge edge-top', this.el),
      bottom: element('div', 'edge edge-bottom', this.el),
    };
    this.sliceInfo = element('div', 'info info-slice', this.el);
    this.windowInfo = element('div', 'info info-window', this.el);
    element('div', 'spinner', this.el).setAttribute('aria-hidden', 'true');
    this.message = element('div', 'message', this.el);
    this.message.setAttribute('role', 'status');
    store.onLoaded((image) => this.loaded(image));
  }

  /**
   * Asks for the image of `url` (relative API URL); it replaces the one on screen when it comes.
   * The request for the image wanted before, if still under way, is released (aborted unless
   * the prefetcher wants it too). `delay` (ms) is given while the pane is being scrolled: once a
   * step has come before the pane's image did (the user is faster than images come), images
   * neither in the cache nor under way are asked for only after `delay` without another step;
   * meanwhile the prefetcher's images ahead are shown as they arrive.
   */
  want(url: string, delay = 0): void {
    if (url === this.wanted) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pendingUrl !== null) {
      this.store.release(this.pendingUrl, this);
      this.pendingUrl = null;
      this.outrun = delay > 0;
    }
    if (delay === 0) this.outrun = false;
    this.wanted = url;
    const hit = this.store.cached(url);
    if (hit) {
      this.stats.cacheHits++;
      this.draw(hit);
      return;
    }
    this.el.dataset.state = 'loading';
    if (this.outrun && !this.store.isPending(url)) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.outrun = false;
        if (this.wanted === url && this.image?.url !== url) this.fetch(url);
      }, delay);
      return;
    }
    this.fetch(url);
  }

  /** Draws an image that came into the cache (from the prefetcher) when it is the one wanted. */
  loaded(image: LoadedImage): void {
    if (image.url !== this.wanted || this.image?.url === image.url) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    // The pane's own request (done now) or the prefetcher's.
    if (this.pendingUrl === image.url) this.pendingUrl = null;
    else this.stats.cacheHits++;
    this.draw(image);
  }

  private fetch(url: string): void {
    const hit = this.store.cached(url);
    if (hit) {
      this.stats.cacheHits++;
      this.draw(hit);
      return;
    }
    this.stats.requested++;
    this.pendingUrl = url;
    const request = this.store.request(url, this);
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.store.pendingFor(this));
    request.then(
      (image) => {
        if (this.wanted !== url || this.image?.url === url) return;
        this.pendingUrl = null;
        this.draw(image);
      },
      (err: unknown) => {
        if (isAbort(err) || this.wanted !== url) return;
        this.pendingUrl = null;
        this.fail(err instanceof ApiError ? err : new ApiError(0, String((err as Error)?.message ?? err)));
      },
    );
  }

  /** Shows the server's message instead of an image. */
  fail(err: ApiError): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pendingUrl !== null) {
      this.store.release(this.pendingUrl, this);
      this.pendingUrl = null;
    }
    this.image = null;
    this.el.dataset.state = 'error';
    this.el.dataset.status = String(err.status);
    this.el.dataset.src = '';
    this.message.textContent = err.status > 0 ? `${err.status}: ${err.message}` : err.message;
    this.canvas.style.visibility = 'hidden';
    this.svg.replaceChildren();
    this.overlayKey = '';
    this.onFail();
  }

  /** Shows a message while there is nothing to draw yet (opening a series). */
  notice(text: string): void {
    this.message.textContent = text;
  }

  private draw(image: LoadedImage): void {
    if (this.canvas.width !== image.width || this.canvas.height !== image.height) {
      this.canvas.width = image.width;
      this.canvas.height = image.height;
    }
    this.ctx.drawImage(image.bitmap, 0, 0);
    this.image = image;
    this.el.dataset.src = image.url;
    this.el.dataset.state = 'ready';
    delete this.el.dataset.status;
    this.message.textContent = '';
    this.canvas.style.visibility = 'visible';
    const now = performance.now();
    this.stats.drawn++;
    this.stats.firstDrawAt ??= now;
    this.stats.lastDrawAt = now;
    this.layout();
    this.onDraw();
  }

  /**
   * Places the image in the pane (after a new image, or a resize: `resized`) and redraws the
   * overlay. The pane's size is read only when it changes, and the page is written only when
   * something moved, so scrolling through images costs no layout.
   */
  layout(resized = false): void {
    if (resized || !this.size) this.size = { w: this.el.clientWidth, h: this.el.clientHeight };
    const { w, h } = this.size;
    const image = this.image;
    this.box = image ? fitBox(w, h, image.width * image.pixelSize[0], image.height * image.pixelSize[1]) : { left: 0, top: 0, width: 0, height: 0 };
    const key = [w, h, this.box.left, this.box.top, this.box.width, this.box.height].join(',');
    if (key !== this.layoutKey) {
      this.layoutKey = key;
      const s = this.canvas.style;
      s.left = `${this.box.left}px`;
      s.top = `${this.box.top}px`;
      s.width = `${this.box.width}px`;
      s.height = `${this.box.height}px`;
      this.svg.setAttribute('width', String(w));
      this.svg.setAttribute('height', String(h));
      this.placeEdges();
    }
    this.drawOverlay();
  }

  /** The image pixel coordinates (fractional) of a point of the page, or null off the image. */
  toImage(clientX: number, clientY: number): { u: number; v: number } | null {
    const image = this.image;
    if (!image || this.box.width <= 0) return null;
    const r = this.canvas.getBoundingClientRect();
    const u = ((clientX - r.left) / r.width) * image.width;
    const v = ((clientY - r.top) / r.height) * image.height;
    if (u < 0 || v < 0 || u >= image.width || v >= image.height) return null;
    return { u, v };
  }

  setOverlay(lines: OverlayLine[]): void {
    this.lines = lines;
    this.drawOverlay();
  }

  private drawOverlay(): void {
    const image = this.image;
    if (!image) {
      this.svg.replaceChildren();
      this.overlayKey = '';
      return;
    }
    const kx = this.box.width / image.width;
    const ky = this.box.height / image.height;
    const placed = this.lines.flatMap((raw) => {
      const line = clipLine(raw, image.width, image.height);
      if (!line) return [];
      const at = [this.box.left + line.x1 * kx, this.box.top + line.y1 * ky, this.box.left + line.x2 * kx, this.box.top + line.y2 * ky].map((v) =>
        v.toFixed(2),
      );
      return [{ line, at }];
    });
    const key = placed.map((p) => `${p.line.kind}:${p.at.join(',')}`).join(';');
    if (key === this.overlayKey) return;
    this.overlayKey = key;
    const shapes: SVGElement[] = [];
    for (const { line, at } of placed) {
      const el = document.createElementNS(SVG, 'line');
      el.setAttribute('x1', at[0]);
      el.setAttribute('y1', at[1]);
      el.setAttribute('x2', at[2]);
      el.setAttribute('y2', at[3]);
      el.setAttribute('stroke', line.color);
      el.setAttribute('data-line', line.kind);
      if (line.dashed) el.setAttribute('stroke-dasharray', '6 4');
      shapes.push(el);
    }
    this.svg.replaceChildren(...shapes);
  }

  setLabels(labels: EdgeLabels | null): void {
    const same = labels && this.labels && (['left', 'right', 'top', 'bottom'] as const).every((side) => labels[side] === this.labels![side]);
    if (same || (!labels && !this.labels)) return;
    this.labels = labels;
    for (const side of ['left', 'right', 'top', 'bottom'] as const) this.edges[side].textContent = labels?.[side] ?? '';
    this.placeEdges();
  }

  /** Letters sit at the middle of the image's edges, inside the pane. */
  private placeEdges(): void {
    if (!this.labels) return;
    const b = this.box;
    const { w, h } = this.size ?? { w: this.el.clientWidth, h: this.el.clientHeight };
    const midX = b.width > 0 ? b.left + b.width / 2 : w / 2;
    const midY = b.height > 0 ? b.top + b.height / 2 : h / 2;
    const inside = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
    this.edges.left.style.left = `${inside(b.left + 4, 4, w - 40)}px`;
    this.edges.left.style.top = `${midY}px`;
    this.edges.right.style.left = `${inside(b.left + b.width - 4, 40, w - 4)}px`;
    this.edges.right.style.top = `${midY}px`;
    this.edges.top.style.left = `${midX}px`;
    this.edges.top.style.top = `${inside(b.top + 4, 24, h - 40)}px`;
    this.edges.bottom.style.left = `${midX}px`;
    this.edges.bottom.style.top = `${inside(b.top + b.height - 4, 40, h - 24)}px`;
  }

  setInfo(slice: string, window: string): void {
    if (this.sliceInfo.textContent !== slice) this.sliceInfo.textContent = slice;
    if (this.windowInfo.textContent !== window) this.windowInfo.textContent = window;
  }
}
