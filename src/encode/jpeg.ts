/**
 * A baseline JPEG writer (ITU-T T.81 / ISO/IEC 10918-1: sequential DCT, 8-bit samples, Huffman
 * coding) with a JFIF APP0 segment, for 8-bit grey (one component) and RGB (converted to YCbCr
 * as JFIF defines, full range).
 *
 * - Quantization: the example tables of Annex K.1 (luminance) and K.2 (chrominance), scaled by
 *   `quality` 1..100 the way the IJG library does (5000 / q below 50, 200 - 2q from 50; 100 gives
 *   all ones), each entry clamped to 1..255.
 * - Huffman coding: the typical tables of Annex K.3 (DC) and K.5 (AC), luminance and chrominance.
 * - Colour is subsampled 4:2:0 (chroma averaged over 2 x 2 pixels) below quality 90 and kept
 *   4:4:4 at 90 and above, unless `subsampling` says otherwise.
 * - Any size from 1 x 1 to 65535 x 65535: blocks past the image's right and bottom edges are
 *   filled by repeating its last column and row. No restart markers.
 *
 * The DCT is the float transform of A.3.3, separable (rows, then columns), each 8-point pass the
 * Arai-Agui-Nakajima factorization, whose output scale is divided out with the quantizer;
 * quantized values are rounded to nearest. Blocks inside the image are transformed from the
 * sample plane in place, the level shift folded into the transform. The coder of a block goes
 * from one non-zero coefficient to the next by a bit mask, and writes bits without branches,
 * stuffing bytes after the scan. The buffers of a block are allocated once per image. A 512 x 512
 * CT-like grey image at quality 90 takes about 2 ms, RGB about 4 ms at 4:2:0 and 8 ms at 4:4:4.
 */

export type JpegSubsampling = '4:2:0' | '4:4:4';

export interface JpegOptions {
  /** Chroma subsampling of colour images; 4:2:0 below quality 90, 4:4:4 from 90 by default. */
  subsampling?: JpegSubsampling;
}

/** Annex K.1: luminance quantization table, in natural (row by row) order. */
export const LUMINANCE_QUANT: readonly number[] = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68,
  109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/** Annex K.2: chrominance quantization table, in natural order. */
