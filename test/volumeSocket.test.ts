/**
 * WebSocket /ws/volume, as src/http/ws/ states the policy, with a real client
 * (the `ws` package) against a server listening on 127.0.0.1: transfers reassemble exactly the
 * voxels (the generated values, and GET /series/:sid/volume's bytes); priorities, pause, resume
 * and abort; partial volumes; transfers sharing a socket; backpressure against a client that
 * stops reading; malformed frames; TRANSFER_ERROR; tokens; the socket limits.
 *
 * Series are generated in code and served from memory; HeldSeries holds slices back until the
 * test releases them, so "sent before the other slices were read" is shown by what was read, and
 * "the server has seen this message" by a ping answered after it (frames are handled in order),
 * never by timing.
 */
import { randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config/config.js';
import type { ProgressiveVolume } from '../src/dicom/progressiveVolume.js';
import { createServer, type Server } from '../src/server.js';
import { ImageQueue } from '../src/services/imageQueue.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesInstances, SeriesSource } from '../src/sources/source.js';
import { HeldSeries } from './fixtures/held.js';
import { rleFrame } from './fixtures/rle.js';
import { seriesFiles } from './fixtures/series.js';

const NX = 6;
const NY = 5;
const NZ = 8;
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const SECRET = 'a secret of at least sixteen characters';
const name = (k: number): string => `slice ${k}`;
const signedValue = (x: number, y: number, k: number): number => 7 * x - 13 * y + 101 * k - 400;

interface SeriesOptions {
  nx?: number;
  ny?: number;
  nz?: number;
  value?: (x: number, y: number, k: number) => number;
  rle?: boolean;
}

/** Signed 16-bit slices, slice k at z = k (positions go down, InstanceNumber up), named `slice k`. */
function sliceFiles(uid: string, options: SeriesOptions = {}): { name: string; bytes: Buffer }[] {
  const { nx = NX, ny = NY, nz = NZ, value = signedValue, rle = false } = options;
  return seriesFiles({
    uid,
    columns: nx,
    rows: ny,
    slices: nz,
    value,
    fileName: name,
    ...(rle ? { transferSyntax: RLE_LOSSLESS, encode: (pixels) => rleFrame(pixels as Int16Array) } : {}),
  });
}

/**
 * A stack, not a volume: images 0-2 axial, 3-5 coronal (writing order), InstanceNumber 4, 1, 6, 2,
 * 5, 3, values `signedValue` of the writing index. Its image z is the one numbered z + 1.
 */
const STACK_ORDER = [1, 3, 5, 0, 4, 2];
const stackFiles = (uid: string): { name: string; bytes: Buffer }[] =>
  seriesFiles({
    uid,
    columns: NX,
    rows: NY,
    slices: 6,
    value: signedValue,
    fileName: name,
    instanceNumber: (k) => [4, 1, 6, 2, 5, 3][k],
    position: (k) => (k < 3 ? [-10, -20, -5 * k] : [-10, 3 * k, 40]),
    orientation: (k) => (k < 3 ? [1, 0, 0, 0, 1, 0] : [1, 0, 0, 0, 0, -1]),
  });

/** A source whose series lookups (the start of each header pass) wait until the test lets them go; it counts them. */
class GatedSource implements SeriesSource {
  finds = 0;
  private open: boolean;
  private readonly waiting: (() => void)[] = [];
  private readonly watchers: (() => void)[] = [];

  constructor(
    private readonly inner: SeriesSource,
    { held = true } = {},
  ) {
    this.open = !held;
  }

  async find(seriesUid: string): Promise<SeriesInstances | null> {
    this.finds++;
    for (const w of this.watchers.splice(0)) w();
    if (!this.open) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.inner.find(seriesUid);
  }

  /** Lets every lookup through, now and later. */
  release(): void {
    this.open = true;
    for (const go of this.waiting.splice(0)) go();
  }

  /** Resolves once `n` lookups have begun. */
  async whenFound(n = 1): Promise<void> {
    while (this.finds < n) await new Promise<void>((resolve) => this.watchers.push(resolve));
  }
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A raw HTTP/1.1 connection: writes bytes as given and parses the responses (Content-Length
 * bodies), so that requests the client library would change (Upgrade, pipelining) go as written.
 */
class RawConnection {
  readonly responses: RawResponse[] = [];
  ended = false;
  private buffer = Buffer.alloc(0);
  private readonly watchers = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.parse();
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  write(text: string): void {
    this.socket.write(Buffer.from(text, 'latin1'));
  }

  private notify(): void {
    for (const w of [...this.watchers]) w();
  }

  private parse(): void {
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (this.buffer.length < end + 4 + length) return;
      const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
      this.buffer = this.buffer.subarray(end + 4 + length);
      this.responses.push({ status: Number(statusLine.split(' ')[1]), headers, body });
    }
  }

  /** Resolves once `done()` holds; rejects when the connection ends first. */
  until(done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (done()) {
          this.watchers.delete(check);
          resolve();
        } else if (this.ended) {
          this.watchers.delete(check);
          reject(new Error(`the connection ended after ${this.responses.length} responses`));
        }
      };
      this.watchers.add(check);
      check();
    });
  }

  untilResponses(n: number): Promise<void> {
    return this.until(() => this.responses.length >= n);
  }
}

function memoryOf(uid: string, files: { name: string; bytes: Buffer }[], into = new MemorySource()): MemorySource {
  for (const f of files) into.add(uid, f.name, f.bytes);
  return into;
}

/** The bytes image `slice` should have: Int16 little-endian, x fastest. */
function expectedImage(slice: number, options: SeriesOptions = {}): Buffer {
  const { nx = NX, ny = NY, value = signedValue } = options;
  const out = Buffer.alloc(nx * ny * 2);
  for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) out.writeInt16LE(value(x, y, slice), 2 * (x + nx * y));
  return out;
}

