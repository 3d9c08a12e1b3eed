/**
 * Step 2 of loading a volume, the plan (volumeLoader.ts says what each step does): from the
 * header pass alone, the slices ordered (or ordered as a stack), the size checked against
 * maxVoxels, and the header of the load and its volume fixed (`planVolume`, no I/O); then the
 * stored voxels reserved with the caller and allocated (`reserveStored`).
 *
 * Before completion a slice's values are known exactly when the plan tells them (see
 * `earlyValues`): its Rescale Slope and Intercept are integers (so its modality values are
 * integers, held exactly by whatever format the volume gets, Float32 included, as long as they
 * stay within 2^24), and its padding voxels, if any, are proven to keep their own value (which
 * depends on the smallest value of the whole series otherwise).
 */
import { tooLarge } from '../../core/errors.js';
import { orderSlices, SliceGeometryError, type SliceGeometryInput, type SliceOrdering, stackSlices } from '../../core/volume/sliceOrdering.js';
import { allocateVoxels, BYTES_PER_VOXEL, FORMAT_RANGE, PixelFormat, type VoxelArray, type Window } from '../../core/volume/volume.js';
import type { EarlyValues, LoadHeader } from '../progressiveVolume.js';
import type { SliceHeader } from '../sliceHeader.js';
import { storedBounds } from '../storedValues.js';
import type { LoadOptions } from '../volumeLoader.js';
import type { HeaderPass, Slice } from './headerPass.js';

/** What the plan fixes: the slices in z order and the header of the load and of its volume. */
export interface VolumePlan {
  /** The slices in z order (ordered.length is dims[2]). */
  readonly ordered: readonly Slice[];
  readonly header: LoadHeader;
}

/**
 * Orders the slices of a header pass and fixes the volume's header. Throws what the ordering
 * throws (422 naming the slices; a SliceGeometryError only without `allowStack`) and 413 beyond
 * maxVoxels.
 */
export function planVolume({ slices }: HeaderPass, options: Pick<LoadOptions, 'maxVoxels' | 'allowStack' | 'log'>): VolumePlan {
  const geometry: SliceGeometryInput[] = slices.map((s) => ({
    label: s.label,
    rows: s.header.rows,
    columns: s.header.columns,
    pixelSpacing: s.header.pixelSpacing,
    imagePositionPatient: s.header.imagePositionPatient,
    imageOrientationPatient: s.header.imageOrientationPatient,
    instanceNumber: s.geometryNumber,
    sliceThickness: s.header.sliceThickness,
    spacingBetweenSlices: s.header.spacingBetweenSlices,
  }));
  let stack = false;
  let ordering: SliceOrdering;
  try {
    ordering = orderSlices(geometry);
  } catch (err) {
    if (!options.allowStack || !(err instanceof SliceGeometryError)) throw err;
    options.log?.(`opened as a stack of images: ${err.message}`);
    ordering = stackSlices(geometry.map((g, i) => ({ ...g, instanceNumber: slices[i].stackNumber })));
    stack = true;
  }
  const ordered = ordering.order.map((i) => slices[i]);
  const first = ordered[0].header;
  const nx = first.columns;
  const ny = first.rows;
  const nz = ordered.length;
  const voxels = nx * ny * nz;
  if (voxels > options.maxVoxels) {
    throw tooLarge(`the series has ${nx}x${ny}x${nz} = ${voxels} voxels, more than the limit maxVoxels (${options.maxVoxels})`);
  }
  const stored = storedFormat(first);
  const binary = stored === PixelFormat.Binary;
  const windows: (Window | null)[] = ordered.map(({ header: h }) =>
    // DICOM requires WindowWidth >= 1; a 0 (some MR scanners write 0\\0) means no window.
    // A mask's window attributes do not apply to its values (0 and 1).
    !binary && h.windowCenter !== undefined && h.windowWidth !== undefined && h.windowWidth >= 1
      ? { level: h.windowCenter, width: h.windowWidth }
      : null,
  );
  const header: LoadHeader = {
    dims: [nx, ny, nz],
    voxelSize: ordering.voxelSize,
    geometry: ordering.geometry,
    uniformSpacing: ordering.uniformSpacing,
    ...(stack ? { stack: true } : {}),
    monochrome1: first.photometricInterpretation === 'MONOCHROME1',
    storedFormat: stored,
    sliceRescale: ordered.map(({ header: h }) =>
      binary ? { slope: 1, intercept: 0 } : { slope: h.rescaleSlope, intercept: h.rescaleIntercept, padding: h.padding },
    ),
    sliceWindows: windows,
    valueBounds: binary ? [0, 1] : valueBounds(ordered.map((s) => s.header)),
    attributes: {
      modality: first.modality ?? null,
      photometricInterpretation: first.photometricInterpretation,
      seriesInstanceUid: first.seriesInstanceUid ?? null,
      studyInstanceUid: first.studyInstanceUid ?? null,
      seriesDescription: first.seriesDescription ?? null,
    },
  };
  return { ordered, header };
}

