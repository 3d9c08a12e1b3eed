/**
 * The four-pane viewer of one series: axial, coronal and sagittal `/mpr` images and an
 * `/oblique` image, linked by one cursor (voxel index coordinates) and one window.
 *
 * - Clicking (or dragging) in a pane moves the cursor there; the other panes follow.
 * - The mouse wheel and the arrow keys move the pane under the mouse through its slices (the
 *   oblique pane through parallel planes; left and right turn it by a degree).
 * - Dragging with the right button, or with Shift or Ctrl held, changes the window; the presets
 *   list the series' DICOM and estimated windows and common CT windows.
 * - Dragging in the oblique pane turns its plane about the vertical axis through the cursor.
 *
 * Opening a series asks `/series/:sid/metadata` (answered after the header pass, before the
 * voxels are read) and `/metadata` (the whole volume) together: with a window known from the
 * first (the URL's, else the DICOM one) the panes ask for their images at once, and the axial
 * image can come before the rest of the series is read. The orientation letters and the window
 * presets come with `/metadata`.
 *
 * Changes are gathered into one update per animation frame. Each pane then wants one image;
 * the prefetcher fetches the neighbours of each pane's slice (eight ahead in the direction the
 * user is scrolling); the state goes into the page's URL.
 */
import { Api, ApiError } from './api.js';
import {
  edgeLabels,
  type Geometry,
  geometryOf,
  insideVolume,
  type Metadata,
  normalizeAngle,
  obliquePlane,
  obliquePoint,
  obliqueSteps,
  type Orientation,
  PANES,
  type PaneName,
  planeAxis,
  planeIndex,
  planePosition,
  sliceOf,
  stepOblique,
  type Vec3,
} from './geometry.js';
import { ImageStore, Prefetcher } from './images.js';
import { type OverlayLine, Pane, PANE_COLORS } from './pane.js';
import { stateSearch, type ViewState } from './state.js';
import { draggedAngle, draggedWindow, presetsFor, type WindowLevel, type WindowPreset, wholeWindow } from './windows.js';

/** What `/series/:sid/metadata` answers that the viewer uses. */
interface QuickMetadata {
  voxelCount: Vec3;
  voxelSize: Vec3;
  dicomWindow?: WindowLevel;
}

const ORTHOGONAL: readonly Orientation[] = ['axial', 'coronal', 'sagittal'];
/** Images kept decoded in the page, in bytes (RGBA). */
const CACHE_BYTES = 384 * 1024 * 1024;
/** How far ahead of a scrolling pane the prefetcher goes. */
const PREFETCH_AHEAD = 8;
/** How long after the last step a pane counts as scrolling (ms). */
const SCROLLING_MS = 1500;
/** A wheel movement this large (CSS pixels) is one step; smaller ones (touchpads) add up to it. */
const WHEEL_STEP = 50;

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, parent?: HTMLElement, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  parent?.appendChild(el);
  return el;
}

/** An angle in degrees as the API's radians, to six decimals. */
const radians = (deg: number): string => String(Number(((deg * Math.PI) / 180).toFixed(6)) + 0);

const format = (v: number, digits = 2): string => String(Number(v.toFixed(digits)));

interface Drag {
  pane: Pane;
  kind: 'window' | 'cursor' | 'rotate';
  pointerId: number;
  x0: number;
  y0: number;
  window0: WindowLevel;
  angle0: number;
  moved: boolean;
}

export class Viewer {
  private readonly store: ImageStore;
  private readonly prefetcher: Prefetcher;
  readonly panes: Record<PaneName, Pane>;
  private readonly series: string;
  private readonly token: string | null;

