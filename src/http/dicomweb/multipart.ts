/**
 * multipart/related bodies (RFC 2387, PS3.18 8.7.1.2) as streams: parts are produced one at a
 * time as the client reads, so a series retrieve of a thousand instances holds only the few
 * parts read ahead, never the whole body.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export interface Part {
  readonly contentType: string;
  readonly bytes: Uint8Array;
  /** Content-Location of the part (the URL of the resource it is), when given. */
  readonly location?: string;
}

/** A boundary that no part's bytes can be mistaken for: random, 32 hex digits. */
export const newBoundary = (): string => `circus-rs-${randomBytes(16).toString('hex')}`;

/** The Content-Type of a multipart/related body of parts of `type`. */
export const multipartType = (type: string, boundary: string, extra = ''): string =>
  `multipart/related; type="${type}"${extra}; boundary=${boundary}`;

/**
 * Parts produced by `produce` `ahead` at a time (each started before the one before it is sent,
 * so reading files overlaps sending), in order.
 */
export async function* readAhead<T>(items: readonly T[], ahead: number, produce: (item: T) => Promise<Part>): AsyncGenerator<Part> {
  const pending: Promise<Part>[] = [];
  let next = 0;
  while (next < items.length && pending.length < ahead) pending.push(produce(items[next++]));
  while (pending.length > 0) {
    const part = await pending.shift()!;
    if (next < items.length) pending.push(produce(items[next++]));
    yield part;
  }
}

/**
 * The body: each part with its headers between boundaries, then the closing boundary. The stream
 * pulls the next part only when the client has taken the ones before (Readable backpressure); a
 * part that fails ends the stream with the error (the client sees the body cut short).
 */
export function multipartBody(parts: AsyncIterable<Part>, boundary: string): Readable {
  async function* chunks(): AsyncGenerator<Buffer | Uint8Array> {
    for await (const part of parts) {
      const location = part.location ? `Content-Location: ${part.location}\r\n` : '';
      yield Buffer.from(`--${boundary}\r\nContent-Type: ${part.contentType}\r\n${location}Content-Length: ${part.bytes.length}\r\n\r\n`, 'latin1');
      yield part.bytes;
      yield Buffer.from('\r\n', 'latin1');
    }
    yield Buffer.from(`--${boundary}--\r\n`, 'latin1');
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
}
