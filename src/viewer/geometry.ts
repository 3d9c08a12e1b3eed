/**
 * The viewer's geometry, pure functions only (no DOM), so they are tested without a browser.
 *
 * Voxel index space is the API's (docs/API.md, Voxel index space): x columns, y rows, z slices,
 * voxel centres at integers. The patient frame is DICOM's LPS: +x the patient's left, +y
 * posterior, +z head. `/metadata` gives the row direction (+x), the column direction (+y) and
 * the slice direction (+z) in that frame; the orientation letters of a pane come from them and
 * from how the pane's image lays the volume out (as `/mpr` and `/oblique` draw it), never from
 * a fixed assumption, so a series scanned feet first or in another plane is labelled truthfully.
 *
 * The oblique pane shows `/oblique` with `b=axial`: the plane stands perpendicular to the axial
 * plane and contains the line through the cursor at angle `a` (counterclockwise on screen) from
 * the axial image's horizontal axis. Its columns step `eu = (cos a · s/sx, −sin a · s/sy, 0)`
 * voxels and its rows `s/sz` slices, `s = min(sx, sy, sz)`. Its planes are numbered along their
 * normal (`sin a, cos a` in mm in the axial plane) in steps of `s` from the volume's corner, so
 * at a = 0 plane n is coronal slice n, and at 90° sagittal slice n, when s is that axis' spacing.
 */

export type Vec3 = [number, number, number];
export type Orientation = 'axial' | 'coronal' | 'sagittal';
export type PaneName = Orientation | 'oblique';
export const PANES: readonly PaneName[] = ['axial', 'coronal', 'sagittal', 'oblique'];

/** What the viewer needs of `/metadata`. */
export interface Metadata {
  voxelCount: Vec3;
  voxelSize: Vec3;
  estimatedWindow: { width: number; level: number };
  dicomWindow?: { width: number; level: number };
  modality?: string | null;
  seriesDescription?: string | null;
  imageOrientationPatient?: number[];
  imagePositionPatient?: Vec3 | null;
  sliceDirection?: Vec3;
}

export interface Geometry {
  dims: Vec3;
  voxelSize: Vec3;
  /** Patient direction of +x (row direction), +y (column direction) and +z (slice direction). */
  row: Vec3;
  column: Vec3;
  normal: Vec3;
  /** Patient position (mm) of voxel (0, 0, 0); null when the series has none. */
  origin: Vec3 | null;
}

const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const scale = (a: Vec3, k: number): Vec3 => [a[0] * k, a[1] * k, a[2] * k];
const add = (a: Vec3, b: Vec3): Vec3 => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const neg = (a: Vec3): Vec3 => [-a[0], -a[1], -a[2]];

function unit(a: Vec3): Vec3 {
  const n = Math.hypot(a[0], a[1], a[2]);
  return n > 0 ? scale(a, 1 / n) : a;
}

export function geometryOf(meta: Metadata): Geometry {
  const iop = meta.imageOrientationPatient?.length === 6 ? meta.imageOrientationPatient : [1, 0, 0, 0, 1, 0];
  const row = unit([iop[0], iop[1], iop[2]]);
  const column = unit([iop[3], iop[4], iop[5]]);
  const normal = meta.sliceDirection?.length === 3 ? unit([...meta.sliceDirection] as Vec3) : unit(cross(row, column));
  return {
    dims: [...meta.voxelCount] as Vec3,
    voxelSize: [...meta.voxelSize] as Vec3,
    row,
    column,
    normal,
    origin: meta.imagePositionPatient ? ([...meta.imagePositionPatient] as Vec3) : null,
  };
}

/** Letters of the patient axes, negative then positive direction: x R/L, y A/P, z I/S. */
const AXIS_LETTERS: readonly [string, string][] = [
  ['R', 'L'],
  ['A', 'P'],
  ['I', 'S'],
];

/**
 * The orientation label of a patient direction: the letter of its main axis, followed by the
 * letter of a second axis when the direction leans towards it by more than about 15 degrees
 * (an oblique plane at 30 degrees from coronal is "LP" on one side, "RA" on the other).
 */
export function directionLabel(v: readonly number[]): string {
  const parts = [0, 1, 2]
    .map((axis) => ({ axis, weight: Math.abs(v[axis]) }))
    .filter((p) => p.weight > 0.26)
    .sort((a, b) => b.weight - a.weight)
    .slice(0, 2);
  return parts.map((p) => AXIS_LETTERS[p.axis][v[p.axis] > 0 ? 1 : 0]).join('');
}

