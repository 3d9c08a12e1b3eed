/**
 * The torso phantom bench/render.ts and bench/codecs.ts measure on: 512 x 512 x 300 Int16 HU,
 * 0.78125 x 0.78125 x 0.625 mm, deterministic; and the series written from it (phantomElements,
 * writePhantomSeries) for bench/codecs.ts, bench/raw.ts, bench/ws.ts and bench/orthanc.ts.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageElements, type WriteOptions, writeDicom } from '../src/dicom/writer.js';

export const NX = 512;
export const NY = 512;
export const NZ = 300;

/** Where bench:raw and bench:orthanc keep the phantom stored uncompressed, as series PHANTOM_UID. */
export const PHANTOM_ROOT = resolve(fileURLToPath(import.meta.url), '../../.bench-data/raw');
export const PHANTOM_UID = '1.2.826.0.1.3680043.10.1453.700.1';

// ---------------------------------------------------------------------------------------------
// A torso CT phantom: air, couch, fat, soft tissue, lungs, heart, liver, kidneys, aorta, spine,
// ribs and bowel gas, with noise correlated between neighbouring voxels and slices.

/** xorshift32: deterministic, fast. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** 65536 samples of a unit normal distribution (inverse CDF at bin centres), indexed by 16 random bits. */
function gaussianTable(): Float32Array {
  const t = new Float32Array(65536);
  // Acklam's rational approximation of the inverse normal CDF (|error| < 1.2e-9).
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  for (let i = 0; i < 65536; i++) {
    const p = (i + 0.5) / 65536;
    const pl = 0.02425;
    let x: number;
    if (p < pl || p > 1 - pl) {
      const q = Math.sqrt(-2 * Math.log(p < pl ? p : 1 - p));
      x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
      if (p > 1 - pl) x = -x;
    } else {
      const q = p - 0.5;
      const r = q * q;
      x =
        ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    t[i] = x;
  }
  return t;
}

/** Noise level (HU) of the last voxel `tissue` was asked about (saves an allocation per voxel). */
let noiseLevel = 0;

/** `value`, after setting the noise level of the tissue it belongs to. */
function noisy(level: number, value: number): number {
  noiseLevel = level;
  return value;
}

/** Tissue value (HU) at voxel (x, y) of slice z, before noise and blurring; sets noiseLevel. */
function tissue(x: number, y: number, z: number, g: { cx: number; cy: number; ax: number; ay: number }): number {
  const dx = (x - g.cx) / g.ax;
  const dy = (y - g.cy) / g.ay;
  const e = dx * dx + dy * dy;
  noiseLevel = 12;
  if (e > 1) {
    noiseLevel = 8;
    if (y >= 412 && y < 419 && Math.abs(x - 256) < 235) return 250; // couch
    return -1000;
  }
  if (e > 0.87) return -100; // subcutaneous fat
  const inCircle = (px: number, py: number, r: number): boolean => (x - px) * (x - px) + (y - py) * (y - py) < r * r;
  const spineY = g.cy + g.ay * 0.55;
  // Spine: vertebral body (cortex and cancellous bone, a disk every 30 mm), canal, arch.
  if (inCircle(256, spineY, 22)) {
    if (z % 48 < 7) return 85;
    noiseLevel = 25;
    return inCircle(256, spineY, 18) ? 260 : 950;
  }
  if (inCircle(256, spineY + 36, 10)) return 12;
  if (inCircle(256, spineY + 36, 17)) return noisy(30, 720);
  if (inCircle(226, spineY - 36, 13)) return 190; // aorta, contrast
  // Ribs: short arcs inside the fat layer every 24 degrees, on 10 of every 24 slices.
  if (e > 0.74 && (z + Math.round(Math.abs(dx) * 10)) % 24 < 10) {
    const deg = (Math.atan2(dy, dx) * 180) / Math.PI + 180;
    if (deg % 24 < 5 && !(deg > 55 && deg < 125)) return noisy(30, 780);
  }
  // Heart: an ellipsoid with a wall.
  const hx = (x - 282) / 62;
  const hy = (y - (g.cy - 15)) / 52;
  const hz = (z - 95) / 60;
  const h = hx * hx + hy * hy + hz * hz;
  if (h < 1) return h > 0.7 ? 60 : 42;
  if (z < 150) {
    // Thorax: sternum, lungs (domes at the bottom) with a faint texture.
    if (inCircle(256, g.cy - g.ay * 0.84, 11)) return noisy(30, 620);
    const scale = Math.min(1, (150 - z) / 45);
    for (let side = -1; side <= 1; side += 2) {
      const lx = (x - (256 + side * 88)) / (72 * scale);
      const ly = (y - (g.cy - 8)) / (98 * scale);
      if (lx * lx + ly * ly < 1) return noisy(20, -850 + 35 * Math.sin(x / 6.5) * Math.sin(y / 8.3) * Math.sin(z / 5.1));
    }
    return 50;
  }
  // Abdomen: kidneys, liver, bowel with gas.
  for (let side = -1; side <= 1; side += 2) {
    const kx = (x - (256 + side * 78)) / 24;
    const ky = (y - (spineY - 8)) / 32;
    const kz = (z - 240) / 40;
    const k = kx * kx + ky * ky + kz * kz;
    if (k < 1) return k > 0.6 ? 150 : 30;
  }
  const lvx = (x - 196) / 92;
  const lvy = (y - (g.cy - 12)) / 78;
  const lvz = (z - 195) / 60;
  if (lvx * lvx + lvy * lvy + lvz * lvz < 1) return 62;
  if (z > 200) {
    for (const [bx, by, br] of BOWEL) if (inCircle(bx, by + ((z * 3) % 11), br)) return noisy(15, -880);
  }
  return 48;
}

const BOWEL = [
  [300, 215, 12],
  [330, 260, 9],
  [270, 250, 7],
  [315, 300, 10],
] as const;

/** Yields the phantom's slices in order (z = 0 .. NZ - 1), 512 x 512 Int16 HU each. */
export function* phantomSlices(): Generator<Int16Array> {
  const gauss = gaussianTable();
  const next = rng(20240611);
  const plane = NX * NY;
  const noise = new Float32Array(plane); // AR(1) over slices: correlated along z
  const sigma = new Float32Array(plane);
  const value = new Float32Array(plane);
  const tmp = new Float32Array(plane);
  for (let i = 0; i < plane; i++) noise[i] = gauss[next() >>> 16];
  for (let z = 0; z < NZ; z++) {
    const g = { cx: 256, cy: 262, ax: 192 + 8 * Math.sin(z / 60), ay: 136 + 5 * Math.cos(z / 45) };
    for (let y = 0; y < NY; y++) {
      for (let x = 0; x < NX; x++) {
        const i = x + y * NX;
        value[i] = tissue(x, y, z, g);
        sigma[i] = noiseLevel;
        noise[i] = 0.6 * noise[i] + 0.8 * gauss[next() >>> 16];
      }
    }
    for (let i = 0; i < plane; i++) value[i] += (sigma[i] / 0.375) * noise[i];
    for (let y = 0; y < NY; y++) {
      const r = y * NX;
      tmp[r] = value[r];
      tmp[r + NX - 1] = value[r + NX - 1];
      for (let x = 1; x < NX - 1; x++) tmp[r + x] = 0.25 * value[r + x - 1] + 0.5 * value[r + x] + 0.25 * value[r + x + 1];
    }
    const out = new Int16Array(plane);
    for (let y = 0; y < NY; y++) {
      const up = y > 0 ? y - 1 : y;
      const down = y < NY - 1 ? y + 1 : y;
      for (let x = 0; x < NX; x++) {
        const v = Math.round(0.25 * tmp[x + up * NX] + 0.5 * tmp[x + y * NX] + 0.25 * tmp[x + down * NX]);
        out[x + y * NX] = v < -1024 ? -1024 : v > 3071 ? 3071 : v;
      }
    }
    yield out;
  }
}

/** The elements of the phantom's slice k as an instance of series `uid` (signed Int16, HU, window 40/400). */
export function phantomElements(uid: string, k: number, pixels: Int16Array, description: string) {
  return imageElements({
    rows: NY,
    columns: NX,
    bitsAllocated: 16,
    signed: true,
    pixels,
    seriesInstanceUid: uid,
    studyInstanceUid: '1.2.826.0.1.3680043.10.1453.600',
    sopInstanceUid: `${uid}.${k + 1}`,
    seriesDescription: description,
    instanceNumber: k + 1,
    imagePositionPatient: [-200, -200, -k * 0.625],
    imageOrientationPatient: [1, 0, 0, 0, 1, 0],
    pixelSpacing: [0.78125, 0.78125],
    sliceThickness: 0.625,
    rescaleIntercept: 0,
    rescaleSlope: 1,
    windowCenter: 40,
    windowWidth: 400,
  });
}

/**
 * Writes the phantom as series `uid` into `dir` (files CT0000.dcm ...; `options` gives the
 * transfer syntax and encapsulated frames of slice k), through a partial folder renamed at the
 * end, so an interrupted run never leaves a series that looks complete.
 */
export function writePhantomSeries(dir: string, uid: string, description: string, options?: (pixels: Int16Array) => WriteOptions): void {
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  let k = 0;
  for (const pixels of phantomSlices()) {
    const bytes = writeDicom(phantomElements(uid, k, pixels, description), options?.(pixels));
    writeFileSync(join(partial, `CT${String(k).padStart(4, '0')}.dcm`), bytes);
    k++;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
}
