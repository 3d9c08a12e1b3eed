/**
 * OHIF 3.13 as published (test/fixtures/ohif.ts) reading a DICOMweb server, in Debian's Chromium
 * driven by playwright-core. A generated CT of flat regions of known stored values (a 3 x 3
 * split at one third: four grey levels) is listed in the study list (patient name), opened in
 * the default viewer (the stack viewport must show the four grey levels OHIF's window gives,
 * read back from the viewport's canvas), then in OHIF's MPR layout (hanging protocol `mpr`):
 * the axial, sagittal and coronal viewports must show the levels of the planes through the
 * volume's centre. The browser may reach nothing outside loopback: every other request is
 * aborted and must not happen. Screenshots go to test-output/ohif/.
 *
 * The suite runs against circus-rs (reached cross-origin, as a viewer served elsewhere reaches
 * it; its stack viewport is also compared with circus-rs's own /rendered image of the instance)
 * and against Debian's Orthanc with its DICOMweb plugin holding the same files (through the
 * viewer's own origin, since Orthanc sends no CORS headers), so that what OHIF needs is checked
 * against a reference server too. Screenshots go to test-output/ohif/{server}/.
 *
 * Skipped with a message when Chromium, Orthanc or the OHIF package cannot be had (failed
 * instead when CI is set, since .ci/run installs them and npm reaches the registry).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as decodePng } from 'fast-png';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { tag } from '../src/dicom/tags.js';
import { createServer } from '../src/server.js';
import { inCi } from './conformance/pydicomEnv.js';
import { ohifDist, type StaticServer, startOhif } from './fixtures/ohif.js';
import { dicomwebPlugin, Orthanc, orthancBinary } from './fixtures/orthanc.js';
import { seriesFiles, TempDir } from './fixtures/series.js';

interface PageCanvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<PageCanvas> };

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const OUTPUT = join(ROOT, 'test-output', 'ohif');

const SERIES = '1.2.826.0.1.3680043.10.1453.88.1';
const STUDY = `${SERIES}.0`;
const SIZE = 96;
const SLICES = 20;
const SLICE_MM = 2.5;
/** Stored values of the four regions: x < SIZE/3 or not, y < SIZE/3 or not (index xi + 2 yi). */
const LEVELS = [-400, 0, 400, 800];
const WC = 200;
const WW = 2000;
const region = (x: number, y: number): number => (x < SIZE / 3 ? 0 : 1) + (y < SIZE / 3 ? 0 : 2);
/** The grey level of a stored value under the series' window (PS3.3 C.11.2.1.2 linear, modality LUT identity). */
const grey = (v: number): number => Math.min(255, Math.max(0, ((v - (WC - 0.5)) / (WW - 1) + 0.5) * 255));

function files() {
  return seriesFiles({
    uid: SERIES,
    columns: SIZE,
    rows: SIZE,
    slices: SLICES,
    pixelSpacing: [1, 1],
    position: (k) => [-SIZE / 2, -SIZE / 2, -SLICE_MM * k],
    value: (x, y) => LEVELS[region(x, y)],
    windowCenter: WC,
    windowWidth: WW,
    rescaleSlope: () => 1,
    rescaleIntercept: () => 0,
    sliceThickness: SLICE_MM,
    tweak: (_k, spec) => ({
      ...spec,
      studyInstanceUid: STUDY,
      seriesDescription: 'Checker',
      extra: [
        { tag: tag(0x0010, 0x0010), vr: 'PN', value: 'Checker^Quad' },
        { tag: tag(0x0010, 0x0020), vr: 'LO', value: 'CHK-0001' },
        { tag: tag(0x0008, 0x0020), vr: 'DA', value: '20240510' },
        { tag: tag(0x0008, 0x1030), vr: 'LO', value: 'Checker study' },
        { tag: tag(0x0020, 0x0052), vr: 'UI', value: `${SERIES}.9` },
        { tag: tag(0x0020, 0x0011), vr: 'IS', value: 3 },
      ],
    }),
  });
}