export const CHROMINANCE_QUANT: readonly number[] = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/** A Huffman table as a DHT segment holds it: the number of codes of each length 1..16, and the symbols in code order. */
export interface HuffmanSpec {
  counts: readonly number[];
  symbols: readonly number[];
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Annex K.3: luminance DC differences. */
export const DC_LUMINANCE: HuffmanSpec = { counts: [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], symbols: range(12) };

/** Annex K.3: chrominance DC differences. */
export const DC_CHROMINANCE: HuffmanSpec = { counts: [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], symbols: range(12) };

/** Annex K.5: luminance AC coefficients (run/size symbols). */
export const AC_LUMINANCE: HuffmanSpec = {
  counts: [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d],
  symbols: [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08,
    0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
    0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
    0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};

/** Annex K.5: chrominance AC coefficients. */
export const AC_CHROMINANCE: HuffmanSpec = {
  counts: [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
  symbols: [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91,
    0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
    0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
    0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
  ],
};

/**
 * The zig-zag sequence of Figure A.6: ZIGZAG[k] is the natural index (row * 8 + column) of the
 * k-th coefficient. Built by walking the anti-diagonals: up and to the right on even ones, down
 * and to the left on odd ones.
 */
export const ZIGZAG: readonly number[] = (() => {
  const out: number[] = [];
  for (let s = 0; s < 15; s++) {
    const lo = Math.max(0, s - 7);
    const hi = Math.min(7, s);
    if (s % 2 === 0) for (let row = hi; row >= lo; row--) out.push(row * 8 + (s - row));
    else for (let row = lo; row <= hi; row++) out.push(row * 8 + (s - row));
  }
  return out;
})();

/** A quantization table scaled for `quality` as the IJG library does, in natural order. */
export function scaledQuantTable(base: readonly number[], quality: number): Uint8Array {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - 2 * quality;
  const out = new Uint8Array(64);
  for (let i = 0; i < 64; i++) {
    const q = Math.floor((base[i] * scale + 50) / 100);
    out[i] = q < 1 ? 1 : q > 255 ? 255 : q;
  }
  return out;
}

/** Code and length of each symbol of a table (Annex C: codes of each length in sequence). */
interface HuffmanCodes {
  code: Uint16Array;
  length: Uint8Array;
}

function huffmanCodes(spec: HuffmanSpec): HuffmanCodes {
  const code = new Uint16Array(256);
  const length = new Uint8Array(256);
  let next = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < spec.counts[len - 1]; i++) {
      const symbol = spec.symbols[k++];
      code[symbol] = next++;
      length[symbol] = len;
    }
    next <<= 1;
  }
  return { code, length };
}

const CODES = {
  dcLum: huffmanCodes(DC_LUMINANCE),
  acLum: huffmanCodes(AC_LUMINANCE),
  dcChr: huffmanCodes(DC_CHROMINANCE),
  acChr: huffmanCodes(AC_CHROMINANCE),
};

/** One colour component of the frame: its 8-bit samples and coding parameters. */
interface Component {
  id: number;
  plane: Uint8Array;
  width: number;
  height: number;
  h: number;
  v: number;
  quantId: number;
  /** The quantizer reciprocals with the DCT's output scale folded in, in natural order (see quantReciprocals). */
  recip: Float64Array;
  dc: HuffmanCodes;
  ac: HuffmanCodes;
  tableId: number;
  pred: number;
}

/** A growable byte buffer for the marker segments, and the entropy-coded data at the end. */
class JpegWriter {
  buf: Buffer;
  at = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.at++] = b;
  }

  word(w: number): void {
    this.reserve(2);
    this.buf[this.at++] = w >> 8;
    this.buf[this.at++] = w & 255;
  }

  bytes(list: ArrayLike<number>): void {
    this.reserve(list.length);
    for (let i = 0; i < list.length; i++) this.buf[this.at++] = list[i];
  }

  /** Entropy-coded bytes, a zero byte stuffed after every 0xFF (F.1.2.3). */
  stuffed(data: Uint8Array): void {
    let from = 0;
    for (;;) {
      // 0xFF is rare in coded data: copy the runs between them whole.
      const ff = data.indexOf(0xff, from);
      const end = ff < 0 ? data.length : ff + 1;
      this.reserve(end - from + 1);
      this.buf.set(data.subarray(from, end), this.at);
      this.at += end - from;
      if (ff < 0) return;
      this.buf[this.at++] = 0;
      from = end;
    }
  }

  result(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * The bits of the entropy-coded segment, most significant first, in a growable byte buffer,
 * without byte stuffing (JpegWriter.stuffed adds it once the scan is done).
 *
 * Fewer than 8 bits are pending between writes: the low `n` bits of `acc` (any above them are
 * stale and never read). A write of up to 24 bits shifts them in, stores the top three bytes of
 * what is pending unconditionally, and then keeps only the whole ones: `at` moves by n / 8, and a
 * byte stored past it is written again, complete, by a later write. That has no branches, which
 * matters because whether a write fills a byte is as unpredictable as the data.
 */
class BitWriter {
  buf: Uint8Array;
  at = 0;
  acc = 0;
  n = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.at + n + 3 <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.at + n + 3));
    bigger.set(this.buf.subarray(0, this.at));
    this.buf = bigger;
  }

  /**
   * The `len` (at most 24) bits of `code`, which must have no bits above them. Room for them must
   * have been reserved (encodeBlock reserves for a block at a time).
   */
  put(code: number, len: number): void {
    const acc = (this.acc << len) | code;
    const n = this.n + len;
    const buf = this.buf;
    const at = this.at;
    // Byte stores keep the low 8 bits; shift counts below zero only make a stale byte.
    buf[at] = acc >>> (n - 8);
    buf[at + 1] = acc >>> (n - 16);
    buf[at + 2] = acc >>> (n - 24);
    this.at = at + (n >> 3);
    this.n = n & 7;
    this.acc = acc;
  }

  /** The bytes written, the last one padded with one bits (F.1.2.3). */
  finish(): Uint8Array {
    this.reserve(1);
    if (this.n > 0) this.put((1 << (8 - this.n)) - 1, 8 - this.n);
    return this.buf.subarray(0, this.at);
  }
}

