/** Types the plane modules share (orthogonal, oblique, scan), so that none imports another for them. */

export const ORIENTATIONS = ['axial', 'coronal', 'sagittal'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];

/** Where rows of an 8-bit image go: pixel (col, row) at `offset + row * stride + col`. */
export interface RowPlacement {
  stride: number;
  offset: number;
}

/** A slab as a request gives it: its thickness in mm and how its samples are combined (see reslice.ts's Slab). */
export interface SlabSpec {
  thickness: number;
  projection: 'mip' | 'minip' | 'average';
}
