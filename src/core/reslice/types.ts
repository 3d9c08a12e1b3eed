/** The reslice core's vocabulary: planes, sampling options, outputs and sampled rows (see reslice.ts). */
import type { Vec3 } from '../geometry/vec3.js';
import type { VoxelArray, VoxelGrid } from '../volume/volume.js';
import type { SampleArray, WindowSpec } from '../mpr/window.js';

export interface ReslicePlane {
  /** Coordinates (voxel index units) of pixel (0, 0). */
  readonly origin: Vec3;
  /** Step per column (along a row) and per row (down a column), voxel index units. */
  readonly col: Vec3;
  readonly row: Vec3;
  readonly width: number;
  readonly height: number;
}

export type Interpolation = 'nearest' | 'trilinear';
export type Edges = 'clamp' | 'zero';

/** What is sampled: a voxel grid, and optionally which of its slices are the images of the z axis (a partial volume). */
export interface ResliceSource {
  readonly grid: VoxelGrid;
  /** z of each image in `grid`, in order (default: every slice, z = index). */
  readonly slices?: readonly number[];
}

export interface ResliceOptions {
  readonly interpolation: Interpolation;
  readonly edges: Edges;
}

/** Pixel (i, j) goes to out[offset + j * stride + i]; by default offset 0, stride width (PNG scanlines: 1 and width + 1). */
export interface Placement {
  readonly stride?: number;
  readonly offset?: number;
}

export type ResliceOutput =
  | ({ readonly kind: 'window'; readonly out: Uint8Array; readonly window: WindowSpec } & Placement)
  | { readonly kind: 'values'; readonly out: VoxelArray | Float32Array; readonly round?: boolean };

/**
 * A block of sampled rows, rows j0 .. j0 + count - 1 of the image: sample i of row r at
 * `values[start + r * stride + i]`. `raw`: the values are voxels of the grid's own format, as
 * stored; otherwise interpolated numbers. `spans`: where only part of a row lies inside the
 * volume, its samples are i in [lo[r], hi[r]) and the rest of the row is 0 in the output.
 */
export interface SampledRows {
  readonly values: SampleArray;
  readonly raw: boolean;
  readonly start: number;
  readonly stride: number;
  readonly spans: { readonly lo: Int32Array; readonly hi: Int32Array } | null;
  /**
   * The sampler wrote the block's pixels into the output itself (windowed as it sampled, when
   * nothing combines samples between it and the output): the output stage leaves the block alone.
   */
  readonly written?: boolean;
}

export interface Sampler {
  /** Which sampler the plane's shape chose (see samplers.ts). */
  readonly kind: 'aligned' | 'separable' | 'general';
  /** Rows sampled per call. */
  readonly block: number;
  /** Samples rows j0 .. j0 + count - 1 (count <= block). */
  sample(j0: number, count: number): SampledRows;
}
