import type { Vec3 } from '../geometry/vec3.js';

/** Pixel format numbers as in the original PixelFormat, plus Float32 (5) as an extension. */
export const PixelFormat = {
  Unknown: -1,
  UInt8: 0,
  Int8: 1,
  UInt16: 2,
  Int16: 3,
  Binary: 4,
  Float32: 5,
} as const;
export type PixelFormat = (typeof PixelFormat)[keyof typeof PixelFormat];

export type VoxelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Float32Array;

/**
 * Bytes one voxel takes in memory (a Volume's `data`). Binary volumes keep one byte (0 or 1) a
 * voxel, so that they are sampled like UInt8; they are packed 8 voxels a byte only when sent
 * (see `transferByteLength`).
 */
export const BYTES_PER_VOXEL: Record<PixelFormat, number> = {
  [PixelFormat.Unknown]: 0,
  [PixelFormat.UInt8]: 1,
  [PixelFormat.Int8]: 1,
  [PixelFormat.UInt16]: 2,
  [PixelFormat.Int16]: 2,
  [PixelFormat.Binary]: 1,
  [PixelFormat.Float32]: 4,
};

/** Bits one voxel takes in the contract's raw streams (/raw): 1 for Binary, else 8 * BYTES_PER_VOXEL. */
export const TRANSFER_BITS_PER_VOXEL: Record<PixelFormat, number> = {
  [PixelFormat.Unknown]: 0,
  [PixelFormat.UInt8]: 8,
  [PixelFormat.Int8]: 8,
  [PixelFormat.UInt16]: 16,
  [PixelFormat.Int16]: 16,
  [PixelFormat.Binary]: 1,
  [PixelFormat.Float32]: 32,
};

/** Bytes that `count` voxels of `format` take in a raw stream, packed from a byte boundary (whole bytes, rounded up). */
export const transferByteLength = (format: PixelFormat, count: number): number => Math.ceil((count * TRANSFER_BITS_PER_VOXEL[format]) / 8);

/** The value range each integer format can hold exactly. */
export const FORMAT_RANGE: Partial<Record<PixelFormat, readonly [number, number]>> = {
  [PixelFormat.UInt8]: [0, 255],
  [PixelFormat.Int8]: [-128, 127],
  [PixelFormat.UInt16]: [0, 65535],
  [PixelFormat.Int16]: [-32768, 32767],
  [PixelFormat.Binary]: [0, 1],
};

/**
 * A zeroed voxel array of `format` for `count` voxels (BYTES_PER_VOXEL bytes each; Binary: a
 * Uint8Array of 0/1). Throws RangeError for Unknown.
 */
/**
 * A zeroed voxel array of `count` voxels, in shared memory (SharedArrayBuffer) so that worker
 * threads can read (render) and write (decode) the same volume without copies.
 */
export function allocateVoxels(format: PixelFormat, count: number): VoxelArray {
  const bytes = BYTES_PER_VOXEL[format];
  if (!(bytes >= 1)) throw new RangeError(`cannot allocate voxels of pixel format ${format}`);
  const buffer = new SharedArrayBuffer(count * bytes);
  switch (format) {
    case PixelFormat.UInt8:
    case PixelFormat.Binary:
      return new Uint8Array(buffer);
    case PixelFormat.Int8:
      return new Int8Array(buffer);
    case PixelFormat.UInt16:
      return new Uint16Array(buffer);
    case PixelFormat.Int16:
      return new Int16Array(buffer);
    default:
      return new Float32Array(buffer);
  }
}

export interface Window {
  readonly width: number;
  readonly level: number;
}

/** Where the volume sits in patient space (LPS, mm). */
export interface VolumeGeometry {
  /** Position of the centre of voxel (0, 0, 0); null when the series has no positions. */
  readonly origin: Vec3 | null;
  /** Unit vector of +x (along a row, increasing column). */
  readonly rowDirection: Vec3;
  /** Unit vector of +y (down a column, increasing row). */
  readonly columnDirection: Vec3;
  /** Unit vector of +z (increasing slice index). */
  readonly sliceDirection: Vec3;
  /** The six numbers of ImageOrientationPatient (row then column cosines). */
  readonly imageOrientationPatient: readonly number[];
}

/**
 * What a series' headers fix about its volume before any voxel is read: size, spacing, place in
 * patient space, display defaults and attributes. A Volume is one (with its voxels and their
 * range), and so is a volume while it loads (dicom/progressiveVolume.ts: VolumeLoad, with its
 * stored format and rescales): a field added here is carried by both, and by everything that
 * makes them from it (the loader's plan and finish, `loadedVolume`), with no other edit.
 */
export interface VolumeHeader {
  readonly dims: readonly [number, number, number];
  /** [sx, sy, sz] in mm: column spacing, row spacing, slice spacing. */
  readonly voxelSize: readonly [number, number, number];
  readonly geometry: VolumeGeometry;
  /** Whether every pair of neighbouring slices is `voxelSize[2]` apart. */
  readonly uniformSpacing: boolean;
  readonly monochrome1: boolean;
  /** The DICOM window (first WindowCenter/WindowWidth values) of each slice, in z order. */
  readonly sliceWindows: readonly (Window | null)[];
  /**
   * Bounds every value lies within, known from the headers alone (BitsStored and integer
   * rescales, padding included); null when the headers cannot bound them, absent for volumes
   * not made by the loader.
   */
  readonly valueBounds?: readonly [number, number] | null;
  /**
   * True for a stack of images that is not one volume (images in InstanceNumber order, then
   * source order; slice spacing 1); absent for a volume.
   */
  readonly stack?: boolean;
  readonly attributes: {
    readonly modality: string | null;
    readonly photometricInterpretation: string;
    readonly seriesInstanceUid: string | null;
    readonly studyInstanceUid: string | null;
    readonly seriesDescription: string | null;
  };
}

/**
 * A 3D voxel volume: its header (see VolumeHeader), its voxels and their range. Immutable once
 * built: requests read it, never write it. Voxel (x, y, z) is `data[x + nx * (y + ny * z)]`;
 * values are modality values. A Binary volume (BitsAllocated 1: masks, label maps) holds 0 and 1,
 * one byte a voxel (a Uint8Array).
 */
export interface Volume extends VolumeHeader {
  readonly pixelFormat: PixelFormat;
  readonly data: VoxelArray;
  readonly minValue: number;
  readonly maxValue: number;
}

/** The header of a volume: the volume less its voxels and their range. */
export function headerOf(v: Volume): VolumeHeader {
  const { pixelFormat, data, minValue, maxValue, ...header } = v;
  return header;
}

/** What sampling and windowing read of a volume: its size, format and voxels (a volume, or its shared-memory view in a worker). */
export type VoxelGrid = Pick<Volume, 'dims' | 'voxelSize' | 'pixelFormat' | 'data'>;

/** The original's window estimate over all voxels, without its bugs. */
export function estimatedWindow(v: Pick<Volume, 'minValue' | 'maxValue'>): Window {
  const width = Math.floor(v.maxValue - v.minValue + 1);
  return { width, level: Math.floor(v.minValue + width / 2) };
}
