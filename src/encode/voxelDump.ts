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
 */
import { endianness } from 'node:os';
import { estimatedWindow, type Volume } from '../core/volume/volume.js';

export type RawFormat = 'combined' | 'voxels';

const LITTLE = endianness() === 'LE';

function block(json: unknown, binaryLength: number): Buffer {
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeInt32LE(text.length, 0);
  head.writeInt32LE(binaryLength, 4);
  return Buffer.concat([head, text]);
}

function sliceBytes(v: Volume, z: number): Buffer {
  const [nx, ny] = v.dims;
  const bpv = v.data.BYTES_PER_ELEMENT;
  const view = Buffer.from(v.data.buffer, v.data.byteOffset + z * nx * ny * bpv, nx * ny * bpv);
  if (LITTLE || bpv === 1) return view;
  const copy = Buffer.from(view);
  return bpv === 2 ? copy.swap16() : copy.swap32();
}

export function* voxelDump(v: Volume, format: RawFormat): Generator<Buffer> {
  const [nx, ny, nz] = v.dims;
  const combined = format === 'combined';
  if (combined) yield block({ width: nx, height: ny, depth: nz, dataType: v.pixelFormat }, -1);
  for (let z = 0; z < nz; z++) {
    if (combined) {
      const w = v.sliceWindows[z];
      yield block({ success: true, instanceNumber: z + 1, windowLevel: w ? w.level : null, windowWidth: w ? w.width : null }, nx * ny * v.data.BYTES_PER_ELEMENT);
    }
    yield sliceBytes(v, z);
  }
  if (combined) {
    const e = estimatedWindow(v);
    yield block(
      { voxelWidth: v.voxelSize[0], voxelHeight: v.voxelSize[1], voxelDepth: v.voxelSize[2], estimatedWindowLevel: e.level, estimatedWindowWidth: e.width },
      -2,
    );
  }
}
