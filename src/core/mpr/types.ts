/** Types the plane modules share (orthogonal, oblique, scan), so that none imports another for them. */

export const ORIENTATIONS = ['axial', 'coronal', 'sagittal'] as const;
export type Orientation = (typeof ORIENTATIONS)[number];

/** Where rows of an 8-bit image go: pixel (col, row) at `offset + row * stride + col`. */
export interface RowPlacement {
  stride: number;
  offset: number;
}
