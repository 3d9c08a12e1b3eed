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
 * Sampled by the reslice core's general sampler (a row's start computed once, each pixel adding
 * its column offset); nearest windowing of integer volumes goes through the window's lookup table.
 */
import { reslice } from '../reslice/reslice.js';
import type { ResliceOutput } from '../reslice/types.js';
import type { VoxelArray, VoxelGrid } from '../volume/volume.js';
import type { WindowSpec } from './window.js';

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
  const { origin, xAxis, yAxis, width, height } = plane;
  const col: Vec3Tuple = [xAxis[0] / width, xAxis[1] / width, xAxis[2] / width];
  const row: Vec3Tuple = [yAxis[0] / height, yAxis[1] / height, yAxis[2] / height];
  const options = { interpolation: plane.interpolation ? 'trilinear' : 'nearest', edges: 'zero' } as const;
  const output: ResliceOutput =
    target.kind === 'values'
      ? { kind: 'values', out: target.out, round: true }
      : { kind: 'window', out: target.out, window: target.window, stride: target.stride, offset: target.offset };
  reslice({ grid, slices }, { origin, col, row, width, height }, options, output);
}