/**
 * Reserves the stored voxels' bytes with `reserve` (which throws to refuse: 413, 503), then
 * allocates them, zeroed, in shared memory: nx * ny * nz of the stored format.
 */
export async function reserveStored({ header }: VolumePlan, reserve: LoadOptions['reserve']): Promise<VoxelArray> {
  const [nx, ny, nz] = header.dims;
  const voxels = nx * ny * nz;
  await reserve?.(voxels * BYTES_PER_VOXEL[header.storedFormat]);
  return allocateVoxels(header.storedFormat, voxels);
}

function storedFormat(h: SliceHeader): PixelFormat {
  if (h.bitsAllocated === 1) return PixelFormat.Binary;
  if (h.bitsAllocated === 8) return h.pixelRepresentation === 1 ? PixelFormat.Int8 : PixelFormat.UInt8;
  return h.pixelRepresentation === 1 ? PixelFormat.Int16 : PixelFormat.UInt16;
}

/**
 * What each slice's values will be in the complete volume, where the header pass tells them
 * (null where it does not). A slice's real (not padding) voxels are known when its Rescale
 * Slope and Intercept are integers and its values stay within 2^24: their modality values are
 * then integers that every format the volume may get (the stored one, Int16, or Float32) holds
 * exactly, as does the grid `axialSlice` makes (the narrowest of Int16, UInt16 and Float32 that
 * holds them all; a lookup table and the window expression give the same bytes). Its padding
 * voxels keep their own value `padding[0] * slope + intercept` when that is an integer no
 * greater than any value a real voxel of any slice can have (from BitsStored and each slice's
 * rescale), no greater than 0 (the minimum when every voxel is padding), and held by the stored
 * format and Int16 alike; otherwise they may become the series' minimum (`paddingValueFor`),
 * which only the complete volume knows. Masks are always known (0 and 1).
 */
export function earlyValues(headers: readonly SliceHeader[], stored: PixelFormat): (EarlyValues | null)[] {
  if (stored === PixelFormat.Binary) return headers.map(() => ({ slope: 1, intercept: 0, paddingValue: null, format: PixelFormat.Binary }));
  const EXACT = 2 ** 24;
  let lowest = Infinity;
  for (const h of headers) {
    const real = realStoredBounds(h);
    if (!real) continue;
    lowest = Math.min(lowest, real[0] * h.rescaleSlope + h.rescaleIntercept, real[1] * h.rescaleSlope + h.rescaleIntercept);
  }
  const within = (v: number, f: PixelFormat): boolean => {
    const r = FORMAT_RANGE[f];
    return r !== undefined && v >= r[0] && v <= r[1];
  };
  return headers.map((h) => {
    const { rescaleSlope: slope, rescaleIntercept: intercept, padding } = h;
    if (!Number.isInteger(slope) || !Number.isInteger(intercept)) return null;
    const [lo, hi] = storedBounds(h);
    const ends = [lo * slope + intercept, hi * slope + intercept];
    if (Math.max(Math.abs(ends[0]), Math.abs(ends[1])) > EXACT) return null;
    // The narrowest of Int16, UInt16 and Float32 that holds every value the slice can have.
    const holding = (values: number[]): PixelFormat =>
      [PixelFormat.Int16, PixelFormat.UInt16].find((f) => values.every((v) => within(v, f))) ?? PixelFormat.Float32;
    if (!padding) return { slope, intercept, paddingValue: null, format: holding(ends) };
    const own = padding[0] * slope + intercept;
    const keepsOwn =
      Number.isInteger(own) && Math.abs(own) <= EXACT && own <= lowest && own <= 0 && within(own, stored) && within(own, PixelFormat.Int16);
    return { slope, intercept, padding, paddingValue: keepsOwn ? own : null, format: holding(keepsOwn ? [...ends, own] : ends) };
  });
}

/**
 * Bounds on every modality value of the series from its headers alone: each slice's BitsStored
 * range through its (integer) Rescale Slope and Intercept, and each padding value as stored;
 * null when a slice's rescale is not integer (its values need not be integers).
 */
export function valueBounds(headers: readonly SliceHeader[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of headers) {
    const { rescaleSlope: slope, rescaleIntercept: intercept, padding } = h;
    if (!Number.isInteger(slope) || !Number.isInteger(intercept)) return null;
    const [a, b] = storedBounds(h);
    const values = [a * slope + intercept, b * slope + intercept];
    if (padding) values.push(padding[0] * slope + intercept);
    lo = Math.min(lo, ...values);
    hi = Math.max(hi, ...values);
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * The smallest and largest stored value a real (not padding) voxel of a slice can have: the
 * BitsStored range with the padding range cut from its ends; null when padding covers it all.
 */
function realStoredBounds(h: SliceHeader): [number, number] | null {
  let [lo, hi] = storedBounds(h);
  const p = h.padding;
  if (p) {
    if (p[0] <= lo && p[1] >= lo) lo = p[1] + 1;
    if (p[0] <= hi && p[1] >= hi) hi = p[0] - 1;
  }
  return lo <= hi ? [lo, hi] : null;
}