const servers: Server[] = [];
const clients: Client[] = [];
const raws: RawConnection[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const r of raws.splice(0)) r.socket.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server listening on 127.0.0.1 (a free port) serving `source`; returns it and the socket URL. */
async function serve(source: SeriesSource, flags: Record<string, unknown> = {}): Promise<{ s: Server; url: string; base: string }> {
  const config = loadConfig({ flags: { dataDir: '/nonexistent', renderWorkers: 1, decodeWorkers: 1, logLevel: 'silent', ...flags }, env: {} });
  const s = createServer(config, { source, useIndex: false });
  servers.push(s);
  await s.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = s.app.server.address() as { port: number };
  const base = `http://127.0.0.1:${port}${config.basePath}`;
  return { s, url: `ws://127.0.0.1:${port}${config.basePath}/ws/volume`, base };
}

interface Message {
  header: Record<string, unknown>;
  payload: Buffer;
}

/** A /ws/volume client that records every message and can wait for a condition. */
class Client {
  readonly messages: Message[] = [];
  closed: { code: number; reason: string } | null = null;
  private readonly watchers = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      expect(isBinary).toBe(true);
      const end = data.indexOf(0x0a);
      expect(end).toBeGreaterThan(0);
      this.messages.push({ header: JSON.parse(data.subarray(0, end).toString('utf8')), payload: data.subarray(end + 1) });
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.notify();
    });
    ws.on('error', () => {});
  }

  static connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const client = new Client(ws);
      clients.push(client);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { res })));
    });
  }

  /** The HTTP answer to an upgrade the server refuses: status, headers and JSON body. */
  static refused(
    url: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.on('error', () => {});
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
      ws.once('unexpected-response', (_req, res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }));
      });
    });
  }

  private notify(): void {
    for (const w of [...this.watchers]) w();
  }

  /** Resolves once `done()` holds (checked after every message and at close). */
  until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (done()) {
          this.watchers.delete(check);
          resolve();
        } else if (this.closed) {
          this.watchers.delete(check);
          reject(new Error(`the socket closed (${this.closed.code} ${this.closed.reason}) before the condition held`));
        }
      };
      this.watchers.add(check);
    });
  }

  untilClosed(): Promise<{ code: number; reason: string }> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(this.closed);
      const check = (): void => {
        if (!this.closed) return;
        this.watchers.delete(check);
        resolve(this.closed);
      };
      this.watchers.add(check);
    });
  }

  send(message: Record<string, unknown>): void {
    this.ws.send(Buffer.from(`${JSON.stringify(message)}\n`));
  }

  begin(transferId: string, seriesUid: string, partialVolumeDescriptor?: unknown): void {
    this.send({ messageType: 'BEGIN_TRANSFER', transferId, seriesUid, ...(partialVolumeDescriptor ? { partialVolumeDescriptor } : {}) });
  }

  /** Resolves once the server has handled every message sent before (it answers a ping after them). */
  barrier(): Promise<void> {
    return new Promise((resolve) => {
      this.ws.once('pong', () => resolve());
      this.ws.ping();
    });
  }

  /** TRANSFER_IMAGE messages of a transfer, in arrival order. */
  images(transferId: string): Message[] {
    return this.messages.filter((m) => m.header.messageType === 'TRANSFER_IMAGE' && m.header.transferId === transferId);
  }

  indices(transferId: string): number[] {
    return this.images(transferId).map((m) => m.header.imageIndex as number);
  }

  errors(transferId?: string): Record<string, unknown>[] {
    return this.messages
      .filter((m) => m.header.messageType === 'TRANSFER_ERROR' && (transferId === undefined || m.header.transferId === transferId))
      .map((m) => m.header);
  }

  /** Waits for `count` images of a transfer. */
  untilImages(transferId: string, count: number): Promise<void> {
    return this.until(() => this.images(transferId).length >= count);
  }

  /** Waits for a TRANSFER_ERROR of a transfer and returns it. */
  async untilError(transferId: string): Promise<Record<string, unknown>> {
    await this.until(() => this.errors(transferId).length > 0);
    return this.errors(transferId)[0];
  }
}

