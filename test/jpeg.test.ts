/**
 * The baseline JPEG writer (src/encode/jpeg.ts), its output decoded by decoders that share no
 * code with it: libjpeg-turbo's WebAssembly build (@cornerstonejs/codec-libjpeg-turbo-8bit, its
 * decoder only) and, when installed, Debian's djpeg (libjpeg-turbo-progs; required when CI is set).
 * Decoded pixels are compared with the input: flat images within 1 level, gradients and a
 * photo-like pattern by PSNR, pure colours within a few levels; the stream's structure is read
 * back here (markers, JFIF, sampling factors, byte stuffing).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { instantiateEmscripten } from '../src/dicom/codecs/wasm.js';
import {
  AC_CHROMINANCE,
  AC_LUMINANCE,
  CHROMINANCE_QUANT,
  DC_CHROMINANCE,
  DC_LUMINANCE,
  encodeJpeg,
  LUMINANCE_QUANT,
  scaledQuantTable,
  ZIGZAG,
} from '../src/encode/jpeg.js';

const require = createRequire(import.meta.url);

interface Decoded {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

interface TurboDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; componentCount: number; bitsPerSample: number };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}

let turboClass: (new () => TurboDecoder) | undefined;

/** Decodes with libjpeg-turbo's WebAssembly decoder. */
function turbo(jpeg: Uint8Array): Decoded {
  if (!turboClass) {
    const compiled = new WebAssembly.Module(readFileSync(require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm')));
    const module = instantiateEmscripten('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs', compiled);
    turboClass = module.JPEGDecoder as new () => TurboDecoder;
  }
  const decoder = new turboClass();
  try {
    decoder.getEncodedBuffer(jpeg.length).set(jpeg);
    decoder.decode();
    const info = decoder.getFrameInfo();
    expect(info.bitsPerSample).toBe(8);
    return { width: info.width, height: info.height, channels: info.componentCount, pixels: Uint8Array.from(decoder.getDecodedBuffer()) };
  } finally {
    decoder.delete();
  }
}

const hasDjpeg = spawnSync('djpeg', ['-version'], { stdio: 'ignore' }).error === undefined;
const runDjpeg = hasDjpeg || process.env.CI !== undefined;
if (!runDjpeg) console.warn('djpeg is not installed (Debian package libjpeg-turbo-progs): its cases are skipped');

/** Decodes with djpeg to PGM or PPM and reads that. */
function djpeg(jpeg: Uint8Array): Decoded {
  const run = spawnSync('djpeg', ['-pnm'], { input: jpeg, maxBuffer: 64 << 20 });
  if (run.error) throw run.error;
  expect(run.status, run.stderr.toString()).toBe(0);
  const pnm = run.stdout;
  // Header: magic, width, height, maxval, each separated by whitespace, then one whitespace byte.
  const fields: string[] = [];
  let at = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(pnm[at]))) at++;
    let end = at;
    while (!/\s/.test(String.fromCharCode(pnm[end]))) end++;
    fields.push(pnm.toString('latin1', at, end));
    at = end;
  }
  at++;
  expect(['P5', 'P6']).toContain(fields[0]);
  expect(fields[3]).toBe('255');
  const [width, height] = [Number(fields[1]), Number(fields[2])];
  const channels = fields[0] === 'P5' ? 1 : 3;
  return { width, height, channels, pixels: Uint8Array.from(pnm.subarray(at, at + width * height * channels)) };
}

const DECODERS: [string, (jpeg: Uint8Array) => Decoded, boolean][] = [
  ['libjpeg-turbo (WebAssembly)', turbo, true],
  ['djpeg', djpeg, runDjpeg],
];

/** An image from a function of (x, y, channel). */
function image(width: number, height: number, channels: 1 | 3, f: (x: number, y: number, c: number) => number): Uint8Array {
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) out[(y * width + x) * channels + c] = Math.round(f(x, y, c));
  return out;
}

/** A smooth diagonal ramp over 0..255, a different direction per channel. */
const gradient = (width: number, height: number, channels: 1 | 3) =>
  image(width, height, channels, (x, y, c) => {
    const [a, b] = [x / Math.max(1, width - 1), y / Math.max(1, height - 1)];
    return 255 * (c === 1 ? (1 - a + b) / 2 : c === 2 ? (a + 1 - b) / 2 : (a + b) / 2);
  });

