/**
 * Puts the slices of a series in volume order and works out the volume's geometry.
 *
 * Policy (the contract's Conventions):
 * - Slices are ordered by geometry, never by file name: each ImagePositionPatient is projected
 *   on the normal n = rowCosines x columnCosines and the projections are sorted.
 * - Direction: when every slice has an InstanceNumber and the numbers are strictly monotonic
 *   in that order, z runs the way InstanceNumber increases; otherwise z runs in decreasing
 *   projection (an ordinary axial stack then has the head at z = 0).
 * - Without positions (or orientation) on every slice: ordered by InstanceNumber when every
 *   slice has a distinct one, else in the given order; sz then comes from
 *   SpacingBetweenSlices, then SliceThickness, then 1.
 * - sz is the median distance between neighbouring slice centres along n; the spacing is
 *   uniform when every distance is within max(0.01 mm, 1 % of sz) of it.
 * - Refused (422, naming the slice): different Rows/Columns or PixelSpacing, orientations
 *   differing by more than 1e-3 in any component, two slices at one position (closer than
 *   1e-3 mm along n), an orientation whose cosines are not two independent directions.
 *   Every refusal but a size one (Rows/Columns) is a SliceGeometryError: the slices are not
 *   one volume, but may still be a stack of images (`stackSlices`).
 * - A stack (`stackSlices`): same-size images in InstanceNumber order (ascending; images
 *   without one after those with one; ties and those keep the given order), sx and sy from the
 *   PixelSpacing of the image at z = 0 (1 when absent), sz = 1, its orientation (or the
 *   identity when it has none or a broken one) and position (or no origin).
 */
import { CircusError, unprocessable } from '../errors.js';
import { cross, dot, normalize, scale, type Vec3 } from '../geometry/vec3.js';
import type { VolumeGeometry } from './volume.js';

export interface SliceGeometryInput {
  /** How the slice is named in messages (a file name). */
  readonly label: string;
  readonly rows: number;
  readonly columns: number;
  /** [row spacing, column spacing] in mm, as DICOM PixelSpacing lists them. */
  readonly pixelSpacing?: readonly number[];
  readonly imagePositionPatient?: readonly number[];
  readonly imageOrientationPatient?: readonly number[];
  readonly instanceNumber?: number;
  readonly sliceThickness?: number;
  readonly spacingBetweenSlices?: number;
}

export interface SliceOrdering {
  /** `order[z]` is the index into the input of the slice at z. */
  readonly order: number[];
  readonly voxelSize: [number, number, number];
  readonly uniformSpacing: boolean;
  /** Distances between neighbouring slices along the normal (length n - 1; empty without positions and for a stack). */
  readonly spacings: number[];
  readonly geometry: VolumeGeometry;
}

/**
 * A 422 for slices that are not one volume by their geometry alone (orientations, positions,
 * PixelSpacing): the images may still be served as a stack. Refusals for anything else (sizes,
 * pixel data, limits) are plain CircusErrors.
 */
export class SliceGeometryError extends CircusError {
  constructor(message: string) {
    super('UNPROCESSABLE_SERIES', message);
  }
}

const geometryError = (message: string): SliceGeometryError => new SliceGeometryError(message);

const ORIENTATION_TOLERANCE = 1e-3;
const SAME_POSITION_MM = 1e-3;
const DEFAULT_ORIENTATION = [1, 0, 0, 0, 1, 0];

const finite = (values: readonly number[] | undefined, count: number): boolean =>
  values !== undefined && values.length >= count && values.slice(0, count).every(Number.isFinite);

/** Without negative zeros, so vectors print and compare cleanly. */
const clean = (v: Vec3): Vec3 => [v[0] + 0, v[1] + 0, v[2] + 0];

const positive = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && v > 0;

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fallbackSpacing(s: SliceGeometryInput): number {
  if (positive(s.spacingBetweenSlices)) return s.spacingBetweenSlices;
  if (positive(s.sliceThickness)) return s.sliceThickness;
  return 1;
}

