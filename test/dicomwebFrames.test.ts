/**
 * WADO-RS frames of multi-frame instances: native little-endian frames are read from the file a
 * range a frame (the frame's bytes, whichever frame), Big Endian ones swapped, 8-bit ones as
 * they are; compared with the values written.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { TransferSyntax } from '../src/dicom/tags.js';
import { createServer, type Server } from '../src/server.js';
import { TempDir, writeMultiFrame } from './fixtures/series.js';

const LE = '1.2.826.0.1.3680043.10.1453.93.1';
const BE = '1.2.826.0.1.3680043.10.1453.93.2';
const U8 = '1.2.826.0.1.3680043.10.1453.93.3';
const value = (x: number, y: number, f: number) => 1000 * f + 10 * y + x;
const COLUMNS = 7;
const ROWS = 5;
const FRAMES = 4;

let tmp: TempDir;
let server: Server;

beforeAll(() => {
  tmp = new TempDir();
  const data = join(tmp.path, 'data');
  for (const [uid, transferSyntax, bitsAllocated] of [
    [LE, TransferSyntax.ExplicitLittle, 16],
    [BE, TransferSyntax.ExplicitBig, 16],
    [U8, TransferSyntax.ImplicitLittle, 8],
  ] as const) {
    mkdirSync(join(data, uid), { recursive: true });
    writeMultiFrame(join(data, uid, 'mf.dcm'), {
      uid,
      columns: COLUMNS,
      rows: ROWS,
      frames: FRAMES,
      bitsAllocated,
      value: bitsAllocated === 8 ? (x, y, f) => (value(x, y, f) * 7) & 255 : value,
      layout: 'classic',
      position: (f) => [0, 0, 2 * f],
      transferSyntax,
    });
  }
  server = createServer(loadConfig({ flags: { dataDir: data, indexPath: join(tmp.path, 'index.sqlite') }, env: {} }), {});
});

afterAll(async () => {
  await server.close();
  tmp.remove();
});

/** The bytes of each part of a multipart body, in order. */
function partBytes(body: Buffer, contentType: string): Buffer[] {
  const boundary = `--${/boundary=([^;]+)/.exec(contentType)![1]}`;
  const out: Buffer[] = [];
  let at = body.indexOf(boundary);
  for (;;) {
    const headEnd = body.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const length = Number(/Content-Length: (\d+)/.exec(body.toString('latin1', at, headEnd))![1]);
    out.push(body.subarray(headEnd + 4, headEnd + 4 + length));
    at = body.indexOf(boundary, headEnd + 4 + length);
  }
  return out;
}

async function frames(uid: string, list: string): Promise<Buffer[]> {
  const sop = (await server.app.inject({ url: `/dicom-web/studies/${uid}.0/series/${uid}/instances` })).json()[0]['00080018'].Value[0];
  const res = await server.app.inject({
    url: `/dicom-web/studies/${uid}.0/series/${uid}/instances/${sop}/frames/${list}`,
    headers: { accept: 'multipart/related; type="application/octet-stream"' },
  });
  expect(res.statusCode).toBe(200);
  return partBytes(res.rawPayload, String(res.headers['content-type']));
}

const frame16 = (f: number) => {
  const b = Buffer.alloc(COLUMNS * ROWS * 2);
  for (let y = 0; y < ROWS; y++) for (let x = 0; x < COLUMNS; x++) b.writeUInt16LE(value(x, y, f), 2 * (x + COLUMNS * y));
  return b;
};

describe('WADO-RS frames of multi-frame instances', () => {
  it('sends any frame of a little-endian instance, read a range at a time, in the order listed', async () => {
    const got = await frames(LE, '3,1,4,3');
    expect(got.map((b) => b.length)).toEqual([70, 70, 70, 70]);
    expect(got.map((b, i) => b.equals(frame16([2, 0, 3, 2][i])))).toEqual([true, true, true, true]);
  });

  it('swaps the frames of a Big Endian instance to little endian', async () => {
    const got = await frames(BE, '2,4');
    expect(got.map((b, i) => b.equals(frame16([1, 3][i])))).toEqual([true, true]);
  });

  it('sends 8-bit frames of an Implicit VR instance as they are', async () => {
    const got = await frames(U8, '4');
    const expected = Buffer.alloc(COLUMNS * ROWS);
    for (let y = 0; y < ROWS; y++) for (let x = 0; x < COLUMNS; x++) expected[x + COLUMNS * y] = (value(x, y, 3) * 7) & 255;
    expect(got).toHaveLength(1);
    expect(got[0].equals(expected)).toBe(true);
  });
});
