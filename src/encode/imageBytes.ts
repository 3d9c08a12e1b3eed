/**
 * Images as the current CIRCUS API sends them: the names of the pixel formats it carries, and
 * an image's voxels as bytes in its format.
 *
 * Policy:
 * - The API carries the integer formats uint8, int8, uint16, int16 and binary (by those names,
 *   as metadata's `pixelFormat`); no other format has a name (Float32 values cannot be sent).
 * - An image is its voxels, x fastest, little-endian (1 byte a voxel for uint8/int8, 2 for
 *   uint16/int16). Binary images are packed 8 voxels a byte, most significant bit first, each
 *   image from a byte boundary (as the 2016 API's /raw).
 */
import { BYTES_PER_VOXEL, PixelFormat } from '../core/volume/volume.js';

/** The pixel formats of the current API, by name. */
export type ModernPixelFormat = 'uint8' | 'int8' | 'uint16' | 'int16' | 'binary';

const FORMAT_NAMES: Partial<Record<PixelFormat, ModernPixelFormat>> = {
  [PixelFormat.UInt8]: 'uint8',
  [PixelFormat.Int8]: 'int8',
  [PixelFormat.UInt16]: 'uint16',
  [PixelFormat.Int16]: 'int16',
  [PixelFormat.Binary]: 'binary',
};

/** The current API's name of `format`; undefined when the API cannot carry it. */
export function pixelFormatName(format: PixelFormat): ModernPixelFormat | undefined {
  return FORMAT_NAMES[format];
}

/** Bytes one image of `count` voxels takes in `format` (Binary packed 8 a byte). */
export const imageByteLength = (format: PixelFormat, count: number): number =>
  format === PixelFormat.Binary ? Math.ceil(count / 8) : count * BYTES_PER_VOXEL[format];

/** Writes `values` (modality values) into `out` as `format`, little-endian; Binary packs MSB first. */
export function writeImage(values: ArrayLike<number>, format: PixelFormat, out: Buffer): void {
  const n = values.length;
  switch (format) {
    case PixelFormat.Binary:
      out.fill(0);
      for (let i = 0; i < n; i++) if (values[i]) out[i >> 3] |= 0x80 >> (i & 7);
      return;
    case PixelFormat.UInt8:
      for (let i = 0; i < n; i++) out[i] = values[i];
      return;
    case PixelFormat.Int8:
      for (let i = 0; i < n; i++) out.writeInt8(values[i], i);
      return;
    default: {
      // Host order is little-endian on every platform Node supports here; a typed view writes it.
      const view = format === PixelFormat.UInt16 ? new Uint16Array(out.buffer, out.byteOffset, n) : new Int16Array(out.buffer, out.byteOffset, n);
      if (values instanceof Uint16Array || values instanceof Int16Array) {
        if (values instanceof Uint16Array === view instanceof Uint16Array) {
          view.set(values);
          return;
        }
      }
      for (let i = 0; i < n; i++) view[i] = values[i];
    }
  }
}