/** Refuses (422, not a SliceGeometryError) slices that are not all of one positive size. */
function checkSizes(slices: readonly SliceGeometryInput[]): void {
  const first = slices[0];
  if (!(first.rows > 0 && first.columns > 0)) {
    throw unprocessable(`slice ${first.label}: Rows x Columns is ${first.rows}x${first.columns}`);
  }
  for (const s of slices) {
    if (s.rows !== first.rows || s.columns !== first.columns) {
      throw unprocessable(
        `slice ${s.label}: Rows x Columns ${s.rows}x${s.columns} differ from ${first.rows}x${first.columns} of slice ${first.label}`,
      );
    }
  }
}

function checkConsistency(slices: readonly SliceGeometryInput[]): void {
  checkSizes(slices);
  const first = slices[0];
  for (const s of slices) {
    const a = s.pixelSpacing;
    const b = first.pixelSpacing;
    if (finite(a, 2) !== finite(b, 2) || (a && b && (Math.abs(a[0] - b[0]) > 1e-3 || Math.abs(a[1] - b[1]) > 1e-3))) {
      throw geometryError(
        `slice ${s.label}: PixelSpacing ${a?.join('\\') ?? 'absent'} differs from ${b?.join('\\') ?? 'absent'} of slice ${first.label}`,
      );
    }
    const oa = s.imageOrientationPatient;
    const ob = first.imageOrientationPatient;
    if (finite(oa, 6) && finite(ob, 6)) {
      for (let k = 0; k < 6; k++) {
        if (Math.abs(oa![k] - ob![k]) > ORIENTATION_TOLERANCE) {
          throw geometryError(`slice ${s.label}: ImageOrientationPatient ${oa!.join('\\')} differs from ${ob!.join('\\')} of slice ${first.label}`);
        }
      }
    } else if (finite(oa, 6) !== finite(ob, 6)) {
      throw geometryError(`slice ${s.label}: ImageOrientationPatient is present on some slices and missing on others`);
    }
  }
}

function orientationOf(s: SliceGeometryInput): { row: Vec3; col: Vec3; normal: Vec3; iop: number[] } {
  const iop = finite(s.imageOrientationPatient, 6) ? s.imageOrientationPatient!.slice(0, 6) : DEFAULT_ORIENTATION;
  try {
    const row = normalize([iop[0], iop[1], iop[2]]);
    const col = normalize([iop[3], iop[4], iop[5]]);
    const normal = normalize(cross(row, col));
    if (Math.abs(dot(row, col)) > 0.01) throw new RangeError('not orthogonal');
    return { row, col, normal, iop };
  } catch {
    throw geometryError(`slice ${s.label}: ImageOrientationPatient ${iop.join('\\')} is not two orthogonal directions`);
  }
}