  private dims: Vec3 | null = null;
  private voxelSize: Vec3 | null = null;
  private meta: Metadata | null = null;
  private geometry: Geometry | null = null;
  private cursor: Vec3 | null;
  private window: WindowLevel | null;
  private angle: number;
  private active: PaneName = 'axial';
  private presets: WindowPreset[] = [];
  private failed = false;
  /** The pane being scrolled: its direction and the times of its latest steps. */
  private steps: { pane: PaneName; dir: number; times: number[] } | null = null;
  private wheelRest = 0;
  private drag: Drag | null = null;
  private frame = 0;
  private urlTimer: ReturnType<typeof setTimeout> | undefined;
  /** The cursor and angle each oblique URL was made for (to place a click in its image). */
  private readonly obliqueMade = new Map<string, { c: Vec3; angle: number }>();
  /** performance.now() when all four panes first had an image. */
  allShownAt: number | null = null;
  /** Every pane has had an answer to its first request (see settled). */
  private firstAnswered = false;
  /** performance.now() when the series was asked for (0 when by the page's own load). */
  readonly openedAt: number;

  private readonly root: HTMLElement;
  private readonly titleText: HTMLElement;
  private readonly details: HTMLElement;
  private readonly presetSelect: HTMLSelectElement;
  private readonly windowText: HTMLElement;
  private readonly banner: HTMLElement;

  constructor(
    parent: HTMLElement,
    private readonly api: Api,
    state: ViewState,
    openedAt = 0,
  ) {
    if (!state.series) throw new Error('no series');
    this.openedAt = openedAt;
    this.series = state.series;
    this.token = state.token;
    this.cursor = state.cursor;
    this.window = state.ww !== null && state.wl !== null ? wholeWindow({ width: state.ww, level: state.wl }) : null;
    this.angle = state.angle;
    this.store = new ImageStore(api, CACHE_BYTES);
    this.prefetcher = new Prefetcher(this.store, 2);

    this.root = element('div', 'viewer', parent);
    this.root.dataset.state = 'loading';
    const bar = element('header', 'bar', this.root);
    const back = element('a', 'back', bar, '← Series');
    back.href = './';
    const title = element('div', 'series-title', bar);
    this.titleText = element('strong', '', title, this.series);
    this.details = element('span', 'details', title);
    const presetLabel = element('label', 'presets', bar, 'Window ');
    this.presetSelect = element('select', '', presetLabel);
    this.presetSelect.setAttribute('aria-label', 'window preset');
    this.presetSelect.addEventListener('change', () => this.choosePreset(this.presetSelect.value));
    this.windowText = element('span', 'window-text', bar);
    const reset = element('button', 'reset', bar, 'Reset');
    reset.type = 'button';
    reset.addEventListener('click', () => this.reset());
    element('span', 'help', bar, 'wheel or ↑↓: slice · click: crosshair · right-drag or Shift-drag: window · drag in oblique: rotate');
    this.banner = element('div', 'banner', this.root);
    this.banner.setAttribute('role', 'alert');
    this.banner.hidden = true;
    const grid = element('div', 'grid', this.root);

    const panes = {} as Record<PaneName, Pane>;
    for (const name of PANES) {
      const pane = new Pane(name, this.store);
      grid.appendChild(pane.el);
      pane.onDraw = () => this.drawn();
      pane.onFail = () => this.settled();
      this.attach(pane);
      panes[name] = pane;
    }
    this.panes = panes;
    new ResizeObserver(() => {
      for (const p of Object.values(this.panes)) p.layout(true);
    }).observe(grid);
    document.addEventListener('keydown', (e) => this.key(e));
    this.renderPresets();
  }

  /** Counters for tests and for anyone curious (window.circusViewer). */
  stats(): Record<string, unknown> {
    const panes: Record<string, unknown> = {};
    for (const name of PANES) panes[name] = { ...this.panes[name].stats };
    return {
      allShownAt: this.allShownAt,
      openedAt: this.openedAt,
      panes,
      store: { ...this.store.stats, cacheEntries: this.store.cacheEntries },
      prefetched: this.prefetcher.prefetched,
    };
  }