/** Patient directions of a pane's screen right and screen down (the image's +column and +row). */
export function paneAxes(g: Geometry, pane: PaneName, angleDeg = 0): { right: Vec3; down: Vec3 } {
  switch (pane) {
    case 'axial':
      return { right: g.row, down: g.column };
    case 'coronal':
      return { right: g.row, down: g.normal };
    case 'sagittal':
      return { right: g.column, down: g.normal };
    case 'oblique': {
      const a = (angleDeg * Math.PI) / 180;
      return { right: unit(add(scale(g.row, Math.cos(a)), scale(g.column, -Math.sin(a)))), down: g.normal };
    }
  }
}

export interface EdgeLabels {
  left: string;
  right: string;
  top: string;
  bottom: string;
}

/** The orientation letters at the four edges of a pane. */
export function edgeLabels(g: Geometry, pane: PaneName, angleDeg = 0): EdgeLabels {
  const { right, down } = paneAxes(g, pane, angleDeg);
  return { left: directionLabel(neg(right)), right: directionLabel(right), top: directionLabel(neg(down)), bottom: directionLabel(down) };
}

/** How many planes a pane of an orthogonal orientation has, and the cursor axis it moves along. */
export function planeAxis(pane: Orientation): 0 | 1 | 2 {
  return pane === 'axial' ? 2 : pane === 'coronal' ? 1 : 0;
}

export const planeCount = (g: Pick<Geometry, 'dims'>, pane: Orientation): number => g.dims[planeAxis(pane)];

/** The index of a coordinate's plane: rounded to the nearest voxel centre, kept inside the volume. */
export const planeIndex = (coordinate: number, count: number): number => Math.min(count - 1, Math.max(0, Math.round(coordinate)));

/** The cursor's voxel index of each orthogonal orientation. */
export function sliceOf(g: Pick<Geometry, 'dims'>, cursor: Vec3, pane: Orientation): number {
  const axis = planeAxis(pane);
  return planeIndex(cursor[axis], g.dims[axis]);
}

/** Patient position (mm) of a point in voxel index coordinates; null when the series has no position. */
export function patientPoint(g: Geometry, p: Vec3): Vec3 | null {
  if (!g.origin) return null;
  const [sx, sy, sz] = g.voxelSize;
  return add(add(add(g.origin, scale(g.row, p[0] * sx)), scale(g.column, p[1] * sy)), scale(g.normal, p[2] * sz));
}

/**
 * Where a pane's plane lies, in mm: the patient coordinate (along the patient axis nearest to the
 * plane's normal, so an axial plane gives its z like DICOM's SliceLocation) of the plane through
 * the cursor; for a series without positions, the distance from the first plane. The axis is
 * named by its letter (x, y, z).
 */
export function planePosition(g: Geometry, pane: Orientation, cursor: Vec3): { axis: 'x' | 'y' | 'z'; mm: number } {
  const normal = pane === 'axial' ? g.normal : pane === 'coronal' ? g.column : g.row;
  const axisIndex = [0, 1, 2].reduce((best, i) => (Math.abs(normal[i]) > Math.abs(normal[best]) ? i : best), 0);
  const axis = (['x', 'y', 'z'] as const)[axisIndex];
  const slices: Vec3 = [sliceOf(g, cursor, 'sagittal'), sliceOf(g, cursor, 'coronal'), sliceOf(g, cursor, 'axial')];
  const p = patientPoint(g, slices);
  if (p) return { axis, mm: p[axisIndex] };
  const k = planeAxis(pane);
  return { axis, mm: slices[k] * g.voxelSize[k] };
}

/** The oblique image's pixel size and steps (see the module comment). */
export function obliqueSteps(voxelSize: Vec3, angleDeg: number): { s: number; eu: [number, number]; normal: [number, number]; fixedStep: number } {
  const [sx, sy, sz] = voxelSize;
  const s = Math.min(sx, sy, sz);
  const a = (angleDeg * Math.PI) / 180;
  return {
    s,
    // Voxels per image column along x and y.
    eu: [(Math.cos(a) * s) / sx, (-Math.sin(a) * s) / sy],
    // Voxels per plane step along x and y (one step of s mm along the plane's normal).
    normal: [(Math.sin(a) * s) / sx, (Math.cos(a) * s) / sy],
    // Slices per image row.
    fixedStep: s / sz,
  };
}

