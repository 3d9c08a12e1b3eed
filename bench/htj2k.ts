/**
 * Conformant signed 16-bit HTJ2K from ojph_compress, for bench/codecs.ts and bench/decoders.ts.
 *
 * ojph_compress reads raw (.yuv) 16-bit input as unsigned words whatever `-signed` says, so
 * `-signed true` on two's complement samples writes 0 .. 65535 under a signed header (negative
 * samples decode as 32767). Conformant instead: the samples are handed over offset to unsigned
 * (sign bit flipped) with `-signed false`, the encoder takes the offset off again before coding,
 * and the codestream's SIZ is then marked signed, which is what a signed encoder writes.
 */

/** Two's complement 16-bit little-endian samples to offset binary (a copy): what ojph_compress is given. */
export function offsetToUnsigned(samples: Uint8Array): Uint8Array {
  const words = new Uint8Array(samples);
  for (let i = 1; i < words.length; i += 2) words[i] ^= 0x80;
  return words;
}

/** ojph_compress's arguments for `raw` (offset binary, see above) to `out`, with `options` (reversible, progression...). */
export function ojphArgs(raw: string, out: string, columns: number, rows: number, options: readonly string[]): string[] {
  return [
    '-i',
    raw,
    '-o',
    out,
    '-dims',
    `{${columns},${rows}}`,
    '-num_comps',
    '1',
    '-signed',
    'false',
    '-bit_depth',
    '16',
    '-downsamp',
    '{1,1}',
    ...options,
  ];
}

/** Marks the codestream's single 16-bit component signed (SIZ right after SOC: Ssiz is byte 42). */
export function markSigned(j2c: Buffer): Buffer {
  if (j2c.readUInt16BE(0) !== 0xff4f || j2c.readUInt16BE(2) !== 0xff51) throw new Error('no SIZ marker right after SOC');
  if ((j2c[42] & 0x7f) !== 15) throw new Error(`component 0 has ${(j2c[42] & 0x7f) + 1} bits, not 16`);
  j2c[42] |= 0x80;
  return j2c;
}
