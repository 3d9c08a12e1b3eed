/**
 * Backpressure of a /ws/volume socket (src/http/ws/socketWriter.ts) against a stand-in for the
 * ws socket whose buffered bytes and send callbacks the test sets: what is being written, when
 * reading stops and starts again, images left out of that count, and the cut beyond 1 MiB.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { SocketWriter } from '../src/http/ws/socketWriter.js';

/** A ws socket that keeps what it is sent, with its send callbacks, until the test writes it out. */
class FakeSocket extends EventEmitter {
  bufferedAmount = 0;
  paused = false;
  readonly sent: { bytes: number; fin: boolean; callback?: (err?: Error) => void }[] = [];

  send(data: Buffer, options: { fin: boolean }, callback?: (err?: Error) => void): void {
    this.bufferedAmount += data.length;
    this.sent.push({ bytes: data.length, fin: options.fin, callback });
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** Writes out the oldest message (its fragments), then calls its callback. */
  writeOut(err?: Error): void {
    for (;;) {
      const f = this.sent.shift()!;
      this.bufferedAmount -= f.bytes;
      if (f.fin) {
        f.callback?.(err);
        return;
      }
    }
  }
}

function writerOn(ws: FakeSocket): { writer: SocketWriter; events: string[]; socket: EventEmitter } {
  const events: string[] = [];
  const socket = new EventEmitter();
  const writer = new SocketWriter(ws as unknown as WebSocket, socket as unknown as Duplex, {
    written: () => events.push('written'),
    broken: () => events.push('broken'),
    overflow: () => events.push('overflow'),
  });
  return { writer, events, socket };
}

const KiB = 1024;

describe('socket writer', () => {
  it('counts a message as being written until its last fragment is written out', () => {
    const ws = new FakeSocket();
    const { writer, events } = writerOn(ws);
    writer.write(true, Buffer.alloc(60), Buffer.alloc(1000));
    expect(ws.sent.map((f) => [f.bytes, f.fin, f.callback !== undefined])).toEqual([
      [60, false, false],
      [1000, true, true],
    ]);
    writer.write(false, Buffer.alloc(80));
    expect(writer.writing).toBe(2);
    ws.writeOut();
    expect([writer.writing, events]).toEqual([1, ['written']]);
    ws.writeOut();
    expect([writer.writing, events]).toEqual([0, ['written', 'written']]);
    expect(writer.maxBufferedAmount).toBe(1140);
  });

  it('stops reading while more than 64 KiB of other messages are unsent, and reads again once they are written', () => {
    const ws = new FakeSocket();
    const { writer, socket } = writerOn(ws);
    writer.write(false, Buffer.alloc(64 * KiB));
    expect([writer.reading, ws.paused]).toEqual([true, false]);
    writer.write(false, Buffer.alloc(1));
    expect([writer.reading, ws.paused]).toEqual([false, true]);
    ws.writeOut();
    expect([writer.reading, ws.paused]).toEqual([true, false]);
    // Bytes written out without a callback of ours (a pong): the socket's drain lets reading go on.
    ws.bufferedAmount = 65 * KiB;
    ws.emit('ping');
    expect(writer.reading).toBe(false);
    ws.bufferedAmount = 0;
    socket.emit('drain');
    expect(writer.reading).toBe(true);
  });

  it('leaves the image being written out of that count', () => {
    const ws = new FakeSocket();
    const { writer } = writerOn(ws);
    writer.write(true, Buffer.alloc(100), Buffer.alloc(512 * KiB));
    writer.write(false, Buffer.alloc(64 * KiB));
    expect(writer.reading).toBe(true);
    writer.write(false, Buffer.alloc(100));
    expect(writer.reading).toBe(false);
  });

  it('asks for the cut beyond 1 MiB unsent, and writes nothing once stopped', () => {
    const ws = new FakeSocket();
    const { writer, events } = writerOn(ws);
    ws.bufferedAmount = 1024 * KiB;
    writer.flow();
    expect(events).toEqual([]);
    ws.bufferedAmount += 1;
    writer.flow();
    expect(events).toEqual(['overflow']);
    writer.stop();
    writer.write(false, Buffer.alloc(10));
    expect(ws.sent).toHaveLength(0);
  });

  it('reports a failed write as broken, not written', () => {
    const ws = new FakeSocket();
    const { writer, events } = writerOn(ws);
    writer.write(false, Buffer.alloc(10));
    ws.writeOut(new Error('closed'));
    expect([writer.writing, events]).toEqual([0, ['broken']]);
  });

  it('reads again for the close, whatever is unsent', () => {
    const ws = new FakeSocket();
    const { writer } = writerOn(ws);
    writer.write(false, Buffer.alloc(65 * KiB));
    expect(ws.paused).toBe(true);
    writer.stop();
    writer.readForClose();
    expect(ws.paused).toBe(false);
  });
});
