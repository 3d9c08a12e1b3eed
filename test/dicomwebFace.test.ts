/**
 * The DICOMweb face, in process, over a data directory of series written in code: WADO-RS
 * retrieve (multipart bodies parsed here, bytes compared with the files), frames (uncompressed
 * and as stored, compared with the pixels written), rendered and thumbnail images (decoded and
 * compared with the VOI LUT computed here), content negotiation and errors.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { voi } from '../src/dicomweb/rendered.js';
import { instantiateEmscripten } from '../src/dicom/codecs/wasm.js';
import { parseDicom } from '../src/dicom/parser.js';
import { Tags, TransferSyntax } from '../src/dicom/tags.js';
import { createServer, type Server } from '../src/server.js';
import { rleFrame } from './fixtures/rle.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const CT = '1.2.826.0.1.3680043.10.1453.91.1';
const RLE = '1.2.826.0.1.3680043.10.1453.91.2';
const value = (x: number, y: number, k: number) => x * 7 + y * 100 - 300 + k * 11;

let tmp: TempDir;
let server: Server;
let ctFiles: string[];
let rleFiles: string[];

/** Parts of a multipart/related body: headers (lower-case names) and bytes. */
function parts(body: Buffer, contentType: string): { headers: Record<string, string>; bytes: Buffer }[] {
  const m = /boundary=([^;]+)/.exec(contentType);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${m[1]}`);
  const out: { headers: Record<string, string>; bytes: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', start);
    const headers: Record<string, string> = {};
    for (const line of body
      .subarray(start + 2, headEnd)
      .toString('latin1')
      .split('\r\n')) {
      const c = line.indexOf(':');
      headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    const length = Number(headers['content-length']);
    const bytes = body.subarray(headEnd + 4, headEnd + 4 + length);
    out.push({ headers, bytes });
    at = body.indexOf(delimiter, headEnd + 4 + length);
  }
  return out;
}

/** The pixels of an 8-bit PNG (grey or RGB), checked chunk by chunk. */
function pngPixels(png: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  let o = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    const type = png.toString('latin1', o + 4, o + 8);
    const data = png.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      channels = data[9] === 2 ? 3 : 1;
    } else if (type === 'IDAT') idat.push(data);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      pixels[y * stride + x] = f === 2 ? (v + up) & 255 : v;
    }
  }
  return { width, height, channels, pixels };
}

/** Binary values of 2,000 bytes, different per slice. */
const bulkBytes = (k: number) => Uint8Array.from({ length: 2000 }, (_, i) => (i * 31 + k) & 255);

const base = `/dicom-web/studies/${CT}.0/series/${CT}`;

beforeAll(() => {
  tmp = new TempDir();
  const data = join(tmp.path, 'data');
  ctFiles = writeSeries(join(data, CT), {
    uid: CT,
    columns: 6,
    rows: 4,
    slices: 5,
    value,
    rescaleIntercept: () => -1024,
    windowCenter: 40,
    windowWidth: 400,
    // A private binary value over the bulk data threshold, and one inside a sequence item.
    tweakElements: (k, elements) => [
      ...elements,
      { tag: 0x00091010, vr: 'OB', value: bulkBytes(k) },
      { tag: 0x00091020, vr: 'SQ', value: [[{ tag: 0x00091030, vr: 'OB', value: bulkBytes(k + 50) }]] },
    ],
  });
  rleFiles = writeSeries(join(data, RLE), {
    uid: RLE,
    columns: 5,
    rows: 3,
    slices: 2,
    value,
    transferSyntax: '1.2.840.10008.1.2.5',
    encode: (pixels) => rleFrame(pixels as Int16Array),
  });
  server = createServer(loadConfig({ flags: { dataDir: data, indexPath: join(tmp.path, 'index.sqlite') }, env: {} }), {});
});

afterAll(async () => {
  await server.close();
  tmp.remove();
});

const sops = (files: string[]) =>
  files.map((f) => {
    const b = readFileSync(f);
    // The SOP Instance UID the writer gave: (0008,0018) in Explicit VR LE.
    const at = b.indexOf(Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]));
    return b.toString('latin1', at + 8, at + 8 + b.readUInt16LE(at + 6)).replace(/\0$/, '');
  });

describe('WADO-RS retrieve', () => {
  it('sends a series as stored, one part a file, in InstanceNumber order, with Content-Location', async () => {
    const res = await server.app.inject({ url: base, headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^multipart\/related; type="application\/dicom"; boundary=/);
    expect(res.headers['cross-origin-resource-policy']).toBe('cross-origin');
    const got = parts(res.rawPayload, String(res.headers['content-type']));
    expect(got.map((p) => p.bytes.equals(readFileSync(ctFiles[got.indexOf(p)])))).toEqual([true, true, true, true, true]);
    expect(got.map((p) => p.headers['content-type'])).toEqual(Array(5).fill(`application/dicom; transfer-syntax=${TransferSyntax.ExplicitLittle}`));
    const uids = sops(ctFiles);
    expect(got.map((p) => p.headers['content-location'])).toEqual(uids.map((u) => `http://localhost:80${base}/instances/${u}`));
  });

  it('sends one instance, and Explicit VR Little Endian by default when it is stored so', async () => {
    const uid = sops(ctFiles)[2];
    const res = await server.app.inject({ url: `${base}/instances/${uid}`, headers: { accept: 'multipart/related; type="application/dicom"' } });
    expect(res.statusCode).toBe(200);
    const got = parts(res.rawPayload, String(res.headers['content-type']));
    expect(got).toHaveLength(1);
    expect(got[0].bytes.equals(readFileSync(ctFiles[2]))).toBe(true);
  });

  it('sends a study as stored, and RLE instances rewritten in Explicit VR Little Endian by default, decoded', async () => {
    const study = await server.app.inject({
      url: `/dicom-web/studies/${RLE}.0`,
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
    });
    expect(study.statusCode).toBe(200);
    expect(parts(study.rawPayload, String(study.headers['content-type'])).map((p) => p.bytes.length)).toEqual(
      rleFiles.map((f) => readFileSync(f).length),
    );
    const explicit = await server.app.inject({ url: `/dicom-web/studies/${RLE}.0/series/${RLE}` });
    expect(explicit.statusCode).toBe(200);
    expect(explicit.headers['content-type']).toMatch(
      new RegExp(`^multipart/related; type="application/dicom"; transfer-syntax=${TransferSyntax.ExplicitLittle.replace(/\./g, '\\.')}; boundary=`),
    );
    const got = parts(explicit.rawPayload, String(explicit.headers['content-type']));
    expect(got.map((p) => p.headers['content-type'])).toEqual(Array(2).fill(`application/dicom; transfer-syntax=${TransferSyntax.ExplicitLittle}`));
    got.forEach((p, k) => {
      const out = parseDicom(p.bytes);
      const stored = parseDicom(readFileSync(rleFiles[k]));
      expect(out.transferSyntaxUid).toBe(TransferSyntax.ExplicitLittle);
      expect(out.dataset.string(Tags.SOPInstanceUID)).toBe(stored.dataset.string(Tags.SOPInstanceUID));
      expect(out.dataset.string(Tags.StudyInstanceUID)).toBe(`${RLE}.0`);
      const px = out.dataset.elements.get(Tags.PixelData)!;
      const pixels = out.dataset.buf.subarray(px.offset, px.offset + px.length);
      const expected = Buffer.alloc(5 * 3 * 2);
      for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) expected.writeInt16LE(value(x, y, k), (y * 5 + x) * 2);
      expect(Buffer.from(pixels).equals(expected)).toBe(true);
    });
    // A compressed syntax other than the stored one is not made here.
    const jpeg = await server.app.inject({
      url: base,
      headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' },
    });
    expect(jpeg.statusCode).toBe(406);
    expect(jpeg.json()).toEqual({
      status: 'ng',
      message: expect.stringMatching(/stored in 1\.2\.840\.10008\.1\.2\.1; instances are sent as stored/),
    });
    const json = await server.app.inject({ url: base, headers: { accept: 'application/dicom+json' } });
    expect(json.statusCode).toBe(406);
  });

  it('answers 404 for a series of another study, an unknown instance, and 400 for a malformed UID', async () => {
    const wrongStudy = await server.app.inject({ url: `/dicom-web/studies/${RLE}.0/series/${CT}` });
    expect(wrongStudy.statusCode).toBe(404);
    expect(wrongStudy.json().message).toBe(`series ${CT} is not in study ${RLE}.0`);
    const noInstance = await server.app.inject({ url: `${base}/instances/1.2.3.4` });
    expect(noInstance.statusCode).toBe(404);
    const bad = await server.app.inject({ url: `${base}/instances/1.2.x` });
    expect(bad.statusCode).toBe(400);
    expect((await server.app.inject({ url: '/dicom-web/studies/9.9.9' })).statusCode).toBe(404);
  });
});