/** Smooth shapes of several scales, a disc with a soft edge (3 pixels wide) and a little deterministic grain. */
function photoLike(width: number, height: number, channels: 1 | 3): Uint8Array {
  let seed = 12345;
  const grain = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return ((seed >>> 16) & 3) - 1.5;
  };
  const radius = Math.max(3, Math.min(width, height) * 0.25);
  return image(width, height, channels, (x, y, c) => {
    const r = Math.hypot(x - width * 0.6, y - height * 0.4);
    const disc = 40 * Math.min(1, Math.max(0, (radius - r) / 3 + 0.5));
    const v = 110 + 50 * Math.sin(x / (11 + 3 * c)) * Math.cos(y / 17) + 30 * Math.sin((x + 2 * y) / 41) + disc + grain();
    return Math.min(255, Math.max(0, v));
  });
}

function psnr(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  const mse = sum / a.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10((255 * 255) / mse);
}

const maxDiff = (a: Uint8Array, b: Uint8Array): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** The segments before the scan (marker, body) and the entropy-coded bytes after SOS up to EOI. */
function segments(jpeg: Buffer): { markers: { marker: number; body: Buffer }[]; scan: Buffer } {
  expect(jpeg.readUInt16BE(0)).toBe(0xffd8);
  const markers: { marker: number; body: Buffer }[] = [];
  let at = 2;
  for (;;) {
    expect(jpeg[at]).toBe(0xff);
    const marker = jpeg[at + 1];
    const length = jpeg.readUInt16BE(at + 2);
    markers.push({ marker, body: jpeg.subarray(at + 4, at + 2 + length) });
    at += 2 + length;
    if (marker === 0xda) break;
  }
  expect(jpeg.readUInt16BE(jpeg.length - 2)).toBe(0xffd9);
  return { markers, scan: jpeg.subarray(at, jpeg.length - 2) };
}

const SIZES: [number, number][] = [
  [1, 1],
  [6, 4],
  [7, 9],
  [16, 16],
  [513, 300],
];

