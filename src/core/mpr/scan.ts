/**
 * Planes resampled as the current CIRCUS API's /scan defines them.
 *
 * Coordinates are voxel index units with the corner convention: voxel (i, j, k) covers
 * [i, i+1) x [j, j+1) x [k, k+1), so its centre is at i + 0.5. The z axis counts images of a
 * list (a partial volume): image k is slice `slices[k]` of the volume, and a plane between two
 * images interpolates between those two slices.
 *
 * Output pixel (i, j), i fastest, samples p = origin + i * xAxis / width + j * yAxis / height
 * (xAxis and yAxis span the whole image).
 * - Nearest: voxel (floor p.x, floor p.y, floor p.z); outside when any coordinate is < 0 or
 *   >= the size on that axis.
 * - Trilinear: at p - (0.5, 0.5, 0.5), edge voxels repeated beyond the outermost centres;
 *   outside when any coordinate of p is < 0 or > the size on that axis.
 * An outside sample is 0 in the output, whatever the output is (values, or windowed bytes).
 *
 * The loops allocate nothing per pixel: a row's start is computed once and each pixel adds its
 * column offset; nearest windowing of integer volumes goes through the window's lookup table.
 */
import type { VoxelArray, VoxelGrid } from '../volume/volume.js';
import { windowTable, type WindowSpec } from './window.js';

export type Vec3Tuple = readonly [number, number, number];

export interface ScanPlane {
  readonly origin: Vec3Tuple;
  /** Spans the whole output image along its rows (columns 0 .. width). */
  readonly xAxis: Vec3Tuple;
  /** Spans the whole output image down its columns (rows 0 .. height). */
  readonly yAxis: Vec3Tuple;
  readonly width: number;
  readonly height: number;
  readonly interpolation: boolean;
}

/** The most output pixels one scan may have. */
export const MAX_SCAN_PIXELS = 2048 * 2048;

/** Where samples go: values as they are (rounded to integers after interpolation), or windowed to 8 bits. */
export type ScanTarget =
  | { readonly kind: 'values'; readonly out: VoxelArray }
  | {
      readonly kind: 'window';
      readonly out: Uint8Array;
      /** The window as applied (callers pass effectiveWindow's for Binary volumes). */
      readonly window: WindowSpec;
      /** Pixel (i, j) goes to out[offset + j * stride + i]; by default offset 0, stride width (PNG scanlines: 1 and width + 1). */
      readonly stride?: number;
      readonly offset?: number;
    };

/**
 * Samples `plane` of the images `slices` (z of each image in `grid`, in order) into `target`.
 * `grid` holds modality values; `target.out` must hold the image (width * height values, or
 * the rows `stride` and `offset` place).
 */
export function scanPlane(grid: VoxelGrid, slices: readonly number[], plane: ScanPlane, target: ScanTarget): void {
  const [nx, ny] = grid.dims;
  const nz = slices.length;
  const zOffsets = new Float64Array(nz);
  for (let k = 0; k < nz; k++) zOffsets[k] = slices[k] * nx * ny;
  if (plane.interpolation) trilinear(grid.data, nx, ny, nz, zOffsets, plane, target);
  else nearest(grid, nx, ny, nz, zOffsets, plane, target);
}

interface Steps {
  /** Step per column. */
  cx: number;
  cy: number;
  cz: number;
  /** Step per row. */
  rx: number;
  ry: number;
  rz: number;
}

const stepsOf = (p: ScanPlane): Steps => ({
  cx: p.xAxis[0] / p.width,
  cy: p.xAxis[1] / p.width,
  cz: p.xAxis[2] / p.width,
  rx: p.yAxis[0] / p.height,
  ry: p.yAxis[1] / p.height,
  rz: p.yAxis[2] / p.height,
});

function placement(plane: ScanPlane, target: ScanTarget): { stride: number; offset: number } {
  if (target.kind === 'values') return { stride: plane.width, offset: 0 };
  return { stride: target.stride ?? plane.width, offset: target.offset ?? 0 };
}