/**
 * The 8-bit sample planes of the components: grey as given, RGB as JFIF's Y, Cb, Cr (each
 * rounded to 8 bits), chroma averaged over 2 x 2 pixels (rounded) when subsampled.
 */
function planesOf(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3,
  subsample: boolean,
): { plane: Uint8Array; w: number; h: number }[] {
  const n = width * height;
  if (channels === 1) return [{ plane: pixels, w: width, h: height }];
  const y = new Uint8Array(n);
  const cb = new Uint8Array(n);
  const cr = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    const r = pixels[p];
    const g = pixels[p + 1];
    const b = pixels[p + 2];
    // Each sum plus 0.5 is positive, so truncating rounds it; a Cb or Cr of 255.5 rounds to 256,
    // which the Uint8Array would wrap: clamped.
    y[i] = (0.299 * r + 0.587 * g + 0.114 * b + 0.5) | 0;
    const u = (-0.168736 * r - 0.331264 * g + 0.5 * b + 128.5) | 0;
    const v = (0.5 * r - 0.418688 * g - 0.081312 * b + 128.5) | 0;
    cb[i] = u > 255 ? 255 : u;
    cr[i] = v > 255 ? 255 : v;
  }
  if (!subsample) {
    return [
      { plane: y, w: width, h: height },
      { plane: cb, w: width, h: height },
      { plane: cr, w: width, h: height },
    ];
  }
  const cw = Math.ceil(width / 2);
  const chh = Math.ceil(height / 2);
  const half = (src: Uint8Array): Uint8Array => {
    const out = new Uint8Array(cw * chh);
    for (let yy = 0; yy < chh; yy++) {
      const r0 = 2 * yy * width;
      const r1 = Math.min(2 * yy + 1, height - 1) * width;
      for (let xx = 0; xx < cw; xx++) {
        const x0 = 2 * xx;
        const x1 = Math.min(x0 + 1, width - 1);
        out[yy * cw + xx] = (src[r0 + x0] + src[r0 + x1] + src[r1 + x0] + src[r1 + x1] + 2) >> 2;
      }
    }
    return out;
  };
  return [
    { plane: y, w: width, h: height },
    { plane: half(cb), w: cw, h: chh },
    { plane: half(cr), w: cw, h: chh },
  ];
}

/**
 * The image as a baseline JFIF JPEG. `pixels` holds `channels` samples a pixel (grey, or R, G, B),
 * row by row; `quality` is a whole number from 1 to 100.
 */