  async open(): Promise<void> {
    for (const pane of Object.values(this.panes)) pane.notice('Loading…');
    const quick = this.api.json<QuickMetadata>(`series/${encodeURIComponent(this.series)}/metadata`).catch(() => null);
    const full = this.api.json<Metadata>(Api.path('metadata', { series: this.series }));
    quick.then((q) => {
      if (q && !this.meta && !this.failed) this.adopt(q.voxelCount, q.voxelSize, q.dicomWindow ?? null);
    });
    let meta: Metadata;
    try {
      meta = await full;
    } catch (err) {
      this.failAll(err instanceof ApiError ? err : new ApiError(0, String(err)));
      return;
    }
    this.meta = meta;
    this.geometry = geometryOf(meta);
    this.presets = presetsFor(meta);
    this.adopt(meta.voxelCount, meta.voxelSize, meta.dicomWindow ?? meta.estimatedWindow);
    this.root.dataset.state = 'ready';
    const [nx, ny, nz] = meta.voxelCount;
    const [sx, sy, sz] = meta.voxelSize;
    const description = meta.seriesDescription || `Series ${this.series}`;
    this.titleText.textContent = description;
    this.details.textContent = [meta.modality, `${nx} × ${ny} × ${nz}`, `${format(sx, 3)} × ${format(sy, 3)} × ${format(sz, 3)} mm`]
      .filter(Boolean)
      .join(' · ');
    document.title = `${description} – circus-rs`;
    this.renderPresets();
    this.scheduleUpdate();
  }

  /** Takes the volume's size, a cursor in the middle unless the URL gave one inside, and a window unless one is set. */
  private adopt(dims: Vec3, voxelSize: Vec3, window: WindowLevel | null): void {
    this.dims = [...dims] as Vec3;
    this.voxelSize = [...voxelSize] as Vec3;
    if (!this.cursor || !insideVolume(this.dims, this.cursor)) this.cursor = this.middle();
    if (!this.window && window) this.window = wholeWindow(window);
    this.scheduleUpdate();
  }

  private middle(): Vec3 {
    const [nx, ny, nz] = this.dims!;
    return [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];
  }

  private failAll(err: ApiError): void {
    this.failed = true;
    this.root.dataset.state = 'error';
    this.banner.textContent = err.status > 0 ? `${err.status}: ${err.message}` : err.message;
    this.banner.hidden = false;
    for (const pane of Object.values(this.panes)) pane.fail(err);
  }