describe('WADO-RS frames', () => {
  const pixelsOf = (k: number, columns: number, rows: number) => {
    const b = Buffer.alloc(columns * rows * 2);
    for (let y = 0; y < rows; y++) for (let x = 0; x < columns; x++) b.writeInt16LE(value(x, y, k), (y * columns + x) * 2);
    return b;
  };

  it('sends uncompressed frames as octet-stream, the bytes written', async () => {
    const uid = sops(ctFiles)[3];
    const res = await server.app.inject({
      url: `${base}/instances/${uid}/frames/1,1`,
      headers: { accept: 'multipart/related; type="application/octet-stream"' },
    });
    expect(res.statusCode).toBe(200);
    const got = parts(res.rawPayload, String(res.headers['content-type']));
    expect(got).toHaveLength(2);
    expect(got[0].headers['content-type']).toBe(`application/octet-stream; transfer-syntax=${TransferSyntax.ExplicitLittle}`);
    expect(got[0].bytes.equals(pixelsOf(3, 6, 4))).toBe(true);
  });

  it('sends RLE frames as stored for transfer-syntax=* (and image/x-dicom-rle), decoded for octet-stream', async () => {
    const uid = sops(rleFiles)[1];
    const url = `/dicom-web/studies/${RLE}.0/series/${RLE}/instances/${uid}/frames/1`;
    const stored = await server.app.inject({ url, headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    const s = parts(stored.rawPayload, String(stored.headers['content-type']));
    expect(s[0].headers['content-type']).toBe('image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5');
    const written = Int16Array.from({ length: 15 }, (_, i) => value(i % 5, Math.floor(i / 5), 1));
    expect(Buffer.from(s[0].bytes).equals(Buffer.from(rleFrame(written)))).toBe(true);
    const decoded = await server.app.inject({ url, headers: { accept: 'multipart/related; type="application/octet-stream"' } });
    expect(parts(decoded.rawPayload, String(decoded.headers['content-type']))[0].bytes.equals(pixelsOf(1, 5, 3))).toBe(true);
    const jpeg = await server.app.inject({ url, headers: { accept: 'multipart/related; type="image/jpeg"' } });
    expect(jpeg.statusCode).toBe(406);
    // The name before image/dicom-rle, which dicomweb-client still sends: answered in it, as stored.
    const legacy = await server.app.inject({ url, headers: { accept: 'multipart/related; type="image/x-dicom-rle"' } });
    expect(legacy.statusCode).toBe(200);
    expect(legacy.headers['content-type']).toMatch(
      /^multipart\/related; type="image\/x-dicom-rle"; transfer-syntax=1\.2\.840\.10008\.1\.2\.5; boundary=/,
    );
    const l = parts(legacy.rawPayload, String(legacy.headers['content-type']));
    expect(l[0].headers['content-type']).toBe('image/x-dicom-rle; transfer-syntax=1.2.840.10008.1.2.5');
    expect(Buffer.from(l[0].bytes).equals(Buffer.from(rleFrame(written)))).toBe(true);
  });

  it('refuses frame lists out of range (404) and malformed (400)', async () => {
    const uid = sops(ctFiles)[0];
    const out = await server.app.inject({ url: `${base}/instances/${uid}/frames/2` });
    expect(out.statusCode).toBe(404);
    expect(out.json().message).toBe('frame 2 is not in the instance, which has 1 frame');
    for (const list of ['0', '1,a', '-1', '1,,2']) {
      const res = await server.app.inject({ url: `${base}/instances/${uid}/frames/${list}` });
      expect(res.statusCode, list).toBe(400);
    }
    const long = await server.app.inject({ url: `${base}/instances/${uid}/frames/${'1,'.repeat(10_001)}1` });
    // Refused by the router before it is a frame list at all (far longer than maxUrlLength).
    expect(long.statusCode).toBe(400);
    expect(long.json().message).toMatch(/^bad request: /);
  });
});

describe('metadata and bulk data', () => {
  const pixelsOf = (k: number) => {
    const b = Buffer.alloc(6 * 4 * 2);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 6; x++) b.writeInt16LE(value(x, y, k), (y * 6 + x) * 2);
    return b;
  };

  it("sends a series' metadata as DICOM JSON, one object an instance in order, with BulkDataURIs for pixel data and large values", async () => {
    const res = await server.app.inject({ url: `${base}/metadata`, headers: { accept: 'application/dicom+json' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/dicom+json');
    const body = res.json() as Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>[];
    const uids = sops(ctFiles);
    expect(body.map((d) => d['00080018'].Value)).toEqual(uids.map((u) => [u]));
    expect(body.map((d) => d['00200013'].Value)).toEqual([[1], [2], [3], [4], [5]]);
    const first = body[0];
    expect(first['0020000D']).toEqual({ vr: 'UI', Value: [`${CT}.0`] });
    expect(first['00280010']).toEqual({ vr: 'US', Value: [4] });
    expect(first['00280011']).toEqual({ vr: 'US', Value: [6] });
    expect(first['00281052']).toEqual({ vr: 'DS', Value: [-1024] });
    expect(first['00281050']).toEqual({ vr: 'DS', Value: [40] });
    const instance = `http://localhost:80${base}/instances/${uids[0]}`;
    expect(first['7FE00010']).toEqual({ vr: 'OW', BulkDataURI: `${instance}/bulkdata/7FE00010` });
    expect(first['00091010']).toEqual({ vr: 'OB', BulkDataURI: `${instance}/bulkdata/00091010` });
    expect(first['00091020']).toEqual({ vr: 'SQ', Value: [{ '00091030': { vr: 'OB', BulkDataURI: `${instance}/bulkdata/00091020/0/00091030` } }] });
    // No file meta group, no group lengths.
    expect(Object.keys(first).filter((k) => k.startsWith('0002') || k.endsWith('0000'))).toEqual([]);
    // The same bytes when asked again (built once per lookup of the series).
    const again = await server.app.inject({ url: `${base}/metadata` });
    expect(again.rawPayload.equals(res.rawPayload)).toBe(true);
  });

  it("sends one instance's metadata, and a study's (every series)", async () => {
    const uid = sops(ctFiles)[2];
    const one = await server.app.inject({ url: `${base}/instances/${uid}/metadata` });
    expect(one.statusCode).toBe(200);
    expect(one.json().map((d: Record<string, { Value: unknown[] }>) => d['00080018'].Value[0])).toEqual([uid]);
    const study = await server.app.inject({ url: `/dicom-web/studies/${RLE}.0/metadata` });
    expect(study.statusCode).toBe(200);
    const got = study.json() as Record<string, { Value?: unknown[]; BulkDataURI?: string }>[];
    expect(got.map((d) => d['00080018'].Value?.[0])).toEqual(sops(rleFiles));
    expect(got.map((d) => d['00020010'])).toEqual([undefined, undefined]);
    expect(got[0]['7FE00010'].BulkDataURI).toMatch(/\/bulkdata\/7FE00010$/);
  });

  it('sends the bulk data a BulkDataURI names: values, values in sequences, native and encapsulated pixel data', async () => {
    const uids = sops(ctFiles);
    const at = (k: number, path: string) => `${base}/instances/${uids[k]}/bulkdata/${path}`;
    const multipart = { accept: 'multipart/related; type="application/octet-stream"' };
    const value1 = await server.app.inject({ url: at(1, '00091010'), headers: multipart });
    expect(value1.statusCode).toBe(200);
    expect(value1.headers['content-type']).toMatch(/^multipart\/related; type="application\/octet-stream"; boundary=/);
    const p = parts(value1.rawPayload, String(value1.headers['content-type']));
    expect(p).toHaveLength(1);
    expect(p[0].bytes.equals(Buffer.from(bulkBytes(1)))).toBe(true);
    const nested = await server.app.inject({ url: at(3, '00091020/0/00091030'), headers: { accept: 'application/octet-stream' } });
    expect(nested.headers['content-type']).toBe('application/octet-stream');
    expect(nested.rawPayload.equals(Buffer.from(bulkBytes(53)))).toBe(true);
    const pixels = await server.app.inject({ url: at(4, '7FE00010'), headers: multipart });
    expect(parts(pixels.rawPayload, String(pixels.headers['content-type']))[0].bytes.equals(pixelsOf(4))).toBe(true);
    // Encapsulated pixel data: a frame a part, decoded unless the stored syntax is accepted.
    const rle = sops(rleFiles)[1];
    const rleAt = `/dicom-web/studies/${RLE}.0/series/${RLE}/instances/${rle}/bulkdata/7FE00010`;
    const decoded = await server.app.inject({ url: rleAt, headers: multipart });
    expect(decoded.statusCode).toBe(200);
    const frame = parts(decoded.rawPayload, String(decoded.headers['content-type']));
    expect(frame).toHaveLength(1);
    const expected = Buffer.alloc(5 * 3 * 2);
    for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) expected.writeInt16LE(value(x, y, 1), (y * 5 + x) * 2);
    expect(frame[0].bytes.equals(expected)).toBe(true);
  });

  it('answers 404 for bulk data that is not there, 406 for metadata not as JSON, 400 for a malformed UID', async () => {
    const uid = sops(ctFiles)[0];
    const none = await server.app.inject({ url: `${base}/instances/${uid}/bulkdata/00091099` });
    expect(none.statusCode).toBe(404);
    expect(none.json()).toEqual({ status: 'ng', message: expect.stringMatching(/has no bulk data at 00091099/) });
    expect((await server.app.inject({ url: `${base}/instances/${uid}/bulkdata/not-a-path` })).statusCode).toBe(404);
    expect((await server.app.inject({ url: `${base}/instances/${uid}/bulkdata/00091020` })).statusCode).toBe(404);
    const png = await server.app.inject({ url: `${base}/metadata`, headers: { accept: 'image/png' } });
    expect(png.statusCode).toBe(406);
    expect((await server.app.inject({ url: `/dicom-web/studies/1.2.x/series/${CT}/metadata` })).statusCode).toBe(400);
    expect((await server.app.inject({ url: '/dicom-web/studies/9.9.9/metadata' })).statusCode).toBe(404);
  });
});

describe('rendered and thumbnail', () => {
  interface TurboDecoder {
    getEncodedBuffer(length: number): Uint8Array;
    decode(): void;
    getFrameInfo(): { width: number; height: number; componentCount: number };
    getDecodedBuffer(): Uint8Array;
    delete(): void;
  }
  let turboClass: (new () => TurboDecoder) | undefined;

  /** The pixels of a JPEG, decoded by libjpeg-turbo's WebAssembly decoder (no code shared with the server's encoder). */
  function jpegPixels(jpeg: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
    expect(jpeg.subarray(0, 4).toString('hex')).toBe('ffd8ffe0');
    if (!turboClass) {
      const require = createRequire(import.meta.url);
      const compiled = new WebAssembly.Module(readFileSync(require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm')));
      turboClass = instantiateEmscripten('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs', compiled).JPEGDecoder as new () => TurboDecoder;
    }
    const decoder = new turboClass();
    try {
      decoder.getEncodedBuffer(jpeg.length).set(jpeg);
      decoder.decode();
      const info = decoder.getFrameInfo();
      return { width: info.width, height: info.height, channels: info.componentCount, pixels: Uint8Array.from(decoder.getDecodedBuffer()) };
    } finally {
      decoder.delete();
    }
  }

  /** The grey levels of slice k of the CT series through a window, as the VOI LUT gives them. */
  const expectedGrey = (k: number, center: number, width: number) =>
    Array.from({ length: 24 }, (_, i) => voi(value(i % 6, Math.floor(i / 6), k) - 1024, { center, width, fn: 'linear' }));

  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
  };

  it('renders an instance through the window given, as PNG, each pixel the VOI LUT of its value', async () => {
    const uid = sops(ctFiles)[1];
    const res = await server.app.inject({ url: `${base}/instances/${uid}/rendered?window=-1100,500`, headers: { accept: 'image/png' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    const img = pngPixels(res.rawPayload);
    expect([img.width, img.height, img.channels]).toEqual([6, 4, 1]);
    expect([...img.pixels]).toEqual(expectedGrey(1, -1100, 500));
    // The linear function by hand for one pixel: at (0, 0) of slice 1, -300 + 11 - 1024 = -1313.
    expect(img.pixels[0]).toBe(Math.round(((-1313 - (-1100 - 0.5)) / 499 + 0.5) * 255));
  });

  it('renders as JPEG at the quality asked, each pixel close to the VOI LUT of its value', async () => {
    const uid = sops(ctFiles)[1];
    const expected = expectedGrey(1, -1100, 500);
    const url = `${base}/instances/${uid}/rendered?window=-1100,500`;
    const sizes: number[] = [];
    for (const [quality, tolerance] of [
      [100, 1],
      [90, 3],
      [50, 10],
    ] as const) {
      const res = await server.app.inject({ url: `${url}&quality=${quality}`, headers: { accept: 'image/jpeg' } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('image/jpeg');
      const img = jpegPixels(res.rawPayload);
      expect([img.width, img.height, img.channels]).toEqual([6, 4, 1]);
      expect(maxDiff(img.pixels, expected), `quality ${quality}`).toBeLessThanOrEqual(tolerance);
      sizes.push(res.rawPayload.length);
    }
    // Each quality is an image of its own (cached apart): lower quality, fewer bytes.
    expect(sizes[0]).toBeGreaterThan(sizes[1]);
    expect(sizes[1]).toBeGreaterThan(sizes[2]);
    // 90 is the default quality.
    const byDefault = await server.app.inject({ url, headers: { accept: 'image/jpeg' } });
    const at90 = await server.app.inject({ url: `${url}&quality=90`, headers: { accept: 'image/jpeg' } });
    expect(byDefault.rawPayload.equals(at90.rawPayload)).toBe(true);
    // The quality changes nothing for PNG.
    const png = await server.app.inject({ url: `${url}&quality=10`, headers: { accept: 'image/png' } });
    const png90 = await server.app.inject({ url, headers: { accept: 'image/png' } });
    expect(png.rawPayload.equals(png90.rawPayload)).toBe(true);
    expect([...pngPixels(png.rawPayload).pixels]).toEqual(expected);
  });

  it("uses the instance's window by default, JPEG for */*, image/* and no Accept, and the first of JPEG and PNG the ranges name", async () => {
    const uid = sops(ctFiles)[1];
    const url = `${base}/instances/${uid}/rendered`;
    const expected = expectedGrey(1, 40, 400);
    const png = await server.app.inject({ url, headers: { accept: 'image/png' } });
    expect([...pngPixels(png.rawPayload).pixels]).toEqual(expected);
    const jpeg = await server.app.inject({ url, headers: { accept: 'image/jpeg' } });
    expect(jpeg.headers['content-type']).toBe('image/jpeg');
    expect(maxDiff(jpegPixels(jpeg.rawPayload).pixels, expected)).toBeLessThanOrEqual(8);
    for (const [accept, type] of [
      [undefined, 'image/jpeg'],
      ['*/*', 'image/jpeg'],
      ['image/*', 'image/jpeg'],
      ['image/png, image/jpeg', 'image/png'],
      ['image/gif, image/jpeg, image/png', 'image/jpeg'],
      ['image/png;q=0.5, image/jpeg', 'image/jpeg'],
      ['image/jpeg;q=0.4, image/*;q=0.6, image/png', 'image/png'],
      ['image/jpeg;q=0.4, image/*;q=0.6', 'image/jpeg'],
    ] as const) {
      const res = await server.app.inject({ url, headers: accept === undefined ? {} : { accept } });
      expect(res.statusCode, accept).toBe(200);
      expect(res.headers['content-type'], accept).toBe(type);
      expect(res.rawPayload.equals(type === 'image/png' ? png.rawPayload : jpeg.rawPayload), accept).toBe(true);
    }
    // The accept parameter replaces the header.
    const byParam = await server.app.inject({ url: `${url}?accept=image/png`, headers: { accept: 'image/jpeg' } });
    expect(byParam.headers['content-type']).toBe('image/png');
  });

  it('renders the middle image of a series, frames, and thumbnails fitted into the viewport', async () => {
    const series = await server.app.inject({ url: `${base}/rendered?window=-1100,500`, headers: { accept: 'image/png' } });
    const mid = pngPixels(series.rawPayload);
    expect([...mid.pixels]).toEqual(expectedGrey(2, -1100, 500));
    const seriesJpeg = await server.app.inject({ url: `${base}/rendered?window=-1100,500&quality=100` });
    expect(seriesJpeg.headers['content-type']).toBe('image/jpeg');
    expect(maxDiff(jpegPixels(seriesJpeg.rawPayload).pixels, expectedGrey(2, -1100, 500))).toBeLessThanOrEqual(1);
    const uid = sops(ctFiles)[0];
    const frame = await server.app.inject({ url: `${base}/instances/${uid}/frames/1/rendered?viewport=3,2`, headers: { accept: 'image/png' } });
    const small = pngPixels(frame.rawPayload);
    expect([small.width, small.height]).toEqual([3, 2]);
    const frameJpeg = await server.app.inject({ url: `${base}/instances/${uid}/frames/1/rendered?viewport=3,2&quality=100` });
    const smallJpeg = jpegPixels(frameJpeg.rawPayload);
    expect([smallJpeg.width, smallJpeg.height]).toEqual([3, 2]);
    expect(maxDiff(smallJpeg.pixels, small.pixels)).toBeLessThanOrEqual(2);
    const thumb = await server.app.inject({ url: `/dicom-web/studies/${CT}.0/thumbnail`, headers: { accept: 'image/png' } });
    expect(thumb.statusCode).toBe(200);
    // 6 x 4 fitted into 128 x 128: 128 x 85 (aspect ratio kept).
    const thumbPng = pngPixels(thumb.rawPayload);
    expect([thumbPng.width, thumbPng.height]).toEqual([128, 85]);
    const thumbJpeg = await server.app.inject({ url: `/dicom-web/studies/${CT}.0/thumbnail` });
    expect(thumbJpeg.headers['content-type']).toBe('image/jpeg');
    const decoded = jpegPixels(thumbJpeg.rawPayload);
    expect([decoded.width, decoded.height, decoded.channels]).toEqual([128, 85, 1]);
    // Scaled up by nearest pixel: flat areas with sharp edges, close to the PNG's at quality 90 on average.
    let sum = 0;
    for (let i = 0; i < decoded.pixels.length; i++) sum += Math.abs(decoded.pixels[i] - thumbPng.pixels[i]);
    expect(sum / decoded.pixels.length).toBeLessThan(2);
  });

  it('answers bad parameters with 400 and unacceptable types with 406', async () => {
    const uid = sops(ctFiles)[0];
    for (const q of [
      'window=1',
      'window=a,b',
      'window=0,0',
      'window=1,2,cubic',
      'viewport=0,10',
      'viewport=10',
      'quality=101',
      'quality=0',
      'frobnicate=1',
    ]) {
      const res = await server.app.inject({ url: `${base}/instances/${uid}/rendered?${q}` });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().status).toBe('ng');
    }
    for (const accept of ['image/gif', 'image/gif, text/html', 'application/dicom']) {
      const res = await server.app.inject({ url: `${base}/instances/${uid}/rendered`, headers: { accept } });
      expect(res.statusCode, accept).toBe(406);
    }
  });
});

describe('access', () => {
  it('needs allowListing for study-level resources in authentication mode, a series token for series ones', async () => {
    const s = createServer(loadConfig({ flags: { dataDir: join(tmp.path, 'data'), auth: true, tokenSecret: 'x'.repeat(32) }, env: {} }), {
      useIndex: false,
    });
    try {
      const study = await s.app.inject({ url: `/dicom-web/studies/${CT}.0` });
      expect(study.statusCode).toBe(403);
      const series = await s.app.inject({ url: base });
      expect(series.statusCode).toBe(401);
    } finally {
      await s.close();
    }
  });
});

describe('QIDO-RS', () => {
  const tagValue = (r: Record<string, { Value?: unknown[] }>, t: string) => r[t]?.Value?.[0];

  it('finds studies with their required attributes and counts, from the index', async () => {
    const res = await server.app.inject({ url: '/dicom-web/studies', headers: { accept: 'application/dicom+json' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
    const studies = res.json() as Record<string, { vr: string; Value?: unknown[] }>[];
    const ct = studies.find((s) => tagValue(s, '0020000D') === `${CT}.0`)!;
    expect(ct).toBeDefined();
    expect(tagValue(ct, '00201206')).toBe(1); // NumberOfStudyRelatedSeries
    expect(tagValue(ct, '00201208')).toBe(5); // NumberOfStudyRelatedInstances
    expect(ct['00080061']).toEqual({ vr: 'CS', Value: ['CT'] }); // ModalitiesInStudy
    expect(tagValue(ct, '00081190')).toBe(`http://localhost:80/dicom-web/studies/${CT}.0`);
    expect(studies.map((s) => tagValue(s, '0020000D')).sort()).toEqual([`${CT}.0`, `${RLE}.0`]);
  });

  it('matches UIDs, limits and pages series, and lists the instances of a series in order', async () => {
    const one = await server.app.inject({ url: `/dicom-web/series?SeriesInstanceUID=${RLE}` });
    expect((one.json() as unknown[]).length).toBe(1);
    const page = await server.app.inject({ url: '/dicom-web/series?limit=1&offset=1' });
    expect((page.json() as unknown[]).length).toBe(1);
    const inStudy = await server.app.inject({ url: `/dicom-web/studies/${CT}.0/series` });
    expect((inStudy.json() as Record<string, { Value?: unknown[] }>[]).map((s) => tagValue(s, '0020000E'))).toEqual([CT]);
    const instances = await server.app.inject({ url: `${base}/instances` });
    const list = instances.json() as Record<string, { Value?: unknown[] }>[];
    expect(list.map((i) => tagValue(i, '00080018'))).toEqual(sops(ctFiles));
    expect(list.map((i) => tagValue(i, '00200013'))).toEqual([1, 2, 3, 4, 5]);
    const studyInstances = await server.app.inject({ url: `/dicom-web/studies/${RLE}.0/instances` });
    expect((studyInstances.json() as unknown[]).length).toBe(2);
    const all = await server.app.inject({ url: `/dicom-web/instances?SeriesInstanceUID=${CT}` });
    expect((all.json() as unknown[]).length).toBe(5);
  });

  it('answers hostile queries with 400 and a reason, never a 500', async () => {
    for (const q of [
      'limit=-1',
      'offset=1e12',
      'StudyDate=2020-13-45',
      'StudyInstanceUID=1.2.abc',
      'NoSuchKeyword=1',
      `includefield=${'PatientName,'.repeat(300)}`,
    ]) {
      const res = await server.app.inject({ url: `/dicom-web/studies?${q}` });
      expect(res.statusCode, q).toBe(400);
      expect(res.json()).toEqual({ status: 'ng', message: expect.any(String) });
    }
    const sql = await server.app.inject({ url: `/dicom-web/studies?PatientName=${encodeURIComponent("'; DROP TABLE files;--")}` });
    expect(sql.statusCode).toBe(200);
    expect(sql.json()).toEqual([]);
    expect((await server.app.inject({ url: '/dicom-web/studies', headers: { accept: 'image/png' } })).statusCode).toBe(406);
  });
});