export function encodeJpeg(pixels: Uint8Array, width: number, height: number, channels: 1 | 3, quality: number, options: JpegOptions = {}): Buffer {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100)
    throw new RangeError(`JPEG quality must be a whole number from 1 to 100, got ${quality}`);
  for (const [v, name] of [
    [width, 'width'],
    [height, 'height'],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) throw new RangeError(`JPEG ${name} must be a whole number from 1 to 65535, got ${v}`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`JPEG images have 1 or 3 channels here, got ${channels}`);
  if (pixels.length < width * height * channels) throw new RangeError(`expected ${width * height * channels} samples, got ${pixels.length}`);

  const subsampling = options.subsampling ?? (quality < 90 ? '4:2:0' : '4:4:4');
  const subsample = channels === 3 && subsampling === '4:2:0';
  const lumQuant = scaledQuantTable(LUMINANCE_QUANT, quality);
  const chrQuant = scaledQuantTable(CHROMINANCE_QUANT, quality);
  const lumRecip = quantReciprocals(lumQuant);
  const chrRecip = quantReciprocals(chrQuant);

  const planes = planesOf(pixels, width, height, channels, subsample);
  const components: Component[] = planes.map((p, i) => ({
    id: i + 1,
    plane: p.plane,
    width: p.w,
    height: p.h,
    h: i === 0 && subsample ? 2 : 1,
    v: i === 0 && subsample ? 2 : 1,
    quantId: i === 0 ? 0 : 1,
    recip: i === 0 ? lumRecip : chrRecip,
    dc: i === 0 ? CODES.dcLum : CODES.dcChr,
    ac: i === 0 ? CODES.acLum : CODES.acChr,
    tableId: i === 0 ? 0 : 1,
    pred: 0,
  }));

  const out = new JpegWriter(Math.max(4096, (width * height * channels) >> 1));
  // SOI, and APP0 (JFIF 1.01, no units, 1:1 aspect ratio, no thumbnail).
  out.word(0xffd8);
  out.word(0xffe0);
  out.word(16);
  out.bytes([0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  // DQT: 8-bit tables in zig-zag order.
  const quants = channels === 1 ? [lumQuant] : [lumQuant, chrQuant];
  out.word(0xffdb);
  out.word(2 + 65 * quants.length);
  quants.forEach((q, id) => {
    out.byte(id);
    for (let k = 0; k < 64; k++) out.byte(q[ZIGZAG[k]]);
  });
  // SOF0: baseline, 8-bit samples.
  out.word(0xffc0);
  out.word(8 + 3 * components.length);
  out.byte(8);
  out.word(height);
  out.word(width);
  out.byte(components.length);
  for (const c of components) out.bytes([c.id, (c.h << 4) | c.v, c.quantId]);
  // DHT: DC (class 0) and AC (class 1) tables, luminance (0) and chrominance (1).
  const tables: [number, HuffmanSpec][] =
    channels === 1
      ? [
          [0x00, DC_LUMINANCE],
          [0x10, AC_LUMINANCE],
        ]
      : [
          [0x00, DC_LUMINANCE],
          [0x10, AC_LUMINANCE],
          [0x01, DC_CHROMINANCE],
          [0x11, AC_CHROMINANCE],
        ];
  out.word(0xffc4);
  out.word(2 + tables.reduce((n, [, t]) => n + 17 + t.symbols.length, 0));
  for (const [tc, t] of tables) {
    out.byte(tc);
    out.bytes(t.counts);
    out.bytes(t.symbols);
  }
  // SOS: all components in one interleaved scan (one component: non-interleaved), spectral 0..63.
  out.word(0xffda);
  out.word(6 + 2 * components.length);
  out.byte(components.length);
  for (const c of components) out.bytes([c.id, (c.tableId << 4) | c.tableId]);
  out.bytes([0, 63, 0]);

  const hMax = subsample ? 2 : 1;
  const mcuCols = Math.ceil(width / (8 * hMax));
  const mcuRows = Math.ceil(height / (8 * hMax));
  // Scratch of every block: the DCT's row pass, its quantized output, and the samples of blocks that cross an edge.
  const block = new Float64Array(64);
  const edge = new Uint8Array(64);
  const coef = new Int32Array(64);
  const bits = new BitWriter(Math.max(4096, (width * height * channels) >> 1));
  for (let my = 0; my < mcuRows; my++) {
    for (let mx = 0; mx < mcuCols; mx++) {
      for (const c of components) {
        for (let by = 0; by < c.v; by++) {
          for (let bx = 0; bx < c.h; bx++) {
            const x0 = (mx * c.h + bx) * 8;
            const y0 = (my * c.v + by) * 8;
            // Inner blocks are read from the plane in place; the others through a padded copy.
            if (x0 + 8 <= c.width && y0 + 8 <= c.height) forwardDct(c.plane, y0 * c.width + x0, c.width, block, c.recip, coef);
            else {
              edgeBlock(c, x0, y0, edge);
              forwardDct(edge, 0, 8, block, c.recip, coef);
            }
            encodeBlock(bits, c, coef);
          }
        }
      }
    }
  }
  out.stuffed(bits.finish());
  out.word(0xffd9);
  return out.result();
}

/** The inverse of ZIGZAG: the place in zig-zag order of each natural index. */
const ZIGZAG_PLACE = (() => {
  const out = new Int32Array(64);
  for (let k = 0; k < 64; k++) out[ZIGZAG[k]] = k;
  return out;
})();

/** The 8 x 8 samples of `c` from (x0, y0), the last column and row repeated past the edges. */
function edgeBlock(c: Component, x0: number, y0: number, edge: Uint8Array): void {
  const { plane, width, height } = c;
  const xs = width - 1;
  const ys = height - 1;
  for (let y = 0; y < 8; y++) {
    const row = (y0 + y < ys ? y0 + y : ys) * width;
    for (let x = 0; x < 8; x++) edge[y * 8 + x] = plane[row + (x0 + x < xs ? x0 + x : xs)];
  }
}

/*
 * The forward DCT is the Arai-Agui-Nakajima factorization of the 8-point DCT (Trans. IEICE
 * E-71(11), 1988), which needs 5 multiplications a pass because it leaves every output u scaled by
 * a constant: it gives y(u) = 2 sqrt(2) s(u) F(u), F being the 1-D DCT of A.3.3
 * (F(u) = C(u) / 2 sum x(n) cos((2n + 1) u pi / 16)), s(0) = 1 and s(u) = sqrt(2) cos(u pi / 16).
 * Rows then columns give 8 s(u) s(v) F(u, v); that scale is divided out with the quantizer, in
 * quantReciprocals, for no extra work a coefficient, as each output of the columns pass is
 * quantized.
 *
 * One pass, from the symmetry cos((2(7 - n) + 1) u pi / 16) = (-1)^u cos((2n + 1) u pi / 16):
 * - even outputs are a 4-point DCT of the sums x(n) + x(7 - n), itself split into sums and
 *   differences once more, with one rotation by pi / 4 (A4 below);
 * - odd outputs come from the differences x(n) - x(7 - n) by a rotation network whose
 *   multiplications by cos(pi / 8) and cos(3 pi / 8) share one product (A5).
 */
/** cos(pi / 4). */
const A4 = Math.SQRT1_2;
/** cos(3 pi / 8). */
const A5 = Math.cos((3 * Math.PI) / 8);
/** sqrt(2) cos(3 pi / 8) = cos(pi / 8) - cos(3 pi / 8), as used with A5. */
const A2 = Math.SQRT2 * Math.cos((3 * Math.PI) / 8);
/** sqrt(2) cos(pi / 8) = cos(pi / 8) + cos(3 pi / 8). */
const A6 = Math.SQRT2 * Math.cos(Math.PI / 8);

/** s(u) of the scale above, u = 0..7. */
const AAN_SCALE = Float64Array.from({ length: 8 }, (_, u) => (u === 0 ? 1 : Math.SQRT2 * Math.cos((u * Math.PI) / 16)));

/**
 * 1 / (q * 8 s(u) s(v)) for each coefficient of a quantization table (natural order): the
 * quantized coefficient is then round(DCT output * this), the DCT's scale divided out with the
 * quantizer in one multiplication.
 */
function quantReciprocals(quant: Uint8Array): Float64Array {
  return Float64Array.from(quant, (q, i) => 1 / (q * 8 * AAN_SCALE[i >> 3] * AAN_SCALE[i & 7]));
}

/**
 * The scaled 2-D DCT (see above) of the 8 x 8 samples at src[at], rows `stride` apart, quantized
 * by `recip` (quantReciprocals) into `coef` in zig-zag order; `out` holds the row pass. The level
 * shift (minus 128) is folded into the row pass: it only changes each row's DC output, by 8 * 128.
 */
function forwardDct(src: Uint8Array, at: number, stride: number, out: Float64Array, recip: Float64Array, coef: Int32Array): void {
  for (let y = 0; y < 64; y += 8, at += stride) {
    const x0 = src[at];
    const x1 = src[at + 1];
    const x2 = src[at + 2];
    const x3 = src[at + 3];
    const x4 = src[at + 4];
    const x5 = src[at + 5];
    const x6 = src[at + 6];
    const x7 = src[at + 7];
    const d07 = x0 - x7;
    const d16 = x1 - x6;
    const d25 = x2 - x5;
    const d34 = x3 - x4;
    const s07 = x0 + x7;
    const s16 = x1 + x6;
    const s25 = x2 + x5;
    const s34 = x3 + x4;
    // Even half.
    const e0 = s07 + s34;
    const e1 = s16 + s25;
    const e2 = s16 - s25;
    const e3 = s07 - s34;
    out[y] = e0 + e1 - 1024;
    out[y + 4] = e0 - e1;
    const r = (e2 + e3) * A4;
    out[y + 2] = e3 + r;
    out[y + 6] = e3 - r;
    // Odd half.
    const o0 = d34 + d25;
    const o1 = d25 + d16;
    const o2 = d16 + d07;
    const z5 = (o0 - o2) * A5;
    const z2 = A2 * o0 + z5;
    const z4 = A6 * o2 + z5;
    const z3 = o1 * A4;
    const z11 = d07 + z3;
    const z13 = d07 - z3;
    out[y + 5] = z13 + z2;
    out[y + 3] = z13 - z2;
    out[y + 1] = z11 + z4;
    out[y + 7] = z11 - z4;
  }
  for (let u = 0; u < 8; u++) {
    const x0 = out[u];
    const x1 = out[u + 8];
    const x2 = out[u + 16];
    const x3 = out[u + 24];
    const x4 = out[u + 32];
    const x5 = out[u + 40];
    const x6 = out[u + 48];
    const x7 = out[u + 56];
    const d07 = x0 - x7;
    const d16 = x1 - x6;
    const d25 = x2 - x5;
    const d34 = x3 - x4;
    const s07 = x0 + x7;
    const s16 = x1 + x6;
    const s25 = x2 + x5;
    const s34 = x3 + x4;
    const e0 = s07 + s34;
    const e1 = s16 + s25;
    const e2 = s16 - s25;
    const e3 = s07 - s34;
    coef[ZIGZAG_PLACE[u]] = roundInt((e0 + e1) * recip[u]);
    coef[ZIGZAG_PLACE[u + 32]] = roundInt((e0 - e1) * recip[u + 32]);
    const r = (e2 + e3) * A4;
    coef[ZIGZAG_PLACE[u + 16]] = roundInt((e3 + r) * recip[u + 16]);
    coef[ZIGZAG_PLACE[u + 48]] = roundInt((e3 - r) * recip[u + 48]);
    const o0 = d34 + d25;
    const o1 = d25 + d16;
    const o2 = d16 + d07;
    const z5 = (o0 - o2) * A5;
    const z2 = A2 * o0 + z5;
    const z4 = A6 * o2 + z5;
    const z3 = o1 * A4;
    const z11 = d07 + z3;
    const z13 = d07 - z3;
    coef[ZIGZAG_PLACE[u + 40]] = roundInt((z13 + z2) * recip[u + 40]);
    coef[ZIGZAG_PLACE[u + 24]] = roundInt((z13 - z2) * recip[u + 24]);
    coef[ZIGZAG_PLACE[u + 8]] = roundInt((z11 + z4) * recip[u + 8]);
    coef[ZIGZAG_PLACE[u + 56]] = roundInt((z11 - z4) * recip[u + 56]);
  }
}

/**
 * x rounded to the nearest integer, halves up (as Math.round), as a 32-bit integer: truncation of
 * a positive number is its floor, and every quantized coefficient is far above -16384 (a DCT
 * coefficient of level-shifted 8-bit samples is at most a quarter of 64 products of at most 128
 * in magnitude, 2048, and quantizers are at least 1). Math.round itself gives a double (-0 for
 * small negatives), which keeps the integer work after it off V8's integer paths.
 */
const roundInt = (x: number): number => ((x + 16384.5) | 0) - 16384;

/** The size category (SSSS) of a value: the number of bits of its magnitude. */
const category = (v: number): number => 32 - Math.clz32(v < 0 ? -v : v);

/**
 * Huffman-codes one block of quantized coefficients in zig-zag order (F.1.2.1, F.1.2.2).
 *
 * First a bit is set for each non-zero AC coefficient, k = 1..31 in `lo` and 32..63 in `hi`, the
 * highest bit first; the coder then goes from one non-zero coefficient to the next by counting
 * leading zeros, the run of zeros between them their distance, instead of testing every
 * coefficient (a branch the data decides).
 */
function encodeBlock(out: BitWriter, c: Component, coef: Int32Array): void {
  let lo = 0;
  for (let k = 1; k < 32; k++) {
    // (v | -v) has its sign bit set when v is not 0.
    const v = coef[k];
    lo |= ((v | -v) >>> 31) << (31 - k);
  }
  let hi = 0;
  for (let k = 32; k < 64; k++) {
    const v = coef[k];
    hi |= ((v | -v) >>> 31) << (63 - k);
  }

  // The most a block can take: a DC and 63 AC codes of at most 16 + 11 bits.
  out.reserve(220);
  const dc = coef[0];
  const diff = dc - c.pred;
  c.pred = dc;
  const dcSize = category(diff);
  // The code, then the value in `size` bits, negative ones as v - 1 (their low bits); both fit
  // the writer's 24 bits (codes of at most 11 bits, values of at most 11).
  out.put((c.dc.code[dcSize] << dcSize) | ((diff < 0 ? diff - 1 : diff) & ((1 << dcSize) - 1)), c.dc.length[dcSize] + dcSize);

  const { code, length } = c.ac;
  let prev = 0;
  while (lo !== 0 || hi !== 0) {
    let k: number;
    // The bit of k is cleared with a shift of a signed one, which keeps the masks 32-bit integers.
    if (lo !== 0) {
      k = Math.clz32(lo);
      lo ^= 1 << (31 - k);
    } else {
      const z = Math.clz32(hi);
      hi ^= 1 << (31 - z);
      k = 32 + z;
    }
    let run = k - prev - 1;
    prev = k;
    while (run > 15) {
      out.put(code[0xf0], length[0xf0]); // ZRL: sixteen zeros
      run -= 16;
    }
    let v = coef[k];
    // AC coefficients have at most 10 bits in baseline; only quality 100 comes near.
    if (v > 1023) v = 1023;
    else if (v < -1023) v = -1023;
    // The magnitude and the value's bits (v - 1 when negative) from the sign mask, without branches.
    const sign = v >> 31;
    const size = 32 - Math.clz32((v ^ sign) - sign);
    const symbol = (run << 4) | size;
    const len = length[symbol];
    const bits = (v + sign) & ((1 << size) - 1);
    // Code and value in one write when they fit the writer's 24 bits (all but the longest codes).
    if (len + size <= 24) out.put((code[symbol] << size) | bits, len + size);
    else {
      out.put(code[symbol], len);
      out.put(bits, size);
    }
  }
  if (prev < 63) out.put(code[0], length[0]); // EOB: the rest are zeros
}