/** Lets every callback due now run (several turns of the event loop). */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Resolves once `done()` holds, looking every few milliseconds (a bounded number of times: the test fails rather than hangs). */
async function poll(done: () => boolean): Promise<void> {
  for (let i = 0; i < 4000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(done()).toBe(true);
}

/** Checks that the images of a transfer are every image exactly once, with the bytes of `slices[k]`. */
function expectTransfer(client: Client, transferId: string, slices: readonly number[], options: SeriesOptions = {}): void {
  const images = client.images(transferId);
  expect(images.map((m) => m.header.imageIndex).sort((a, b) => (a as number) - (b as number))).toEqual(slices.map((_, k) => k));
  for (const m of images) {
    const k = m.header.imageIndex as number;
    expect(Object.keys(m.header).sort()).toEqual(['imageIndex', 'messageType', 'transferId']);
    expect(m.payload.equals(expectedImage(slices[k], options)), `image ${k}`).toBe(true);
  }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('ImageQueue: the order of a transfer', () => {
  const drain = (q: ImageQueue): number[] => {
    const out: number[] = [];
    for (let k = q.peek(); k >= 0; k = q.peek()) {
      out.push(k);
      q.take(k);
    }
    return out;
  };

  it('ascending index by default; higher priority first; equal priorities most recently set first, a list in its order', () => {
    expect(drain(new ImageQueue(5))).toEqual([0, 1, 2, 3, 4]);
    const q = new ImageQueue(10);
    q.setPriority([6], 1);
    q.setPriority([8, 3], 1);
    q.setPriority([9], 2);
    q.setPriority([1], 0); // priority 0 set now: before the never-set ones
    expect(drain(q)).toEqual([9, 8, 3, 6, 1, 0, 2, 4, 5, 7]);
  });

  it('a later setting replaces an earlier one (lowering too); sent and out-of-range images are ignored', () => {
    const q = new ImageQueue(6);
    expect(q.setPriority([4, 5], 3)).toBe(2);
    expect(q.peek()).toBe(4);
    q.take(4);
    expect(q.setPriority([4, -1, 6, 2.5], 9)).toBe(0);
    expect(q.setPriority([5], -1)).toBe(1);
    expect(q.remaining).toBe(5);
    expect(drain(q)).toEqual([0, 1, 2, 3, 5]);
    expect(q.peek()).toBe(-1);
  });

  it('agrees with sorting by (priority, recency, index) over random settings, however many', () => {
    for (let round = 0; round < 20; round++) {
      const n = randomInt(1, 60);
      const q = new ImageQueue(n);
      const priority = new Array<number>(n).fill(0);
      const stamp = new Array<number>(n).fill(0);
      const sent = new Array<boolean>(n).fill(false);
      let clock = 0;
      for (let step = 0; step < 300; step++) {
        if (randomInt(3) === 0) {
          const expected = range(n)
            .filter((k) => !sent[k])
            .sort((a, b) => priority[b] - priority[a] || stamp[b] - stamp[a] || a - b)[0];
          const k = q.peek();
          expect(k).toBe(expected ?? -1);
          if (k >= 0) {
            q.take(k);
            sent[k] = true;
          }
        } else {
          const list = Array.from({ length: randomInt(1, 5) }, () => randomInt(-2, n + 2));
          const p = randomInt(-2, 3);
          q.setPriority(list, p);
          for (let i = list.length - 1; i >= 0; i--) {
            const k = list[i];
            if (k < 0 || k >= n || sent[k]) continue;
            priority[k] = p;
            stamp[k] = ++clock;
          }
        }
      }
    }
  });
});

describe('WebSocket /ws/volume', () => {
  it('a transfer reassembles exactly the voxels: the generated values, and the bytes of GET /series/:sid/volume', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.1';
    const { url, base } = await serve(memoryOf(uid, sliceFiles(uid)));
    const client = await Client.connect(url);
    client.begin('t1', uid);
    await client.untilImages('t1', NZ);
    expectTransfer(client, 't1', range(NZ));
    await client.barrier();
    expect(client.images('t1')).toHaveLength(NZ); // each image once, nothing after
    const http = await fetch(`${base}/series/${uid}/volume`);
    expect(http.status).toBe(200);
    const whole = Buffer.from(await http.arrayBuffer());
    const ordered = [...client.images('t1')].sort((a, b) => (a.header.imageIndex as number) - (b.header.imageIndex as number));
    expect(Buffer.concat(ordered.map((m) => m.payload)).equals(whole)).toBe(true);
  });

  it('an RLE series: its images go out decoded, the same bytes', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.2';
    const { url } = await serve(memoryOf(uid, sliceFiles(uid, { rle: true })));
    const client = await Client.connect(url);
    client.begin('rle', uid);
    await client.untilImages('rle', NZ);
    expectTransfer(client, 'rle', range(NZ));
  });

  it('images go out as their slices are decoded; SET_PRIORITY on later images makes them come next, latest first', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.3';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { s, url } = await serve(held);
    held.release(name(0), name(1), name(2));
    const client = await Client.connect(url);
    client.begin('t1', uid);
    await client.untilImages('t1', 3);
    // Sent while the other slices are unread.
    expect(client.indices('t1')).toEqual([0, 1, 2]);
    expect(held.passed.sort()).toEqual([name(0), name(1), name(2)]);
    client.send({ messageType: 'SET_PRIORITY', transferId: 't1', target: 6, priority: 1 });
    // The first of a list is the most recent; indices outside the volume are ignored.
    client.send({ messageType: 'SET_PRIORITY', transferId: 't1', target: [7, 4, 99, -1], priority: 1 });
    client.send({ messageType: 'SET_PRIORITY', transferId: 'unknown', target: 3, priority: 5 });
    await client.barrier();
    held.release();
    await client.untilImages('t1', NZ);
    expect(client.indices('t1')).toEqual([0, 1, 2, 7, 4, 6, 3, 5]);
    expectTransfer(client, 't1', range(NZ));
    // The transfer is over and forgotten.
    await poll(() => s.app.volumeSockets.stats()[0]?.transfers === 0);
  });

  it('PAUSE_TRANSFER: no image while paused; RESUME_TRANSFER: the rest', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.4';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { s, url } = await serve(held);
    held.release(name(0), name(1));
    const client = await Client.connect(url);
    client.begin('p', uid);
    await client.untilImages('p', 2);
    client.send({ messageType: 'PAUSE_TRANSFER', transferId: 'p' });
    await client.barrier();
    held.release();
    await (await s.volumes.open(uid)).complete;
    await settle();
    await client.barrier();
    expect(client.indices('p')).toEqual([0, 1]);
    expect(s.app.volumeSockets.stats()[0]).toMatchObject({ transfers: 1, imagesSent: 2, holding: false });
    client.send({ messageType: 'RESUME_TRANSFER', transferId: 'p' });
    await client.untilImages('p', NZ);
    expect(client.indices('p')).toEqual(range(NZ));
    expectTransfer(client, 'p', range(NZ));
  });

  it('ABORT_TRANSFER: no image after it, the transfer is forgotten (its id may begin again)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.5';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { s, url } = await serve(held);
    held.release(name(0), name(1));
    const client = await Client.connect(url);
    client.begin('a', uid);
    await client.untilImages('a', 2);
    client.send({ messageType: 'ABORT_TRANSFER', transferId: 'a' });
    await client.barrier();
    expect(s.app.volumeSockets.stats()[0].transfers).toBe(0);
    held.release();
    await (await s.volumes.open(uid)).complete;
    await settle();
    await client.barrier();
    expect(client.indices('a')).toEqual([0, 1]);
    expect(client.errors()).toEqual([]);
    client.begin('a', uid);
    await client.untilImages('a', 2 + NZ);
    expect(client.indices('a').slice(2)).toEqual(range(NZ));
    // STOP_TRANSFER (earlier clients' name) aborts too.
    client.begin('b', uid, { start: 1, end: 1, delta: 1 });
    client.send({ messageType: 'STOP_TRANSFER', transferId: 'b' });
    await client.barrier();
    expect(s.app.volumeSockets.stats()[0].transfers).toBe(0);
  });

  it('a partial volume descriptor streams only its images, indexed in its order (priorities too)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.6';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { url } = await serve(held);
    const client = await Client.connect(url);
    // Images 8, 6, 4, 2 (1-based): slices 7, 5, 3, 1.
    client.begin('part', uid, { start: 8, end: 2, delta: -2 });
    client.send({ messageType: 'SET_PRIORITY', transferId: 'part', target: 3, priority: 1 });
    await client.barrier();
    held.release();
    await client.untilImages('part', 4);
    await client.barrier();
    expect(client.indices('part')).toEqual([3, 0, 1, 2]);
    expectTransfer(client, 'part', [7, 5, 3, 1]);
  });

  it('two transfers on one socket take turns, one image each', async () => {
    const a = '1.2.826.0.1.3680043.8.498.70.7';
    const b = '1.2.826.0.1.3680043.8.498.70.8';
    const source = memoryOf(b, sliceFiles(b, { value: (x, y, k) => -signedValue(x, y, k) }), memoryOf(a, sliceFiles(a)));
    const { s, url } = await serve(source);
    await Promise.all([s.volumes.get(a), s.volumes.get(b)]);
    const client = await Client.connect(url);
    client.begin('A', a);
    client.begin('B', b, { start: 1, end: NZ, delta: 1 });
    await client.untilImages('A', NZ);
    await client.untilImages('B', NZ);
    const order = client.messages.map((m) => m.header.transferId as string);
    // Once both are under way, neither gets two turns in a row until one is done.
    const firstB = order.indexOf('B');
    const lastOfFirstDone = Math.min(order.lastIndexOf('A'), order.lastIndexOf('B'));
    expect(firstB).toBeGreaterThan(0);
    for (let i = firstB; i < lastOfFirstDone; i++) expect(order[i], `message ${i}`).not.toBe(order[i + 1]);
    expectTransfer(client, 'A', range(NZ));
    expectTransfer(client, 'B', range(NZ), { value: (x, y, k) => -signedValue(x, y, k) });
  });

  it('a client that stops reading: the server writes one image at a time and keeps at most one more ready', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.9';
    const big = { nx: 512, ny: 512, nz: 48, value: (x: number, y: number, k: number) => ((x * 7 + y * 13 + k * 101) % 4000) - 1000 };
    const imageBytes = big.nx * big.ny * 2;
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid, big)));
    await s.volumes.get(uid);
    const client = await Client.connect(url);
    const socket = (client.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    client.begin('slow', uid);
    // The kernel's buffers fill up (a few MB; the volume is 24 MB): the last image stays in the server's socket.
    await poll(() => {
      const st = s.app.volumeSockets.stats()[0];
      return st !== undefined && st.writing > 0 && st.bufferedAmount > 0;
    });
    const stalled = s.app.volumeSockets.stats()[0];
    expect(stalled.imagesSent).toBeLessThan(big.nz);
    expect(stalled.bufferedAmount).toBeLessThanOrEqual(imageBytes + 100);
    expect(stalled.writing).toBe(1);
    socket.resume();
    await client.untilImages('slow', big.nz);
    expectTransfer(client, 'slow', range(big.nz), big);
    // Never more than one image in the server's socket buffer, from the first image to the last.
    expect(s.app.volumeSockets.stats()[0].maxBufferedAmount).toBeLessThanOrEqual(imageBytes + 100);
  });

  it('malformed frames close that socket with a code and a reason; the server goes on serving the others', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.10';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)), { wsMaxMessageBytes: 1024 });
    const survivor = await Client.connect(url);
    const cases: { label: string; send: (ws: WebSocket) => void; code: number; reason: RegExp }[] = [
      { label: 'a text frame', send: (ws) => ws.send('{"messageType":"ABORT_TRANSFER","transferId":"x"}\n'), code: 1003, reason: /text frames/ },
      { label: 'no 0x0A', send: (ws) => ws.send(Buffer.from('{"messageType":"ABORT_TRANSFER","transferId":"x"}')), code: 1007, reason: /0x0A/ },
      { label: 'bad JSON', send: (ws) => ws.send(Buffer.from('{"messageType":\n')), code: 1007, reason: /not valid JSON/ },
      { label: 'not UTF-8', send: (ws) => ws.send(Buffer.from([0x22, 0xff, 0xfe, 0x22, 0x0a])), code: 1007, reason: /not UTF-8/ },
      { label: 'not an object', send: (ws) => ws.send(Buffer.from('[1,2]\n')), code: 1007, reason: /not an object/ },
      {
        label: 'an unknown messageType',
        send: (ws) => ws.send(Buffer.from('{"messageType":"DELETE_EVERYTHING","transferId":"x"}\n')),
        code: 1008,
        reason: /unknown messageType \("DELETE_EVERYTHING"\)/,
      },
      { label: 'no transferId', send: (ws) => ws.send(Buffer.from('{"messageType":"PAUSE_TRANSFER"}\n')), code: 1008, reason: /transferId/ },
      {
        label: 'a bad priority',
        send: (ws) => ws.send(Buffer.from('{"messageType":"SET_PRIORITY","transferId":"x","target":[1,"2"],"priority":1}\n')),
        code: 1008,
        reason: /target/,
      },
      {
        label: 'an oversized message',
        send: (ws) =>
          ws.send(Buffer.concat([Buffer.from(`{"messageType":"ABORT_TRANSFER","transferId":"${'x'.repeat(2000)}"}`), Buffer.from([0x0a])])),
        code: 1009,
        reason: /larger than wsMaxMessageBytes/,
      },
    ];
    for (const c of cases) {
      const client = await Client.connect(url);
      c.send(client.ws);
      const closed = await client.untilClosed();
      expect(closed.code, c.label).toBe(c.code);
      expect(closed.reason, c.label).toMatch(c.reason);
    }
    await poll(() => s.app.volumeSockets.count() === 1);
    survivor.begin('ok', uid);
    await survivor.untilImages('ok', NZ);
    expectTransfer(survivor, 'ok', range(NZ));
    expect(survivor.closed).toBeNull();
  });

  it('TRANSFER_ERROR: unknown series 404, bad UID or descriptor 400, a transferId in use 400, too many transfers 429', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.11';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { url } = await serve(held, { wsMaxTransfersPerSocket: 2 });
    const client = await Client.connect(url);
    client.begin('missing', '1.2.3.4.5');
    expect(await client.untilError('missing')).toEqual({
      messageType: 'TRANSFER_ERROR',
      transferId: 'missing',
      status: 404,
      message: expect.stringMatching(/1\.2\.3\.4\.5 is not found/),
    });
    client.begin('bad uid', 'not-a-uid');
    expect(await client.untilError('bad uid')).toMatchObject({ status: 400, message: expect.stringMatching(/DICOM UID/) });
    client.begin('bad shape', uid, { start: 1, end: 2 });
    expect(await client.untilError('bad shape')).toMatchObject({ status: 400, message: expect.stringMatching(/descriptor is invalid/) });
    client.begin('bad range', uid, { start: 0, end: 3, delta: 1 });
    expect(await client.untilError('bad range')).toMatchObject({ status: 400, message: expect.stringMatching(/between 1 and 8/) });
    client.begin('bad step', uid, { start: 1, end: 4, delta: 2 });
    expect(await client.untilError('bad step')).toMatchObject({ status: 400, message: expect.stringMatching(/whole number/) });
    // Two transfers waiting for held slices: a third is refused, and so is a transferId in use.
    client.begin('one', uid);
    client.begin('two', uid);
    client.begin('three', uid);
    expect(await client.untilError('three')).toMatchObject({ status: 429, message: expect.stringMatching(/at most 2/) });
    client.begin('one', uid);
    expect(await client.untilError('one')).toMatchObject({ status: 400, message: expect.stringMatching(/already in progress/) });
    held.release();
    await client.untilImages('one', NZ);
    await client.untilImages('two', NZ);
    expectTransfer(client, 'one', range(NZ));
    expect(client.errors('two')).toEqual([]);
    expect(client.closed).toBeNull();
  });

  it('TRANSFER_ERROR 422 for a series that fails to decode mid-transfer; the transfer ends, the socket goes on', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.12';
    const held = new HeldSeries(uid, sliceFiles(uid));
    held.breakInstance(name(3), new Error('input/output error'));
    const { s, url } = await serve(held, { loadConcurrency: 1 });
    held.release(name(0), name(1), name(2));
    const client = await Client.connect(url);
    client.begin('t', uid);
    await client.untilImages('t', 3);
    held.release(name(3));
    expect(await client.untilError('t')).toMatchObject({ status: 422, message: expect.stringMatching(/slice 3: input\/output error/) });
    expect(client.indices('t')).toEqual([0, 1, 2]);
    await client.barrier();
    expect(s.app.volumeSockets.stats()[0].transfers).toBe(0);
    // The disk recovers: the same socket loads the series again.
    held.breakInstance(name(3), null);
    held.release();
    client.begin('t', uid);
    await client.untilImages('t', 3 + NZ);
    expect(
      client
        .indices('t')
        .slice(3)
        .sort((x, y) => x - y),
    ).toEqual(range(NZ));
  });

  it('authentication: an upgrade without a token is refused 401; a token for another series gets TRANSFER_ERROR 401; a valid one works', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.13';
    const other = '1.2.826.0.1.3680043.8.498.70.14';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)), { auth: true, tokenSecret: SECRET });
    const refused = await Client.refused(url);
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer realm="CircusRS"');
    expect(refused.body).toEqual({ status: 'ng', message: expect.stringMatching(/token is required/) });
    const tokens = s.app.deps.tokens!;
    const forOther = await Client.connect(`${url}?token=${tokens.issue(other).token}`);
    forOther.begin('t', uid);
    expect(await forOther.untilError('t')).toMatchObject({ status: 401, message: expect.stringMatching(/another series/) });
    const garbage = await Client.connect(`${url}?token=not.a-token`);
    garbage.begin('t', uid);
    expect(await garbage.untilError('t')).toMatchObject({ status: 401 });
    const valid = await Client.connect(`${url}?token=${tokens.issue(uid).token}`);
    valid.begin('t', uid);
    await valid.untilImages('t', NZ);
    expectTransfer(valid, 't', range(NZ));
    // Series-bound: the same socket cannot fetch another series.
    valid.begin('u', other);
    expect(await valid.untilError('u')).toMatchObject({ status: 401 });
    // Clients that can set headers may send the token as a Bearer header instead.
    const bearer = await Client.connect(url, { Authorization: `Bearer ${tokens.issue(uid).token}` });
    bearer.begin('t', uid);
    await bearer.untilImages('t', NZ);
    expect((await Client.refused(url, { Authorization: 'Basic abc' })).status).toBe(401);
  });

  it('upgrades: other paths 404, the base path, sockets per address 429 until one closes', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.15';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)), { basePath: '/rs', wsMaxSocketsPerAddress: 2 });
    expect(url).toMatch(/\/rs\/ws\/volume$/);
    const root = url.replace('/rs/ws/volume', '/ws/volume');
    expect(await Client.refused(root)).toMatchObject({ status: 404, body: { status: 'ng' } });
    expect((await Client.refused(url.replace('/volume', '/other'))).status).toBe(404);
    const first = await Client.connect(url);
    const second = await Client.connect(`${url}/`);
    expect(await Client.refused(url)).toMatchObject({
      status: 429,
      body: { message: expect.stringMatching(/too many sockets from .* \(at most 2\)/) },
    });
    first.ws.close();
    await poll(() => s.app.volumeSockets.count() === 1);
    const third = await Client.connect(url);
    third.begin('t', uid);
    await third.untilImages('t', NZ);
    expectTransfer(third, 't', range(NZ));
    expect(second.closed).toBeNull();
  });

  it('behind a trusted proxy, sockets are counted per client address X-Forwarded-For gives', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.18';
    const { url } = await serve(memoryOf(uid, sliceFiles(uid)), { trustProxy: '127.0.0.1', wsMaxSocketsPerAddress: 1 });
    const forwarded = (client: string) => ({ 'X-Forwarded-For': `${client}, 127.0.0.1` });
    await Client.connect(url, forwarded('203.0.113.1'));
    await Client.connect(url, forwarded('203.0.113.2'));
    expect(await Client.refused(url, forwarded('203.0.113.1'))).toMatchObject({
      status: 429,
      body: { message: expect.stringMatching(/from 203\.0\.113\.1 /) },
    });
  });

  it('with corsOrigin set, an upgrade from another origin is refused 403; that origin and clients sending none are served; /status counts sockets', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.19';
    const { base, url } = await serve(memoryOf(uid, sliceFiles(uid)), { corsOrigin: 'https://viewer.example' });
    expect(await Client.refused(url, { Origin: 'https://elsewhere.example' })).toMatchObject({
      status: 403,
      body: { status: 'ng', message: 'origin https://elsewhere.example is not allowed (corsOrigin)' },
    });
    const allowed = await Client.connect(url, { Origin: 'https://viewer.example' });
    allowed.begin('t', uid);
    await allowed.untilImages('t', NZ);
    expectTransfer(allowed, 't', range(NZ));
    await Client.connect(url);
    const status = (await (await fetch(`${base}/status`)).json()) as { volumeSockets: unknown };
    expect(status.volumeSockets).toEqual({ sockets: 2, transfers: 0, imagesSent: NZ });
  });

  it('an idle socket is closed (1000)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.16';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)), { wsIdleTimeoutMs: 1000 });
    const idle = await Client.connect(url);
    expect(await idle.untilClosed()).toEqual({ code: 1000, reason: 'idle for 1 s' });
    await poll(() => s.app.volumeSockets.count() === 0);
  });

  it('closing the server closes its sockets (1001)', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.17';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)));
    const open = await Client.connect(url);
    open.begin('t', uid);
    await open.untilImages('t', NZ);
    servers.splice(servers.indexOf(s), 1);
    await s.close();
    expect(await open.untilClosed()).toEqual({ code: 1001, reason: 'the server is shutting down' });
  });
});