interface Dicomweb {
  /** The root as the viewer reaches it, and a proxy when it must be reached through the viewer's origin. */
  root: string;
  proxy?: { prefix: string; target: string };
  /** The server's own origin, when the test may ask it for rendered images. */
  base?: string;
  name: string;
  stop(): Promise<void>;
}

/** circus-rs serving the checker series from a data directory, reached cross-origin (its CORS and CORP headers). */
async function startCircus(): Promise<Dicomweb> {
  const tmp = new TempDir();
  const data = join(tmp.path, 'data', SERIES);
  mkdirSync(data, { recursive: true });
  for (const f of files()) writeFileSync(join(data, f.name), f.bytes);
  const server = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'data'), indexPath: join(tmp.path, 'index.sqlite') }, env: {} }), {});
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.app.server.address() as AddressInfo;
  const base = `http://127.0.0.1:${port}`;
  return {
    root: `${base}/dicom-web`,
    base,
    name: 'circus-rs',
    stop: async () => {
      await server.close();
      tmp.remove();
    },
  };
}

/** Debian's Orthanc with its DICOMweb plugin holding the same files, read through the viewer's origin (it sends no CORS headers). */
async function startOrthanc(): Promise<Dicomweb> {
  const orthanc = await Orthanc.start();
  await orthanc.upload(files().map((f) => f.bytes));
  return {
    root: '/dicom-web',
    proxy: { prefix: '/dicom-web', target: orthanc.dicomweb },
    name: `Orthanc ${orthanc.version}`,
    stop: () => orthanc.remove(),
  };
}

