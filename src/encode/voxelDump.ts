/**
 * The raw volume streams of the contract's /raw, as a sequence of buffers (before gzip).
 *
 * `combined` (the original's dicom_voxel_dump): blocks of
 *   int32LE jsonLength | int32LE binaryLength | JSON (UTF-8) | binary
 * - first: binaryLength -1, {width, height, depth, dataType}
 * - one per slice z: binaryLength nx*ny*bytesPerVoxel, {success, instanceNumber: z + 1,
 *   windowLevel, windowWidth} (the slice's DICOM window, null when absent), then its voxels
 * - last: binaryLength -2, {voxelWidth, voxelHeight, voxelDepth, estimatedWindowLevel, estimatedWindowWidth}
 * `voxels`: the voxels alone, z-major. Voxels are little-endian; on a little-endian machine the
 * slices are views of the volume, not copies.
 *
 * Binary volumes (pixelFormat 4) are sent 1 bit a voxel, 8 voxels a byte, most significant bit
 * first (the original's RawData layout): voxel i of a packed run is bit 7 - i % 8 of byte
 * floor(i / 8), and the unused low bits of the run's last byte are 0.
 * - `voxels`: the whole volume is one run (z-major, no gap between slices):
 *   ceil(nx*ny*nz / 8) bytes.
 * - `combined`: each slice is its own run, starting on a byte boundary: binaryLength is
 *   ceil(nx*ny / 8).
 */
import { endianness } from 'node:os';
import { estimatedWindow, PixelFormat, transferByteLength, type Volume, type VoxelArray } from '../core/volume/volume.js';

export type RawFormat = 'combined' | 'voxels';

const LITTLE = endianness() === 'LE';

/** Voxels of a Binary volume packed into one buffer of the `voxels` stream (a multiple of 8, so every piece starts on a byte boundary). */
const PACKED_PIECE_VOXELS = 8 << 20;

function block(json: unknown, binaryLength: number): Buffer {
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeInt32LE(text.length, 0);
  head.writeInt32LE(binaryLength, 4);
  return Buffer.concat([head, text]);
}

/**
 * Packs `count` voxels of `src` from `start`, 8 a byte, most significant bit first: voxel
 * start + i is bit 7 - i % 8 of byte floor(i / 8); any non-zero voxel is a 1. Returns
 * ceil(count / 8) bytes, the unused low bits of the last one 0.
 */
export function packBitsMsbFirst(src: VoxelArray, start: number, count: number): Buffer {
  const out = Buffer.alloc(Math.ceil(count / 8));
  const whole = count - (count % 8);
  let i = 0;
  for (let o = 0; i < whole; o++, i += 8) {
    const s = start + i;
    out[o] =
      (src[s] ? 0x80 : 0) |
      (src[s + 1] ? 0x40 : 0) |
      (src[s + 2] ? 0x20 : 0) |
      (src[s + 3] ? 0x10 : 0) |
      (src[s + 4] ? 0x08 : 0) |
      (src[s + 5] ? 0x04 : 0) |
      (src[s + 6] ? 0x02 : 0) |
      (src[s + 7] ? 0x01 : 0);
  }
  for (; i < count; i++) if (src[start + i]) out[Math.floor(i / 8)] |= 0x80 >> (i % 8);
  return out;
}

/** The bytes of slice z as the stream carries them (packed for Binary). */
function sliceBytes(v: Volume, z: number): Buffer {
  const [nx, ny] = v.dims;
  if (v.pixelFormat === PixelFormat.Binary) return packBitsMsbFirst(v.data, z * nx * ny, nx * ny);
  const bpv = v.data.BYTES_PER_ELEMENT;
  const view = Buffer.from(v.data.buffer, v.data.byteOffset + z * nx * ny * bpv, nx * ny * bpv);
  if (LITTLE || bpv === 1) return view;
  const copy = Buffer.from(view);
  return bpv === 2 ? copy.swap16() : copy.swap32();
}

/** The `voxels` stream of a Binary volume: one run of ceil(nx*ny*nz / 8) bytes, in pieces. */
function* packedVolume(v: Volume): Generator<Buffer> {
  const total = v.dims[0] * v.dims[1] * v.dims[2];
  for (let start = 0; start < total; start += PACKED_PIECE_VOXELS) {
    yield packBitsMsbFirst(v.data, start, Math.min(PACKED_PIECE_VOXELS, total - start));
  }
}

/** The stream of `format` for `v`, as buffers to be written one after the other. */
export function* voxelDump(v: Volume, format: RawFormat): Generator<Buffer> {
  const [nx, ny, nz] = v.dims;
  const combined = format === 'combined';
  if (!combined && v.pixelFormat === PixelFormat.Binary) {
    yield* packedVolume(v);
    return;
  }
  if (combined) yield block({ width: nx, height: ny, depth: nz, dataType: v.pixelFormat }, -1);
  const binaryLength = transferByteLength(v.pixelFormat, nx * ny);
  for (let z = 0; z < nz; z++) {
    if (combined) {
      const w = v.sliceWindows[z];
      yield block({ success: true, instanceNumber: z + 1, windowLevel: w ? w.level : null, windowWidth: w ? w.width : null }, binaryLength);
    }
    yield sliceBytes(v, z);
  }
  if (combined) {
    const e = estimatedWindow(v);
    yield block(
      {
        voxelWidth: v.voxelSize[0],
        voxelHeight: v.voxelSize[1],
        voxelDepth: v.voxelSize[2],
        estimatedWindowLevel: e.level,
        estimatedWindowWidth: e.width,
      },
      -2,
    );
  }
}