describe('tables', () => {
  it('has the zig-zag order of Figure A.6', () => {
    expect([...ZIGZAG].sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(ZIGZAG.slice(0, 15)).toEqual([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4]);
    expect(ZIGZAG.slice(-6)).toEqual([61, 54, 47, 55, 62, 63]);
  });

  it('has Huffman tables whose counts match their symbols, AC tables holding every run/size symbol once', () => {
    for (const t of [DC_LUMINANCE, DC_CHROMINANCE, AC_LUMINANCE, AC_CHROMINANCE]) expect(t.counts.reduce((a, b) => a + b, 0)).toBe(t.symbols.length);
    const acSymbols = [0x00, 0xf0];
    for (let run = 0; run < 16; run++) for (let size = 1; size <= 10; size++) acSymbols.push((run << 4) | size);
    acSymbols.sort((a, b) => a - b);
    for (const t of [AC_LUMINANCE, AC_CHROMINANCE]) expect([...t.symbols].sort((a, b) => a - b)).toEqual(acSymbols);
    // Table K.5's shortest codes: 0/1 and 0/2 in two bits, 0/3 in three.
    expect(AC_LUMINANCE.symbols.slice(0, 3)).toEqual([0x01, 0x02, 0x03]);
    expect(DC_LUMINANCE.symbols).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('scales the Annex K quantization tables as the IJG library does', () => {
    expect([...scaledQuantTable(LUMINANCE_QUANT, 50)]).toEqual(LUMINANCE_QUANT);
    expect([...scaledQuantTable(LUMINANCE_QUANT, 100)]).toEqual(new Array(64).fill(1));
    // 75: scale 50, (16 * 50 + 50) / 100 = 8.5 -> 8; 99 -> 50.
    expect(scaledQuantTable(LUMINANCE_QUANT, 75)[0]).toBe(8);
    expect(scaledQuantTable(CHROMINANCE_QUANT, 75)[63]).toBe(50);
    // 10: scale 500, 16 -> 80; 1: scale 5000, everything clamps to 255 but 10 * 50 = 500 -> 255 too.
    expect(scaledQuantTable(LUMINANCE_QUANT, 10)[0]).toBe(80);
    expect([...scaledQuantTable(LUMINANCE_QUANT, 1)]).toEqual(new Array(64).fill(255));
  });
});

describe('stream structure', () => {
  it('starts with SOI and a JFIF APP0, has baseline SOF0 with the size, and ends with EOI', () => {
    const jpeg = encodeJpeg(gradient(513, 300, 1), 513, 300, 1, 90);
    expect(jpeg.subarray(0, 4).toString('hex')).toBe('ffd8ffe0');
    expect(jpeg.readUInt16BE(4)).toBe(16);
    expect(jpeg.toString('latin1', 6, 11)).toBe('JFIF\0');
    expect([jpeg[11], jpeg[12]]).toEqual([1, 1]);
    expect(jpeg.subarray(-2).toString('hex')).toBe('ffd9');
    const { markers } = segments(jpeg);
    expect(markers.map((m) => m.marker)).toEqual([0xe0, 0xdb, 0xc0, 0xc4, 0xda]);
    const sof = markers[2].body;
    expect([sof[0], sof.readUInt16BE(1), sof.readUInt16BE(3), sof[5]]).toEqual([8, 300, 513, 1]);
    // DQT: table 0, written in zig-zag order (k = 2 is natural index 8: 12 at quality 50).
    const dqt = encodeJpeg(gradient(8, 8, 1), 8, 8, 1, 50);
    const q = segments(dqt).markers[1].body;
    expect([q[0], q[1], q[2], q[3], q[64]]).toEqual([0, 16, 11, 12, 99]);
  });

  it('subsamples colour 4:2:0 below quality 90 and keeps 4:4:4 from 90, unless told otherwise', () => {
    const rgb = gradient(20, 10, 3);
    const factors = (jpeg: Buffer) => {
      const sof = segments(jpeg).markers.find((m) => m.marker === 0xc0)!.body;
      return [sof[7], sof[10], sof[13]];
    };
    expect(factors(encodeJpeg(rgb, 20, 10, 3, 89))).toEqual([0x22, 0x11, 0x11]);
    expect(factors(encodeJpeg(rgb, 20, 10, 3, 90))).toEqual([0x11, 0x11, 0x11]);
    expect(factors(encodeJpeg(rgb, 20, 10, 3, 95, { subsampling: '4:2:0' }))).toEqual([0x22, 0x11, 0x11]);
    expect(factors(encodeJpeg(rgb, 20, 10, 3, 50, { subsampling: '4:4:4' }))).toEqual([0x11, 0x11, 0x11]);
  });

  it('stuffs a zero byte after every 0xFF of the entropy-coded data', () => {
    const noise = image(64, 64, 1, (x, y) => ((x * 7919 + y * 104729) ^ (x * y * 31)) & 255);
    const jpeg = encodeJpeg(noise, 64, 64, 1, 100);
    const { scan } = segments(jpeg);
    let stuffed = 0;
    for (let i = 0; i < scan.length; i++) {
      if (scan[i] !== 0xff) continue;
      expect(scan[i + 1]).toBe(0);
      stuffed++;
      i++;
    }
    expect(stuffed).toBeGreaterThan(10);
    // And quality 100 of noise still decodes close to it (coefficients of up to 10 bits).
    expect(psnr(turbo(jpeg).pixels, noise)).toBeGreaterThan(45);
  });

  it('rejects qualities outside 1..100, sizes of 0 and short pixel arrays', () => {
    const px = new Uint8Array(16);
    for (const q of [0, 101, -5, 50.5, Number.NaN]) expect(() => encodeJpeg(px, 4, 4, 1, q)).toThrow(/quality must be a whole number from 1 to 100/);
    expect(() => encodeJpeg(px, 0, 4, 1, 90)).toThrow(/width/);
    expect(() => encodeJpeg(px, 4, 4, 3, 90)).toThrow(/expected 48 samples/);
    expect(encodeJpeg(px, 4, 4, 1, 1).subarray(0, 2).toString('hex')).toBe('ffd8');
  });
});

for (const [name, decode, enabled] of DECODERS) {
  describe.skipIf(!enabled)(`decoded by ${name}`, () => {
    it('gives flat grey images back within 1 level at every size', () => {
      for (const [w, h] of SIZES) {
        for (const v of [0, 37, 128, 201, 255]) {
          for (const quality of [50, 90, 100]) {
            const d = decode(encodeJpeg(new Uint8Array(w * h).fill(v), w, h, 1, quality));
            expect([d.width, d.height, d.channels]).toEqual([w, h, 1]);
            expect(maxDiff(d.pixels, new Uint8Array(w * h).fill(v)), `${w}x${h} value ${v} quality ${quality}`).toBeLessThanOrEqual(1);
          }
        }
      }
    });

    it('gives flat colour images back within 1 level at every size, subsampled or not', () => {
      for (const [w, h] of SIZES) {
        for (const quality of [75, 95]) {
          const rgb = image(w, h, 3, (_x, _y, c) => [90, 160, 220][c]);
          const d = decode(encodeJpeg(rgb, w, h, 3, quality));
          expect([d.width, d.height, d.channels]).toEqual([w, h, 3]);
          expect(maxDiff(d.pixels, rgb), `${w}x${h} quality ${quality}`).toBeLessThanOrEqual(2);
        }
      }
    });

    it('keeps gradients and a photo-like pattern at 38 dB or more at quality 90, less but recognisable at 10', () => {
      for (const [w, h] of [
        [16, 16],
        [7, 9],
        [513, 300],
      ] as const) {
        for (const channels of [1, 3] as const) {
          for (const [what, make] of [
            ['gradient', gradient],
            ['photo-like', photoLike],
          ] as const) {
            const px = make(w, h, channels);
            const high = encodeJpeg(px, w, h, channels, 90);
            const low = encodeJpeg(px, w, h, channels, 10);
            const label = `${what} ${w}x${h}x${channels}`;
            const pHigh = psnr(decode(high).pixels, px);
            const pLow = psnr(decode(low).pixels, px);
            expect(pHigh, label).toBeGreaterThanOrEqual(38);
            expect(pLow, label).toBeLessThan(pHigh);
            // Coarse, but the picture: about 30 dB on the large image; small ones are all edge.
            expect(pLow, label).toBeGreaterThan(w > 100 ? 28 : 20);
            if (w > 100) expect(low.length, label).toBeLessThan(high.length / 2);
          }
        }
      }
    });

    it('gives pure colours back within a few levels, in patches, at 4:2:0 and 4:4:4', () => {
      const colours = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
      ];
      // Two rows of four 16 x 16 patches; compared away from the patch borders (chroma is upsampled smoothly).
      const rgb = image(64, 32, 3, (x, y, c) => colours[(y >> 4) * 4 + (x >> 4)][c]);
      for (const quality of [75, 95]) {
        const d = decode(encodeJpeg(rgb, 64, 32, 3, quality));
        for (let p = 0; p < 8; p++) {
          for (let y = 3; y < 13; y++) {
            for (let x = 3; x < 13; x++) {
              const i = (((p >> 2) * 16 + y) * 64 + (p & 3) * 16 + x) * 3;
              const got = [d.pixels[i], d.pixels[i + 1], d.pixels[i + 2]];
              for (let c = 0; c < 3; c++)
                expect(Math.abs(got[c] - colours[p][c]), `colour ${colours[p]} quality ${quality} got ${got}`).toBeLessThanOrEqual(4);
            }
          }
        }
      }
    });
  });
}

describe.skipIf(!runDjpeg)('compared with cjpeg (libjpeg-turbo-progs)', () => {
  /** cjpeg's baseline JPEG of the same image, quality and chroma sampling. */
  function cjpeg(px: Uint8Array, w: number, h: number, channels: 1 | 3, quality: number, sampling: string): Buffer {
    const header = Buffer.from(`${channels === 1 ? 'P5' : 'P6'}\n${w} ${h}\n255\n`);
    const args = ['-quality', String(quality), '-baseline', ...(channels === 3 ? ['-sample', sampling] : [])];
    const run = spawnSync('cjpeg', args, { input: Buffer.concat([header, px]), maxBuffer: 64 << 20 });
    if (run.error) throw run.error;
    expect(run.status, run.stderr.toString()).toBe(0);
    return run.stdout;
  }

  it('loses about as much as libjpeg-turbo at the same quality tables, in about as many bytes', () => {
    for (const channels of [1, 3] as const) {
      for (const quality of [10, 50, 75, 90, 100]) {
        const px = photoLike(513, 300, channels);
        const mine = encodeJpeg(px, 513, 300, channels, quality);
        const theirs = cjpeg(px, 513, 300, channels, quality, quality < 90 ? '2x2' : '1x1');
        const label = `${channels} channel(s), quality ${quality}`;
        expect(Math.abs(psnr(djpeg(mine).pixels, px) - psnr(djpeg(theirs).pixels, px)), label).toBeLessThan(0.5);
        expect(Math.abs(mine.length - theirs.length), label).toBeLessThan(theirs.length * 0.05 + 64);
      }
    }
  });

  it('codes long runs of zero coefficients (ZRL) as libjpeg-turbo does: a checkerboard on a ramp at low qualities', () => {
    // At qualities 10 and 30 little but the highest frequency is left of each block: runs of more than 16 zeros before it.
    const px = image(64, 40, 1, (x, y) => ((x + y) & 1 ? 40 : -40) + 60 + 2 * x);
    for (const quality of [10, 30, 90]) {
      const mine = encodeJpeg(px, 64, 40, 1, quality);
      const theirs = cjpeg(px, 64, 40, 1, quality, '1x1');
      const mineDecoded = djpeg(mine).pixels;
      expect(psnr(turbo(mine).pixels, mineDecoded), `quality ${quality}`).toBeGreaterThan(50);
      expect(Math.abs(psnr(mineDecoded, px) - psnr(djpeg(theirs).pixels, px)), `quality ${quality}`).toBeLessThan(0.5);
      expect(Math.abs(mine.length - theirs.length), `quality ${quality}`).toBeLessThan(theirs.length * 0.05 + 64);
    }
  });
});