const dist = existsSync(CHROMIUM) ? ohifDist() : { missing: 'no chromium' };
const missing = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is not installed (apt-get install chromium)`
  : orthancBinary() === null || dicomwebPlugin() === null
    ? 'Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)'
    : 'missing' in dist
      ? dist.missing
      : null;
const suite = missing === null || inCi ? describe : describe.skip;
if (missing !== null && !inCi) console.warn(`OHIF browser tests skipped: ${missing} (the suite fails instead when CI is set)`);

interface Pixels {
  width: number;
  height: number;
  grey: Uint8Array;
}

/** The red channel of every viewport canvas, in document order. */
async function viewportPixels(page: Page): Promise<Pixels[]> {
  const all = await page.evaluate(() =>
    Array.from(document.querySelectorAll('canvas.cornerstone-canvas')).map((c) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let text = '';
      for (let i = 0; i < c.width * c.height; i++) text += String.fromCharCode(d[4 * i]);
      return { width: c.width, height: c.height, grey: btoa(text) };
    }),
  );
  return all.map((p) => ({ width: p.width, height: p.height, grey: new Uint8Array(Buffer.from(p.grey, 'base64')) }));
}

/** The bounding box of pixels brighter than the black background. */
function imageBox(p: Pixels): { x0: number; y0: number; x1: number; y1: number } | null {
  let x0 = p.width;
  let y0 = p.height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < p.height; y++)
    for (let x = 0; x < p.width; x++)
      if (p.grey[x + y * p.width] > 25) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
  return x1 < 0 ? null : { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

/** Mean grey of the box (fractions of the image box), shrunk to its middle half to stay off edges. */
function meanIn(p: Pixels, box: NonNullable<ReturnType<typeof imageBox>>, fx0: number, fy0: number, fx1: number, fy1: number): number {
  const w = box.x1 - box.x0;
  const h = box.y1 - box.y0;
  const cx0 = fx0 + (fx1 - fx0) / 4;
  const cx1 = fx1 - (fx1 - fx0) / 4;
  const cy0 = fy0 + (fy1 - fy0) / 4;
  const cy1 = fy1 - (fy1 - fy0) / 4;
  let sum = 0;
  let n = 0;
  for (let y = Math.round(box.y0 + cy0 * h); y < Math.round(box.y0 + cy1 * h); y++)
    for (let x = Math.round(box.x0 + cx0 * w); x < Math.round(box.x0 + cx1 * w); x++) {
      sum += p.grey[x + y * p.width];
      n++;
    }
  return n ? sum / n : Number.NaN;
}

/** Waits until `count` viewport canvases show an image (pixels above the background). */
async function waitForImages(page: Page, count: number): Promise<Pixels[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const shown = await viewportPixels(page);
    if (shown.length === count && shown.every((p) => imageBox(p) !== null)) {
      await page.waitForTimeout(1500); // let progressive loading settle, then read again
      return viewportPixels(page);
    }
    if (Date.now() > deadline) throw new Error(`${count} viewports with an image did not appear in 60 s (${shown.length} canvases)`);
    await page.waitForTimeout(250);
  }
}

async function skipTour(page: Page): Promise<void> {
  const skip = page.getByText('Skip all');
  if (await skip.isVisible().catch(() => false)) await skip.click();
}

function ohifSuite(label: string, start: () => Promise<Dicomweb>): void {
  suite(`OHIF 3.13 reads ${label}`, { timeout: 240_000 }, () => {
    let browser: Browser;
    let dicomweb: Dicomweb;
    let ohif: StaticServer;
    let page: Page;
    const external: string[] = [];
    const pageErrors: string[] = [];
    /** Paths (with queries) of the DICOMweb requests the page made. */
    const requests: string[] = [];
    const output = join(OUTPUT, label);

    beforeAll(async () => {
      if (!('dist' in dist)) throw new Error(`OHIF: ${dist.missing}`);
      mkdirSync(output, { recursive: true });
      dicomweb = await start();
      ohif = await startOhif(dist.dist, { root: dicomweb.root }, dicomweb.proxy);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-quic',
          '--enable-unsafe-swiftshader',
        ],
      });
      page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.route('**/*', (route) => {
        const u = new URL(route.request().url());
        if (u.hostname === '127.0.0.1' || u.protocol === 'data:' || u.protocol === 'blob:') return route.continue();
        external.push(u.href);
        return route.abort();
      });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      page.on('request', (r) => {
        const u = new URL(r.url());
        if (u.pathname.startsWith('/dicom-web/')) requests.push(u.pathname + u.search);
      });
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await ohif?.close();
      await dicomweb?.stop();
    });

    it('lists the study with its patient name', async () => {
      await page.goto(`${ohif.base}/`);
      await page.getByText('Checker, Quad').first().waitFor({ timeout: 60_000 });
      await page.screenshot({ path: join(output, 'study-list.png') });
      const body = (await page.textContent('body')) ?? '';
      expect(body).toContain('10-May-2024');
      expect(body).toContain('CT');
      expect(requests.some((r) => r.startsWith('/dicom-web/studies?'))).toBe(true);
    });

    it('shows the series in the stack viewport with the grey levels of its window', async () => {
      await page.goto(`${ohif.base}/viewer?StudyInstanceUIDs=${STUDY}`);
      const [shown] = await waitForImages(page, 1);
      await skipTour(page);
      await page.screenshot({ path: join(output, 'viewer.png') });
      const box = imageBox(shown)!;
      // Square pixels, square image.
      expect(Math.abs((box.x1 - box.x0) / (box.y1 - box.y0) - 1)).toBeLessThan(0.03);
      const third = 1 / 3;
      const means = [
        meanIn(shown, box, 0, 0, third, third),
        meanIn(shown, box, third, 0, 1, third),
        meanIn(shown, box, 0, third, third, 1),
        meanIn(shown, box, third, third, 1, 1),
      ];
      for (const [i, m] of means.entries()) {
        expect(Math.abs(m - grey(LEVELS[i])), `region ${i}: ${m.toFixed(1)} against ${grey(LEVELS[i]).toFixed(1)}`).toBeLessThan(3);
      }
      if (dicomweb.base) {
        // The server's own rendering of the instance shown (the one whose frames OHIF asked for
        // first), through the same window: the same grey levels region by region.
        const frame = requests.find((r) => /\/frames\/1$/.test(r))!;
        const res = await fetch(`${dicomweb.base}${frame.replace(/\/frames\/1$/, '/rendered')}`, { headers: { accept: 'image/png' } });
        expect(res.status).toBe(200);
        const png = decodePng(new Uint8Array(await res.arrayBuffer()));
        expect([png.width, png.height, png.channels]).toEqual([SIZE, SIZE, 1]);
        const rendered: Pixels = { width: png.width, height: png.height, grey: Uint8Array.from(png.data as Uint8Array) };
        const full = { x0: 0, y0: 0, x1: SIZE, y1: SIZE };
        const ours = [
          meanIn(rendered, full, 0, 0, third, third),
          meanIn(rendered, full, third, 0, 1, third),
          meanIn(rendered, full, 0, third, third, 1),
          meanIn(rendered, full, third, third, 1, 1),
        ];
        for (const [i, m] of means.entries())
          expect(Math.abs(m - ours[i]), `region ${i}: OHIF ${m.toFixed(1)}, /rendered ${ours[i]}`).toBeLessThan(3);
      }
      expect(requests.some((r) => /\/series\/[\d.]+\/metadata$/.test(r))).toBe(true);
      expect(requests.some((r) => /\/frames\/1$/.test(r))).toBe(true);
    });

    it('shows the axial, sagittal and coronal planes through the centre in the MPR layout', async () => {
      await page.goto(`${ohif.base}/viewer?StudyInstanceUIDs=${STUDY}&hangingprotocolId=mpr`);
      const shown = await waitForImages(page, 3);
      await skipTour(page);
      await page.screenshot({ path: join(output, 'mpr.png') });
      const boxes = shown.map((p) => imageBox(p)!);
      const aspect = boxes.map((b) => (b.x1 - b.x0) / (b.y1 - b.y0));
      // Axial: SIZE x SIZE mm; sagittal and coronal: SIZE mm across, SLICES * SLICE_MM mm high.
      const axial = aspect.findIndex((a) => Math.abs(a - 1) < 0.05);
      expect(axial, `aspects ${aspect.map((a) => a.toFixed(2))}`).toBe(0);
      const depth = SLICES * SLICE_MM;
      for (const i of [1, 2]) expect(Math.abs(aspect[i] / (SIZE / depth) - 1), `viewport ${i} aspect ${aspect[i]}`).toBeLessThan(0.08);
      const third = 1 / 3;
      const a = [0, 1, 2, 3].map((r) => meanIn(shown[0], boxes[0], r % 2 ? third : 0, r > 1 ? third : 0, r % 2 ? 1 : third, r > 1 ? 1 : third));
      for (const [i, m] of a.entries()) expect(Math.abs(m - grey(LEVELS[i])), `axial region ${i}`).toBeLessThan(3);
      // The planes through the centre (x = y = SIZE/2, in the regions xi = yi = 1). Sagittal: y
      // across, anterior (small y) on the left; coronal: x across, patient right (small x) on the left.
      const halves = (p: Pixels, b: (typeof boxes)[number]): [number, number] => [meanIn(p, b, 0, 0, third, 1), meanIn(p, b, third, 0, 1, 1)];
      const sagittal = halves(shown[1], boxes[1]);
      const coronal = halves(shown[2], boxes[2]);
      expect(Math.abs(sagittal[0] - grey(LEVELS[1])), `sagittal anterior ${sagittal[0]}`).toBeLessThan(3);
      expect(Math.abs(sagittal[1] - grey(LEVELS[3])), `sagittal posterior ${sagittal[1]}`).toBeLessThan(3);
      expect(Math.abs(coronal[0] - grey(LEVELS[2])), `coronal right ${coronal[0]}`).toBeLessThan(3);
      expect(Math.abs(coronal[1] - grey(LEVELS[3])), `coronal left ${coronal[1]}`).toBeLessThan(3);
    });

    it('reached nothing outside loopback and threw no page errors', () => {
      expect(external).toEqual([]);
      expect(pageErrors).toEqual([]);
    });
  });
}

ohifSuite('circus-rs', startCircus);
ohifSuite('orthanc', startOrthanc);
