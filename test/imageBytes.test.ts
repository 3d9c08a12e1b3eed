/**
 * The current API's image bytes (src/encode/imageBytes.ts): each format's name, its byte length,
 * and the bytes of known values written by hand (little-endian; Binary most significant bit first).
 */
import { describe, expect, it } from 'vitest';
import { PixelFormat } from '../src/core/volume/volume.js';
import { imageByteLength, pixelFormatName, writeImage } from '../src/encode/imageBytes.js';

const written = (values: ArrayLike<number>, format: PixelFormat): number[] => {
  const out = Buffer.alloc(imageByteLength(format, values.length), 0xee);
  writeImage(values, format, out);
  return [...out];
};

describe('pixel format names', () => {
  it('names the integer formats and no other', () => {
    expect(pixelFormatName(PixelFormat.UInt8)).toBe('uint8');
    expect(pixelFormatName(PixelFormat.Int8)).toBe('int8');
    expect(pixelFormatName(PixelFormat.UInt16)).toBe('uint16');
    expect(pixelFormatName(PixelFormat.Int16)).toBe('int16');
    expect(pixelFormatName(PixelFormat.Binary)).toBe('binary');
    expect(pixelFormatName(PixelFormat.Float32)).toBeUndefined();
    expect(pixelFormatName(PixelFormat.Unknown)).toBeUndefined();
  });
});

describe('image bytes', () => {
  it('takes 1 byte a voxel for 8-bit formats, 2 for 16-bit ones, 1 bit for Binary rounded up to a byte', () => {
    expect(imageByteLength(PixelFormat.UInt8, 30)).toBe(30);
    expect(imageByteLength(PixelFormat.Int8, 30)).toBe(30);
    expect(imageByteLength(PixelFormat.UInt16, 30)).toBe(60);
    expect(imageByteLength(PixelFormat.Int16, 30)).toBe(60);
    expect(imageByteLength(PixelFormat.Binary, 16)).toBe(2);
    expect(imageByteLength(PixelFormat.Binary, 17)).toBe(3);
    expect(imageByteLength(PixelFormat.Binary, 1)).toBe(1);
  });

  it('writes 8-bit values as they are, signed ones in two complement', () => {
    expect(written([0, 1, 127, 255], PixelFormat.UInt8)).toEqual([0, 1, 127, 255]);
    expect(written([0, -1, 127, -128], PixelFormat.Int8)).toEqual([0, 0xff, 0x7f, 0x80]);
  });

  it('writes 16-bit values little-endian, from plain arrays and from typed arrays of either sign', () => {
    expect(written([0x1234, 0xffff, 1], PixelFormat.UInt16)).toEqual([0x34, 0x12, 0xff, 0xff, 0x01, 0x00]);
    expect(written(Uint16Array.of(0x1234, 0xffff), PixelFormat.UInt16)).toEqual([0x34, 0x12, 0xff, 0xff]);
    expect(written([-2, 0x1234, -32768], PixelFormat.Int16)).toEqual([0xfe, 0xff, 0x34, 0x12, 0x00, 0x80]);
    expect(written(Int16Array.of(-2, 300), PixelFormat.Int16)).toEqual([0xfe, 0xff, 0x2c, 0x01]);
    // Values of the other sign's typed array are converted value by value, not copied as bits.
    expect(written(Int16Array.of(-1, 5), PixelFormat.UInt16)).toEqual([0xff, 0xff, 0x05, 0x00]);
  });

  it('packs Binary images 8 voxels a byte, most significant bit first, the unused bits of the last byte 0', () => {
    // 1 0 1 1 0 0 0 1 | 1 1 0 (then five unused bits)
    expect(written([1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0], PixelFormat.Binary)).toEqual([0b10110001, 0b11000000]);
    expect(written([0, 0, 0], PixelFormat.Binary)).toEqual([0]);
  });
});