function nearest(grid: VoxelGrid, nx: number, ny: number, nz: number, zOffsets: Float64Array, plane: ScanPlane, target: ScanTarget): void {
  const d = grid.data;
  const { width, height, origin } = plane;
  const s = stepsOf(plane);
  const { stride, offset } = placement(plane, target);
  const out = target.out;
  const windowed = target.kind === 'window';
  const lut = windowed ? windowTable(grid.pixelFormat, target.window) : null;
  const table = lut ? lut.table : null;
  const tableOffset = lut ? lut.offset : 0;
  const w = windowed ? target.window : null;
  const level = w ? w.level : 0;
  const half = w ? w.width / 2 : 0;
  const ww = w ? w.width : 1;
  const invert = w ? w.invert : false;
  for (let j = 0; j < height; j++) {
    const x0 = origin[0] + j * s.rx;
    const y0 = origin[1] + j * s.ry;
    const z0 = origin[2] + j * s.rz;
    let o = offset + j * stride;
    for (let i = 0; i < width; i++, o++) {
      const fx = Math.floor(x0 + i * s.cx);
      const fy = Math.floor(y0 + i * s.cy);
      const fz = Math.floor(z0 + i * s.cz);
      if (fx < 0 || fx >= nx || fy < 0 || fy >= ny || fz < 0 || fz >= nz) {
        out[o] = 0;
        continue;
      }
      const v = d[fx + fy * nx + zOffsets[fz]];
      if (!windowed) out[o] = v;
      else if (table) out[o] = table[v + tableOffset];
      else {
        let x = ((v - level + half) * 255) / ww;
        x = x > 0 ? (x < 255 ? x : 255) : 0;
        const b = (x + 0.5) | 0;
        out[o] = invert ? 255 - b : b;
      }
    }
  }
}

function trilinear(d: VoxelArray, nx: number, ny: number, nz: number, zOffsets: Float64Array, plane: ScanPlane, target: ScanTarget): void {
  const { width, height, origin } = plane;
  const s = stepsOf(plane);
  const { stride, offset } = placement(plane, target);
  const out = target.out;
  const windowed = target.kind === 'window';
  const w = windowed ? target.window : null;
  const level = w ? w.level : 0;
  const half = w ? w.width / 2 : 0;
  const ww = w ? w.width : 1;
  const invert = w ? w.invert : false;
  const mx = nx - 1;
  const my = ny - 1;
  const mz = nz - 1;
  for (let j = 0; j < height; j++) {
    const x0 = origin[0] + j * s.rx;
    const y0 = origin[1] + j * s.ry;
    const z0 = origin[2] + j * s.rz;
    let o = offset + j * stride;
    for (let i = 0; i < width; i++, o++) {
      const px = x0 + i * s.cx;
      const py = y0 + i * s.cy;
      const pz = z0 + i * s.cz;
      if (px < 0 || px > nx || py < 0 || py > ny || pz < 0 || pz > nz) {
        out[o] = 0;
        continue;
      }
      // Lower corner and fraction at p - 0.5; indices clamped (edge voxels repeated).
      const qx = px - 0.5;
      const qy = py - 0.5;
      const qz = pz - 0.5;
      const ix = Math.floor(qx);
      const iy = Math.floor(qy);
      const iz = Math.floor(qz);
      const tx = qx - ix;
      const ty = qy - iy;
      const tz = qz - iz;
      const xa = ix < 0 ? 0 : ix;
      const xb = ix + 1 > mx ? mx : ix + 1;
      const ya = (iy < 0 ? 0 : iy) * nx;
      const yb = (iy + 1 > my ? my : iy + 1) * nx;
      const za = zOffsets[iz < 0 ? 0 : iz];
      const zb = zOffsets[iz + 1 > mz ? mz : iz + 1];
      const c00 = d[xa + ya + za] + tx * (d[xb + ya + za] - d[xa + ya + za]);
      const c10 = d[xa + yb + za] + tx * (d[xb + yb + za] - d[xa + yb + za]);
      const c01 = d[xa + ya + zb] + tx * (d[xb + ya + zb] - d[xa + ya + zb]);
      const c11 = d[xa + yb + zb] + tx * (d[xb + yb + zb] - d[xa + yb + zb]);
      const c0 = c00 + ty * (c10 - c00);
      const c1 = c01 + ty * (c11 - c01);
      const v = c0 + tz * (c1 - c0);
      if (!windowed) {
        out[o] = Math.floor(v + 0.5);
      } else {
        let x = ((v - level + half) * 255) / ww;
        x = x > 0 ? (x < 255 ? x : 255) : 0;
        const b = (x + 0.5) | 0;
        out[o] = invert ? 255 - b : b;
      }
    }
  }
}
