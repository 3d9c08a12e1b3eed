/**
 * A series retrieve of 1,000 instances is a stream: instances are read as the client takes the
 * body, so a client that stops reading stops the reading of instances (bounded memory), and the
 * whole body, once taken, holds every instance as it is, in order.
 */
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import type { WorkerInput } from '../src/dicom/instance.js';
import { createServer, type Server } from '../src/server.js';
import { MemorySource } from '../src/sources/memorySource.js';
import type { SeriesInstances, SeriesSource, SourceInstance } from '../src/sources/source.js';
import { seriesFiles } from './fixtures/series.js';
import { readAhead } from '../src/http/dicomweb/multipart.js';

const UID = '1.2.826.0.1.3680043.10.1453.94.1';
const INSTANCES = 1000;

/** A source whose instances count the whole-instance reads (what a retrieve sends). */
class CountingSource implements SeriesSource {
  wholeReads = 0;
  constructor(private readonly inner: MemorySource) {}
  async find(uid: string): Promise<SeriesInstances | null> {
    const found = await this.inner.find(uid);
    if (!found) return null;
    const outer = this;
    return {
      instances: found.instances.map(
        (i): SourceInstance => ({
          name: i.name,
          read: (t, p, o, l) => i.read(t, p, o, l),
          size: () => i.size(),
          async bytes() {
            outer.wholeReads++;
            return i.bytes();
          },
          forWorker: (): Promise<WorkerInput> => i.forWorker(),
        }),
      ),
    };
  }
  seriesRecords() {
    return this.inner.seriesRecords();
  }
}

let server: Server;
let source: CountingSource;
let port: number;
let files: { name: string; bytes: Buffer }[];

beforeAll(async () => {
  files = seriesFiles({ uid: UID, columns: 128, rows: 128, slices: INSTANCES, value: (x, y, k) => (x * 3 + y * 5 + k) % 2000 });
  const memory = new MemorySource();
  for (const f of files) memory.addDicom(f.name, f.bytes);
  source = new CountingSource(memory);
  server = createServer(loadConfig({ flags: { dataDir: '/nonexistent' }, env: {} }), { source });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  port = (server.app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await server.close();
});

describe('a series retrieve of 1,000 instances', () => {
  it('reads instances only as fast as the client takes them, and sends every one as it is, in order', async () => {
    const total = files.reduce((n, f) => n + f.bytes.length, 0);
    const chunks: Buffer[] = [];
    let readWhilePaused = -1;
    await new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: `/dicom-web/studies/${UID}.0/series/${UID}`,
          headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
        },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', (c: Buffer) => {
            chunks.push(c);
            res.pause();
            // The client takes nothing for a while: the server must stop reading instances.
            setTimeout(() => {
              const before = source.wholeReads;
              setTimeout(() => {
                readWhilePaused = source.wholeReads;
                expect(source.wholeReads).toBe(before);
                res.on('data', (d: Buffer) => chunks.push(d));
                res.resume();
              }, 200);
            }, 300);
          });
          res.on('end', resolve);
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    // While the client read nothing, the server had read a few megabytes ahead at most (its
    // read-ahead, the stream's buffer and the sockets'), not the 34 MB of the series.
    expect(readWhilePaused).toBeGreaterThan(0);
    expect(readWhilePaused * files[0].bytes.length).toBeLessThan(12 * 1024 * 1024);
    expect(readWhilePaused).toBeLessThan(INSTANCES / 2);
    const body = Buffer.concat(chunks);
    expect(body.length).toBeGreaterThan(total);
    // Every part, in order (InstanceNumber order is writing order here), is the instance's bytes.
    let at = 0;
    for (const [k, f] of files.entries()) {
      const head = body.indexOf('\r\n\r\n', at);
      const length = Number(/Content-Length: (\d+)/.exec(body.toString('latin1', at, head))?.[1]);
      expect(length, `part ${k}`).toBe(f.bytes.length);
      if (!body.subarray(head + 4, head + 4 + length).equals(f.bytes)) throw new Error(`part ${k} is not instance ${k}`);
      at = head + 4 + length;
    }
    expect(body.toString('latin1', at).trim()).toMatch(/^--circus-rs-[0-9a-f]{32}--$/);
    expect(source.wholeReads).toBe(INSTANCES);
  });
});

describe('readAhead', () => {
  it('keeps at most `parts` parts and `bytes` bytes ahead of the one being sent (always one), in order', async () => {
    const sizes = [10, 10, 50, 10, 200, 10, 10, 10];
    // Sizes of the parts produced and not yet taken by the consumer, oldest first.
    const held: number[] = [];
    const ahead: { parts: number; bytes: number }[] = [];
    let started = 0;
    const produce = async (k: number) => {
      // A part is started once the one before it in line is awaited: that one is being sent,
      // the others are ahead of it.
      const before = started++ === 0 ? held : held.slice(1);
      ahead.push({ parts: before.length + 1, bytes: before.reduce((a, b) => a + b, 0) + sizes[k] });
      held.push(sizes[k]);
      await new Promise((r) => setTimeout(r, 1));
      return { contentType: 'x', bytes: new Uint8Array(sizes[k]) };
    };
    const got: number[] = [];
    for await (const part of readAhead(
      sizes.map((_, k) => k),
      { parts: 3, bytes: 60, sizeOf: (k) => sizes[k] },
      produce,
    )) {
      got.push(part.bytes.length);
      held.shift();
    }
    expect(got).toEqual(sizes);
    expect(Math.max(...ahead.map((x) => x.parts))).toBeLessThanOrEqual(3);
    // Over the budget only when alone: the 200-byte part.
    for (const x of ahead) if (x.bytes > 60) expect(x).toEqual({ parts: 1, bytes: 200 });
  });
});