export function orderSlices(slices: readonly SliceGeometryInput[]): SliceOrdering {
  if (slices.length === 0) throw unprocessable('the series has no image slices');
  checkConsistency(slices);
  const first = slices[0];
  const { row, col, normal, iop } = orientationOf(first);
  const sy = finite(first.pixelSpacing, 2) && first.pixelSpacing![0] > 0 ? first.pixelSpacing![0] : 1;
  const sx = finite(first.pixelSpacing, 2) && first.pixelSpacing![1] > 0 ? first.pixelSpacing![1] : 1;
  const haveInstanceNumbers = slices.every((s) => s.instanceNumber !== undefined && Number.isFinite(s.instanceNumber));
  const positioned = slices.every((s) => finite(s.imagePositionPatient, 3)) && finite(first.imageOrientationPatient, 6);

  if (!positioned) {
    const order = slices.map((_, i) => i);
    if (haveInstanceNumbers && new Set(slices.map((s) => s.instanceNumber)).size === slices.length) {
      order.sort((a, b) => slices[a].instanceNumber! - slices[b].instanceNumber!);
    }
    return {
      order,
      voxelSize: [sx, sy, fallbackSpacing(first)],
      uniformSpacing: true,
      spacings: [],
      geometry: {
        origin: null,
        rowDirection: clean(row),
        columnDirection: clean(col),
        sliceDirection: clean(scale(normal, -1)),
        imageOrientationPatient: iop,
      },
    };
  }

  const projection = slices.map((s) => dot(s.imagePositionPatient as unknown as Vec3, normal));
  // Ascending projection first; ties keep input order so the duplicate message is stable.
  const ascending = slices.map((_, i) => i).sort((a, b) => projection[a] - projection[b] || a - b);
  for (let k = 1; k < ascending.length; k++) {
    const a = ascending[k - 1];
    const b = ascending[k];
    if (projection[b] - projection[a] < SAME_POSITION_MM) {
      throw geometryError(
        `slice ${slices[b].label}: same position as slice ${slices[a].label} (ImagePositionPatient ${slices[b].imagePositionPatient!.join('\\')})`,
      );
    }
  }
  // InstanceNumber decreasing along ascending projection gives the default direction anyway.
  const numbers = ascending.map((i) => slices[i].instanceNumber!);
  const increasing = haveInstanceNumbers && numbers.length > 1 && numbers.every((v, k) => k === 0 || v > numbers[k - 1]);
  const order = increasing ? ascending : [...ascending].reverse();

  const spacings: number[] = [];
  for (let k = 1; k < order.length; k++) spacings.push(Math.abs(projection[order[k]] - projection[order[k - 1]]));
  const sz = spacings.length > 0 ? median(spacings) : fallbackSpacing(first);
  const tolerance = Math.max(0.01, 0.01 * sz);
  const uniformSpacing = spacings.every((d) => Math.abs(d - sz) <= tolerance);
  const origin = slices[order[0]].imagePositionPatient!.slice(0, 3) as unknown as Vec3;
  return {
    order,
    voxelSize: [sx, sy, sz],
    uniformSpacing,
    spacings,
    geometry: {
      origin: clean(origin),
      rowDirection: clean(row),
      columnDirection: clean(col),
      sliceDirection: clean(increasing ? normal : scale(normal, -1)),
      imageOrientationPatient: iop,
    },
  };
}

/**
 * The slices as a stack of images rather than a volume (see the module comment): for series
 * whose slices `orderSlices` refuses with a SliceGeometryError. Refuses (422) slices of
 * different sizes, as `orderSlices` does.
 */
export function stackSlices(slices: readonly SliceGeometryInput[]): SliceOrdering {
  if (slices.length === 0) throw unprocessable('the series has no image slices');
  checkSizes(slices);
  const numbered = (s: SliceGeometryInput): boolean => s.instanceNumber !== undefined && Number.isFinite(s.instanceNumber);
  const indices = slices.map((_, i) => i);
  const order = [
    // Array.prototype.sort is stable: equal numbers keep the given order.
    ...indices.filter((i) => numbered(slices[i])).sort((a, b) => slices[a].instanceNumber! - slices[b].instanceNumber!),
    ...indices.filter((i) => !numbered(slices[i])),
  ];
  const first = slices[order[0]];
  let orientation: ReturnType<typeof orientationOf>;
  try {
    orientation = orientationOf(first);
  } catch {
    orientation = orientationOf({ ...first, imageOrientationPatient: undefined });
  }
  const { row, col, normal, iop } = orientation;
  const spacing = first.pixelSpacing;
  const sy = finite(spacing, 2) && spacing![0] > 0 ? spacing![0] : 1;
  const sx = finite(spacing, 2) && spacing![1] > 0 ? spacing![1] : 1;
  return {
    order,
    voxelSize: [sx, sy, 1],
    uniformSpacing: true,
    spacings: [],
    geometry: {
      origin: finite(first.imagePositionPatient, 3) ? clean(first.imagePositionPatient!.slice(0, 3) as unknown as Vec3) : null,
      rowDirection: clean(row),
      columnDirection: clean(col),
      sliceDirection: clean(normal),
      imageOrientationPatient: iop,
    },
  };
}