/** The number of the oblique plane through the cursor (see the module comment). */
export function obliquePlane(voxelSize: Vec3, cursor: Vec3, angleDeg: number): number {
  const [sx, sy] = voxelSize;
  const a = (angleDeg * Math.PI) / 180;
  const { s } = obliqueSteps(voxelSize, angleDeg);
  return Math.round((cursor[0] * sx * Math.sin(a) + cursor[1] * sy * Math.cos(a)) / s);
}

/** Whether a point lies inside the volume's voxel centres (where `/oblique` accepts its cursor). */
export const insideVolume = (dims: Vec3, p: readonly number[]): boolean => p.every((v, i) => v >= 0 && v <= dims[i] - 1);

/** The cursor moved by `steps` oblique planes, or null when that leaves the volume. */
export function stepOblique(voxelSize: Vec3, dims: Vec3, cursor: Vec3, angleDeg: number, steps: number): Vec3 | null {
  const { normal } = obliqueSteps(voxelSize, angleDeg);
  const next: Vec3 = [round2(cursor[0] + steps * normal[0]), round2(cursor[1] + steps * normal[1]), cursor[2]];
  return insideVolume(dims, next) ? next : null;
}

/** A coordinate rounded to 1/100 voxel (what the URL and the API are given). */
export const round2 = (v: number): number => Math.round(v * 100) / 100;

/** An angle in degrees brought into (-180, 180]. */
export function normalizeAngle(deg: number): number {
  let a = deg % 360;
  if (a <= -180) a += 360;
  if (a > 180) a -= 360;
  return a === 0 ? 0 : a;
}

/**
 * The point of the volume under an oblique image pixel: column `u` and row `v` (whole pixels) of
 * an image made for cursor `c` at `angleDeg`, whose cursor column is `centerColumn`
 * (X-Circus-Center). x and y to 1/100 voxel, z the nearest slice.
 */
export function obliquePoint(voxelSize: Vec3, dims: Vec3, c: Vec3, angleDeg: number, centerColumn: number, u: number, v: number): Vec3 {
  const { eu, fixedStep } = obliqueSteps(voxelSize, angleDeg);
  const k = u - centerColumn;
  const clamp = (x: number, n: number): number => Math.min(n - 1, Math.max(0, x));
  return [round2(clamp(c[0] + k * eu[0], dims[0])), round2(clamp(c[1] + k * eu[1], dims[1])), planeIndex(v * fixedStep, dims[2])];
}

/** The box (CSS pixels) an image of `mmWidth` x `mmHeight` takes in a pane: as large as fits, centred, at true aspect. */
export function fitBox(
  paneWidth: number,
  paneHeight: number,
  mmWidth: number,
  mmHeight: number,
): { left: number; top: number; width: number; height: number } {
  if (!(mmWidth > 0 && mmHeight > 0 && paneWidth > 0 && paneHeight > 0)) return { left: 0, top: 0, width: 0, height: 0 };
  const k = Math.min(paneWidth / mmWidth, paneHeight / mmHeight);
  const width = mmWidth * k;
  const height = mmHeight * k;
  return { left: (paneWidth - width) / 2, top: (paneHeight - height) / 2, width, height };
}

export interface Segment {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** The part of the line through a segment's two points that lies inside [0, w] x [0, h], or null (Liang-Barsky). */
export function clipLine<T extends Segment>(line: T, w: number, h: number): T | null {
  const dx = line.x2 - line.x1;
  const dy = line.y2 - line.y1;
  let t0 = -Infinity;
  let t1 = Infinity;
  const edges: [number, number][] = [
    [-dx, line.x1],
    [dx, w - line.x1],
    [-dy, line.y1],
    [dy, h - line.y1],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return null;
    } else {
      const r = q / p;
      if (p < 0) t0 = Math.max(t0, r);
      else t1 = Math.min(t1, r);
    }
  }
  if (t0 > t1 || !Number.isFinite(t0) || !Number.isFinite(t1)) return null;
  return { ...line, x1: line.x1 + t0 * dx, y1: line.y1 + t0 * dy, x2: line.x1 + t1 * dx, y2: line.y1 + t1 * dy };
}