describe('WebSocket /ws/volume: what one socket may cost, and other requests carrying Upgrade', () => {
  it('a stack series (mixed orientations) streams its images in InstanceNumber order, the bytes of GET /series/:sid/volume', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.20';
    const { url, base } = await serve(memoryOf(uid, stackFiles(uid)));
    const client = await Client.connect(url);
    client.begin('stack', uid);
    await client.untilImages('stack', STACK_ORDER.length);
    expectTransfer(client, 'stack', STACK_ORDER);
    const whole = Buffer.from(await (await fetch(`${base}/series/${uid}/volume`)).arrayBuffer());
    const ordered = [...client.images('stack')].sort((a, b) => (a.header.imageIndex as number) - (b.header.imageIndex as number));
    expect(Buffer.concat(ordered.map((m) => m.payload)).equals(whole)).toBe(true);
    // A partial volume of it: images 5, 3, 1 (1-based).
    client.begin('part', uid, { start: 5, end: 1, delta: -2 });
    await client.untilImages('part', 3);
    expectTransfer(client, 'part', [STACK_ORDER[4], STACK_ORDER[2], STACK_ORDER[0]]);
  });

  it('SET_PRIORITY sent while the series is being opened applies once its image count is known', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.21';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const gated = new GatedSource(held);
    const { s, url } = await serve(gated);
    const client = await Client.connect(url);
    client.begin('t', uid);
    await gated.whenFound();
    client.send({ messageType: 'SET_PRIORITY', transferId: 't', target: [5, 3], priority: 2 });
    client.send({ messageType: 'SET_PRIORITY', transferId: 't', target: 6, priority: 1 });
    client.send({ messageType: 'SET_PRIORITY', transferId: 't', target: [3, 42], priority: 1 }); // 3 lowered, set last
    await client.barrier();
    // Handled while the header pass waits.
    expect(s.app.volumeSockets.stats()[0]).toMatchObject({ transfers: 1, opening: 1, messages: 4 });
    gated.release();
    held.release();
    await client.untilImages('t', NZ);
    expect(client.indices('t')).toEqual([5, 3, 6, 0, 1, 2, 4, 7]);
    expectTransfer(client, 't', range(NZ));
  });

  it('SET_PRIORITY indices kept while series are being opened are bounded (1008 beyond); once the count is known they apply directly', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.22';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const gated = new GatedSource(held);
    const { s, url } = await serve(gated);
    const client = await Client.connect(url);
    client.begin('t', uid);
    await gated.whenFound();
    // 30000 indices a message (60 KB, under wsMaxMessageBytes): two are kept, a third goes over 65536.
    const many = { messageType: 'SET_PRIORITY', transferId: 't', target: new Array(30000).fill(1), priority: 1 };
    client.send(many);
    client.send(many);
    await client.barrier();
    expect(client.closed).toBeNull();
    client.send(many);
    await Promise.race([client.untilClosed(), client.barrier()]);
    expect(client.closed).toEqual({ code: 1008, reason: 'SET_PRIORITY: more than 65536 image indices for transfers whose series is being opened' });
    // After the header pass (the pixel data still held), the same messages go to the transfer's queue.
    gated.release();
    const other = await Client.connect(url);
    other.begin('u', uid);
    await poll(() => s.app.volumeSockets.count() === 1 && s.app.volumeSockets.stats()[0].opening === 0);
    for (let i = 0; i < 4; i++) other.send({ ...many, transferId: 'u', target: new Array(30000).fill(NZ - 1 - (i % 2)) });
    await other.barrier();
    held.release();
    await other.untilImages('u', NZ);
    expect(other.indices('u').slice(0, 2)).toEqual([NZ - 2, NZ - 1]);
    expect(other.closed).toBeNull();
  });

  it('ABORT_TRANSFER during the header pass frees the transfer place only when the header pass is over', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.23';
    const gated = new GatedSource(memoryOf(uid, sliceFiles(uid)));
    const { s, url } = await serve(gated, { wsMaxTransfersPerSocket: 2 });
    const client = await Client.connect(url);
    for (const id of ['a', 'b']) {
      client.begin(id, uid);
      client.send({ messageType: 'ABORT_TRANSFER', transferId: id });
    }
    client.begin('c', uid);
    await client.barrier();
    expect(client.errors()).toEqual([
      { messageType: 'TRANSFER_ERROR', transferId: 'c', status: 429, message: 'too many transfers on this socket (at most 2 at once)' },
    ]);
    expect(s.app.volumeSockets.stats()[0]).toMatchObject({ transfers: 0, opening: 2 });
    gated.release();
    await poll(() => s.app.volumeSockets.stats()[0].opening === 0);
    client.begin('d', uid);
    client.begin('e', uid);
    await client.untilImages('d', NZ);
    await client.untilImages('e', NZ);
    expectTransfer(client, 'd', range(NZ));
    // Nothing of the aborted transfers, and no other error.
    expect(client.indices('a')).toEqual([]);
    expect(client.indices('b')).toEqual([]);
    expect(client.errors()).toHaveLength(1);
  });

  it('a paused transfer lets its load go: RESUME_TRANSFER opens the series again, and no image is sent twice', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.24';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const counting = new GatedSource(held, { held: false });
    const { s, url } = await serve(counting);
    held.release(name(0), name(1));
    const client = await Client.connect(url);
    client.begin('p', uid);
    client.send({ messageType: 'SET_PRIORITY', transferId: 'p', target: [0, 1, 7], priority: 1 });
    await client.untilImages('p', 2);
    client.send({ messageType: 'PAUSE_TRANSFER', transferId: 'p' });
    await client.barrier();
    held.release();
    await (await s.volumes.open(uid)).complete;
    await poll(() => s.volumes.region.peek(uid) !== undefined);
    expect(counting.finds).toBe(1);
    // The cache drops the volume while the transfer is paused.
    s.volumes.region.delete(uid);
    expect(s.volumes.region.peek(uid)).toBeUndefined();
    client.send({ messageType: 'RESUME_TRANSFER', transferId: 'p' });
    await client.untilImages('p', NZ);
    // Opened again through the volume service (a new load), the priorities and sent images kept.
    expect(counting.finds).toBe(2);
    expect(client.indices('p')).toEqual([0, 1, 7, 2, 3, 4, 5, 6]);
    expectTransfer(client, 'p', range(NZ));
    await client.barrier();
    expect(client.images('p')).toHaveLength(NZ);
    expect(s.app.volumeSockets.stats()[0]).toMatchObject({ transfers: 0, opening: 0 });
  });

  it('a client that sends but does not read: the socket is no longer read while its answers are unsent', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.25';
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid)));
    const client = await Client.connect(url);
    const socket = (client.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    // 60000 bad BEGIN_TRANSFERs with the longest transferId: each answered by a TRANSFER_ERROR of
    // about 400 bytes, 24 MB in all, far more than the kernel's buffers take.
    const N = 60000;
    const transferId = 'x'.repeat(256);
    const frame = Buffer.from(`${JSON.stringify({ messageType: 'BEGIN_TRANSFER', transferId, seriesUid: 'not-a-uid' })}\n`);
    for (let i = 0; i < N; i++) client.ws.send(frame);
    const bound = 256 * 1024;
    // Either reading stops, or the answers pile up in the server.
    await poll(() => {
      const st = s.app.volumeSockets.stats()[0];
      return st !== undefined && (st.reading === false || st.bufferedAmount > bound);
    });
    const stalled = s.app.volumeSockets.stats()[0];
    expect(stalled.bufferedAmount).toBeLessThanOrEqual(bound);
    expect(stalled.bufferedAmount).toBeGreaterThan(0);
    expect(stalled.messages).toBeLessThan(N);
    expect(stalled.maxBufferedAmount).toBeLessThanOrEqual(bound);
    // The client reads again: every message is answered, the server never having held more.
    socket.resume();
    await client.until(() => client.messages.length >= N);
    await client.barrier();
    expect(client.messages).toHaveLength(N);
    expect(client.messages.every((m) => m.header.messageType === 'TRANSFER_ERROR' && m.header.status === 400)).toBe(true);
    expect(s.app.volumeSockets.stats()[0]).toMatchObject({ messages: N, reading: true });
    expect(s.app.volumeSockets.stats()[0].maxBufferedAmount).toBeLessThanOrEqual(bound);
    // And the socket still serves.
    client.begin('ok', uid);
    await client.untilImages('ok', NZ);
    expectTransfer(client, 'ok', range(NZ));
  });

  it('a client that stops reading is cut off after wsIdleTimeoutMs, however often it sends messages', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.26';
    const big = { nx: 512, ny: 512, nz: 48, value: (x: number, y: number, k: number) => ((x * 7 + y * 13 + k * 101) % 4000) - 1000 };
    const { s, url } = await serve(memoryOf(uid, sliceFiles(uid, big)), { wsIdleTimeoutMs: 1000 });
    await s.volumes.get(uid);
    const client = await Client.connect(url);
    (client.ws as unknown as { _socket: Socket })._socket.pause();
    client.begin('slow', uid);
    // Stalled (or, on a busy machine, cut off already).
    await poll(() => {
      const st = s.app.volumeSockets.stats()[0];
      return st === undefined || (st.writing > 0 && st.bufferedAmount > 0);
    });
    const stalledAt = Date.now();
    // A message every 200 ms (each one used to count as activity).
    const keepAlive = setInterval(() => client.send({ messageType: 'ABORT_TRANSFER', transferId: 'nothing' }), 200);
    try {
      await poll(() => s.app.volumeSockets.count() === 0);
    } finally {
      clearInterval(keepAlive);
    }
    expect(Date.now() - stalledAt).toBeLessThan(10_000);
    expect(s.app.volumeSockets.totals().imagesSent).toBeLessThan(big.nz);
  });

  it('a socket closed while an image is pending: the request is withdrawn, nothing is written after, no error', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.27';
    const held = new HeldSeries(uid, sliceFiles(uid));
    const { s, url } = await serve(held);
    held.release(name(0));
    const client = await Client.connect(url);
    client.begin('t', uid);
    await client.untilImages('t', 1);
    const load = (await s.volumes.open(uid)) as ProgressiveVolume;
    // Image 1 is asked of the load and waits for its slice.
    await poll(() => load.waiting === 1);
    const logged = [vi.spyOn(s.app.log, 'error'), vi.spyOn(s.app.log, 'warn')];
    client.ws.close();
    await client.untilClosed();
    await poll(() => s.app.volumeSockets.count() === 0);
    expect(load.waiting).toBe(0);
    held.release();
    await load.complete;
    await settle();
    expect(s.app.volumeSockets.totals()).toMatchObject({ sockets: 1, transfers: 1, imagesSent: 1 });
    expect(client.indices('t')).toEqual([0]);
    expect(client.errors()).toEqual([]);
    for (const spy of logged) expect(spy).not.toHaveBeenCalled();
  });

  it('a request carrying another Upgrade (h2c) is answered as an ordinary one: keep-alive, pipelining and bodies intact', async () => {
    const uid = '1.2.826.0.1.3680043.8.498.70.28';
    const { s, url, base } = await serve(memoryOf(uid, sliceFiles(uid)));
    const { port } = s.app.server.address() as { port: number };
    const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
    const status = `GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n${h2c}\r\n`;
    const metadata = `GET /metadata?series=${uid} HTTP/1.1\r\nHost: 127.0.0.1\r\n${h2c}\r\n`;
    const raw = await RawConnection.open(port);
    raws.push(raw);
    // One request, then another on the same connection (kept alive).
    raw.write(status);
    await raw.untilResponses(1);
    raw.write(metadata);
    await raw.untilResponses(2);
    // Two pipelined in one write (the second arrives with the first's head), then a POST with a body, then one more.
    raw.write(status + metadata);
    await raw.untilResponses(4);
    const body = 'GET /nothing HTTP/1.1\r\n';
    raw.write(`POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n${h2c}\r\n${body}${status}`);
    await raw.untilResponses(6);
    const [first, second, third, fourth, post, last] = raw.responses;
    for (const r of [first, third, last]) {
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).status).toBe('Running');
    }
    for (const r of [second, fourth]) {
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).voxelCount).toEqual([NX, NY, NZ]);
    }
    // The body was read as the body, not as a request.
    expect(post.status).toBe(405);
    expect(raw.ended).toBe(false);
    // Connection: Upgrade, close: answered, then the server closes the connection.
    raw.write(`GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n`);
    await raw.untilResponses(7);
    expect(raw.responses[6].status).toBe(200);
    await raw.until(() => raw.ended);
    // A WebSocket upgrade is still the socket's: 404 anywhere but /ws/volume.
    expect(await Client.refused(url.replace('/ws/volume', '/status'))).toMatchObject({ status: 404, body: { status: 'ng' } });
    const client = await Client.connect(url);
    client.begin('t', uid);
    await client.untilImages('t', NZ);
    expect((await fetch(`${base}/status`)).status).toBe(200);
  });
});