  private scheduleUpdate(): void {
    if (this.frame === 0) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.update();
      });
    }
  }

  private mprUrl(mode: Orientation, target: number): string {
    const w = this.window!;
    return Api.path('mpr', { series: this.series, mode, target, ww: w.width, wl: w.level });
  }

  /**
   * The oblique image through the cursor at an angle. Its pixels do not depend on the cursor's
   * z (the plane stands on the axial plane and spans every slice), so z is given as 0 and the
   * image is shared by every slice; the viewer places the cursor's row itself.
   */
  private obliqueUrl(c: Vec3, angle: number): string {
    const w = this.window!;
    const url = Api.path('oblique', { series: this.series, a: radians(angle), b: 'axial', c: `${c[0]},${c[1]},0`, ww: w.width, wl: w.level });
    if (this.obliqueMade.size > 4096) this.obliqueMade.clear();
    this.obliqueMade.set(url, { c: [c[0], c[1], 0], angle });
    return url;
  }

  private update(): void {
    const { dims, voxelSize, cursor, window } = this;
    if (this.failed || !dims || !voxelSize || !cursor || !window) return;
    for (const mode of ORTHOGONAL) {
      const pane = this.panes[mode];
      const t = sliceOf({ dims }, cursor, mode);
      pane.el.dataset.slice = String(t);
      pane.want(this.mprUrl(mode, t), this.requestDelay(mode));
    }
    const oblique = this.panes.oblique;
    oblique.el.dataset.slice = String(obliquePlane(voxelSize, cursor, this.angle));
    oblique.el.dataset.angle = String(this.angle);
    oblique.want(this.obliqueUrl(cursor, this.angle), this.requestDelay('oblique'));
    for (const pane of Object.values(this.panes)) {
      pane.el.dataset.ww = String(window.width);
      pane.el.dataset.wl = String(window.level);
    }
    this.drawOverlays();
    this.drawLabels();
    this.prefetch();
    this.saveState();
  }

  /** Called when a pane draws an image. */
  private drawn(): void {
    this.drawOverlays();
    if (this.allShownAt === null && PANES.every((name) => this.panes[name].image !== null)) this.allShownAt = performance.now();
    this.settled();
  }

  /**
   * Once every pane has an answer to its first request (an image, or the server's message: an
   * oblique plane over maxImageSide is a 413 for good), neighbours may be prefetched.
   */
  private settled(): void {
    if (this.firstAnswered) return;
    if (!PANES.every((name) => this.panes[name].image !== null || this.panes[name].el.dataset.state === 'error')) return;
    this.firstAnswered = true;
    this.prefetch();
  }

  private drawOverlays(): void {
    const { dims, voxelSize, cursor } = this;
    if (!dims || !voxelSize || !cursor) return;
    const x = sliceOf({ dims }, cursor, 'sagittal') + 0.5;
    const y = sliceOf({ dims }, cursor, 'coronal') + 0.5;
    const z = sliceOf({ dims }, cursor, 'axial') + 0.5;
    const [nx, ny, nz] = dims;
    const vertical = (at: number, h: number, kind: PaneName | 'cursor', dashed = false): OverlayLine => ({
      x1: at,
      y1: 0,
      x2: at,
      y2: h,
      color: kind === 'cursor' ? 'rgba(255,255,255,0.7)' : PANE_COLORS[kind],
      kind,
      dashed,
    });
    const horizontal = (at: number, w: number, kind: PaneName): OverlayLine => ({ x1: 0, y1: at, x2: w, y2: at, color: PANE_COLORS[kind], kind });
    const { eu, fixedStep } = obliqueSteps(voxelSize, this.angle);
    const reach = nx + ny;
    const norm = Math.hypot(eu[0], eu[1]) || 1;
    const ox = cursor[0] + 0.5;
    const oy = cursor[1] + 0.5;
    const obliqueLine: OverlayLine = {
      x1: ox - (eu[0] / norm) * reach,
      y1: oy - (eu[1] / norm) * reach,
      x2: ox + (eu[0] / norm) * reach,
      y2: oy + (eu[1] / norm) * reach,
      color: PANE_COLORS.oblique,
      dashed: true,
      kind: 'oblique',
    };
    this.panes.axial.setOverlay([vertical(x, ny, 'sagittal'), horizontal(y, nx, 'coronal'), obliqueLine]);
    this.panes.coronal.setOverlay([vertical(x, nz, 'sagittal'), horizontal(z, nx, 'axial')]);
    this.panes.sagittal.setOverlay([vertical(y, nz, 'coronal'), horizontal(z, ny, 'axial')]);
    const image = this.panes.oblique.image;
    if (image?.center) {
      const row = (z - 0.5) / fixedStep + 0.5;
      this.panes.oblique.setOverlay([vertical(image.center[0] + 0.5, image.height, 'cursor', true), horizontal(row, image.width, 'axial')]);
    }
  }

  private drawLabels(): void {
    const { dims, voxelSize, cursor, window, geometry } = this;
    if (!dims || !voxelSize || !cursor || !window) return;
    const windowText = `W ${window.width} L ${window.level}`;
    for (const mode of ORTHOGONAL) {
      const t = sliceOf({ dims }, cursor, mode);
      let text = `${t + 1}/${dims[planeAxis(mode)]}`;
      if (geometry) {
        const p = planePosition(geometry, mode, cursor);
        text += ` · ${p.axis} ${p.mm.toFixed(1)} mm`;
      }
      this.panes[mode].setInfo(text, windowText);
      this.panes[mode].setLabels(geometry ? edgeLabels(geometry, mode) : null);
    }
    const plane = obliquePlane(voxelSize, cursor, this.angle);
    const { s } = obliqueSteps(voxelSize, this.angle);
    this.panes.oblique.setInfo(`${this.angle}° · plane ${plane} · ${(plane * s).toFixed(1)} mm`, windowText);
    this.panes.oblique.setLabels(geometry ? edgeLabels(geometry, 'oblique', this.angle) : null);
    this.windowText.textContent = windowText;
    const preset = this.presets.find((p) => p.width === window.width && p.level === window.level);
    this.presetSelect.value = preset ? preset.id : '';
  }

  private renderPresets(): void {
    const options: HTMLElement[] = [];
    const custom = document.createElement('option');
    custom.value = '';
    custom.textContent = 'Custom';
    options.push(custom);
    const groups: [string, WindowPreset[]][] = [
      ['Series', this.presets.filter((p) => p.id === 'dicom' || p.id === 'estimated')],
      ['CT', this.presets.filter((p) => p.id !== 'dicom' && p.id !== 'estimated')],
    ];
    for (const [label, presets] of groups) {
      if (presets.length === 0) continue;
      const group = document.createElement('optgroup');
      group.label = label;
      for (const p of presets) {
        const option = document.createElement('option');
        option.value = p.id;
        option.textContent = `${p.label} (W ${p.width} L ${p.level})`;
        group.appendChild(option);
      }
      options.push(group);
    }
    this.presetSelect.replaceChildren(...options);
  }

  private choosePreset(id: string): void {
    const preset = this.presets.find((p) => p.id === id);
    if (!preset) return;
    this.window = { width: preset.width, level: preset.level };
    this.scheduleUpdate();
  }

  private reset(): void {
    if (!this.dims || !this.meta) return;
    this.cursor = this.middle();
    this.window = wholeWindow(this.meta.dicomWindow ?? this.meta.estimatedWindow);
    this.angle = 0;
    this.scheduleUpdate();
  }

  /** How a pane is being scrolled: its direction and the mean time between its latest steps (ms); null when it is not. */
  private scrolling(name: PaneName): { dir: number; interval: number } | null {
    const s = this.steps;
    if (!s || s.pane !== name) return null;
    const last = s.times[s.times.length - 1];
    if (performance.now() - last > SCROLLING_MS) return null;
    const interval = s.times.length > 1 ? (last - s.times[0]) / (s.times.length - 1) : Number.POSITIVE_INFINITY;
    return { dir: s.dir, interval };
  }

  /**
   * How long a pane being scrolled waits for a pause before it asks for its own image (three
   * steps' time, 100 to 250 ms), see Pane.want: a request made between two steps would be
   * aborted by the next one, its work wasted.
   */
  private requestDelay(name: PaneName): number {
    const s = this.scrolling(name);
    if (!s) return 0;
    return Number.isFinite(s.interval) ? Math.min(250, Math.max(100, 3 * s.interval)) : 100;
  }

  /**
   * Neighbours of each pane's image, once the volume is loaded and every pane has had an
   * answer to its first request (see settled): one each side; eight ahead of a
   * scrolling pane, beginning as far ahead as the pane will have gone by the time an image comes
   * (so a fast scroll meets images that are there), the nearer ones under way let finish.
   */
  private prefetch(): void {
    const { dims, voxelSize, cursor } = this;
    // Not before every pane has its first image (or message): neighbours would take the
    // server's workers from the images the user is waiting for.
    if (!this.meta || !dims || !voxelSize || !cursor || !this.firstAnswered) return;
    const latency = this.store.stats.latencyMs;
    let fast = false;
    const offsets = (name: PaneName): { fetch: number[]; keep: number[] } => {
      const s = this.scrolling(name);
      if (!s) return { fetch: [1, -1], keep: [] };
      const lead = s.interval < latency ? Math.ceil(latency / s.interval) : 1;
      fast ||= s.interval < 100;
      const ahead = Array.from({ length: PREFETCH_AHEAD }, (_, i) => s.dir * (lead + i));
      return { fetch: lead > 1 ? ahead : [...ahead, -s.dir], keep: Array.from({ length: lead - 1 }, (_, i) => s.dir * (i + 1)) };
    };
    for (const mode of ORTHOGONAL) {
      const t = sliceOf({ dims }, cursor, mode);
      const count = dims[planeAxis(mode)];
      const urls = (ds: number[]): string[] =>
        ds
          .map((d) => t + d)
          .filter((k) => k >= 0 && k < count)
          .map((k) => this.mprUrl(mode, k));
      const o = offsets(mode);
      this.prefetcher.want(mode, urls(o.fetch), urls(o.keep));
    }
    const o = offsets('oblique');
    const urls = (ds: number[]): string[] =>
      ds.flatMap((d) => {
        const c = stepOblique(voxelSize, dims, cursor, this.angle, d);
        return c ? [this.obliqueUrl(c, this.angle)] : [];
      });
    this.prefetcher.concurrency = fast ? 6 : 2;
    this.prefetcher.want('oblique', urls(o.fetch), urls(o.keep));
  }

  private saveState(): void {
    clearTimeout(this.urlTimer);
    this.urlTimer = setTimeout(() => {
      const state: ViewState = {
        series: this.series,
        token: this.token,
        ww: this.window?.width ?? null,
        wl: this.window?.level ?? null,
        cursor: this.cursor,
        angle: this.angle,
      };
      history.replaceState(null, '', `${location.pathname}${stateSearch(state)}`);
    }, 150);
  }

  /** Moves a pane `n` slices (planes for the oblique pane); nothing at the ends. */
  private step(name: PaneName, n: number): void {
    const { dims, voxelSize, cursor } = this;
    if (!dims || !voxelSize || !cursor || n === 0) return;
    if (name === 'oblique') {
      const next = stepOblique(voxelSize, dims, cursor, this.angle, n);
      if (!next) return;
      this.cursor = next;
    } else {
      const axis = planeAxis(name);
      const now = sliceOf({ dims }, cursor, name);
      const t = planeIndex(now + n, dims[axis]);
      if (t === now) return;
      const next: Vec3 = [...cursor];
      next[axis] = t;
      this.cursor = next;
    }
    const now = performance.now();
    const dir = Math.sign(n);
    const s = this.steps;
    if (s && s.pane === name && s.dir === dir && now - s.times[s.times.length - 1] < SCROLLING_MS) {
      s.times.push(now);
      if (s.times.length > 6) s.times.shift();
    } else {
      this.steps = { pane: name, dir, times: [now] };
    }
    this.scheduleUpdate();
  }

  private goTo(name: Orientation, target: number): void {
    if (!this.dims || !this.cursor) return;
    this.step(name, planeIndex(target, this.dims[planeAxis(name)]) - sliceOf({ dims: this.dims }, this.cursor, name));
  }

  private rotate(deg: number): void {
    this.angle = normalizeAngle(this.angle + deg);
    this.scheduleUpdate();
  }

  /** Moves the cursor to the point of the volume under a page position in a pane. */
  private pointAt(pane: Pane, clientX: number, clientY: number): void {
    const { dims, voxelSize, cursor } = this;
    const p = pane.toImage(clientX, clientY);
    if (!dims || !voxelSize || !cursor || !p || !pane.image) return;
    const u = Math.floor(p.u);
    const v = Math.floor(p.v);
    let next: Vec3 = [...cursor];
    switch (pane.name) {
      case 'axial':
        next = [u, v, cursor[2]];
        break;
      case 'coronal':
        next = [u, cursor[1], v];
        break;
      case 'sagittal':
        next = [cursor[0], u, v];
        break;
      case 'oblique': {
        const made = this.obliqueMade.get(pane.image.url);
        if (!made || !pane.image.center) return;
        next = obliquePoint(voxelSize, dims, made.c, made.angle, pane.image.center[0], u, v);
        break;
      }
    }
    this.cursor = next;
    this.scheduleUpdate();
  }

  private attach(pane: Pane): void {
    const el = pane.el;
    el.addEventListener('contextmenu', (e) => e.preventDefault());
    el.addEventListener('pointerenter', () => {
      this.active = pane.name;
    });
    el.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        this.active = pane.name;
        const steps = this.wheelSteps(e);
        if (steps !== 0) this.step(pane.name, steps);
      },
      { passive: false },
    );
    el.addEventListener('pointerdown', (e) => {
      if (!this.window || !this.dims) return;
      this.active = pane.name;
      el.focus({ preventScroll: true });
      const windowing = e.button === 2 || (e.button === 0 && (e.shiftKey || e.ctrlKey));
      if (!windowing && e.button !== 0) return;
      e.preventDefault();
      el.setPointerCapture(e.pointerId);
      const kind = windowing ? 'window' : pane.name === 'oblique' ? 'rotate' : 'cursor';
      this.drag = { pane, kind, pointerId: e.pointerId, x0: e.clientX, y0: e.clientY, window0: this.window, angle0: this.angle, moved: false };
      if (kind === 'cursor') this.pointAt(pane, e.clientX, e.clientY);
    });
    el.addEventListener('pointermove', (e) => {
      const d = this.drag;
      if (!d || d.pointerId !== e.pointerId || d.pane !== pane) return;
      const dx = e.clientX - d.x0;
      const dy = e.clientY - d.y0;
      if (!d.moved && Math.hypot(dx, dy) < 3) return;
      d.moved = true;
      if (d.kind === 'window') {
        this.window = draggedWindow(d.window0, dx, dy);
        this.scheduleUpdate();
      } else if (d.kind === 'cursor') {
        this.pointAt(pane, e.clientX, e.clientY);
      } else {
        this.angle = normalizeAngle(draggedAngle(d.angle0, dx));
        this.scheduleUpdate();
      }
    });
    const end = (e: PointerEvent): void => {
      const d = this.drag;
      if (!d || d.pointerId !== e.pointerId || d.pane !== pane) return;
      this.drag = null;
      // A click in the oblique pane (no drag) moves the cursor there.
      if (d.kind === 'rotate' && !d.moved && e.type === 'pointerup') this.pointAt(pane, e.clientX, e.clientY);
    };
    el.addEventListener('pointerup', end);
    el.addEventListener('pointercancel', end);
  }

  private wheelSteps(e: WheelEvent): number {
    const dy = e.deltaMode === WheelEvent.DOM_DELTA_LINE ? e.deltaY * 40 : e.deltaMode === WheelEvent.DOM_DELTA_PAGE ? e.deltaY * 800 : e.deltaY;
    if (Math.abs(dy) >= WHEEL_STEP) {
      this.wheelRest = 0;
      return Math.sign(dy);
    }
    this.wheelRest += dy;
    if (Math.abs(this.wheelRest) < WHEEL_STEP) return 0;
    const s = Math.sign(this.wheelRest);
    this.wheelRest = 0;
    return s;
  }

  private key(e: KeyboardEvent): void {
    const target = e.target as HTMLElement | null;
    if (target && (target.tagName === 'INPUT' || target.tagName === 'SELECT' || target.tagName === 'TEXTAREA')) return;
    if (e.altKey || e.metaKey) return;
    const name = this.active;
    const oblique = name === 'oblique';
    switch (e.key) {
      case 'ArrowDown':
        this.step(name, 1);
        break;
      case 'ArrowUp':
        this.step(name, -1);
        break;
      case 'ArrowRight':
        if (oblique) this.rotate(1);
        else this.step(name, 1);
        break;
      case 'ArrowLeft':
        if (oblique) this.rotate(-1);
        else this.step(name, -1);
        break;
      case 'PageDown':
        this.step(name, 10);
        break;
      case 'PageUp':
        this.step(name, -10);
        break;
      case 'Home':
        if (!oblique) this.goTo(name, 0);
        break;
      case 'End':
        if (!oblique && this.dims) this.goTo(name, this.dims[planeAxis(name)] - 1);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
