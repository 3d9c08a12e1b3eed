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

/** How far ahead parts are produced: at most `parts` of them, and (when `sizeOf` tells an item's size) at most `bytes` in all. */
export interface ReadAheadLimits<T> {
  parts: number;
  bytes?: number;
  sizeOf?: (item: T) => number;
}

/**
 * Parts produced by `produce` ahead of the one being sent (each started before the one before it
 * is sent, so reading files overlaps sending), in order. At least one is always under way; more
 * only while they fit the limits, so a few large instances are not all held at once.
 */
export async function* readAhead<T>(
  items: readonly T[],
  limits: number | ReadAheadLimits<T>,
  produce: (item: T) => Promise<Part>,
): AsyncGenerator<Part> {
  const { parts, bytes = Number.POSITIVE_INFINITY, sizeOf } = typeof limits === 'number' ? { parts: limits } : limits;
  const pending: { part: Promise<Part>; size: number }[] = [];
  let held = 0;
  let next = 0;
  const fill = (): void => {
    while (next < items.length && pending.length < parts) {
      const size = sizeOf ? sizeOf(items[next]) : 0;
      if (pending.length > 0 && held + size > bytes) return;
      const part = produce(items[next++]);
      // Observed now: one that fails after the stream has ended (the client left) is no unhandled rejection.
      part.catch(() => {});
      pending.push({ part, size });
      held += size;
    }
  };
  fill();
  while (pending.length > 0) {
    const head = pending.shift()!;
    // A part that fails is thrown when its turn comes; those after it are not waited for.
    const part = await head.part;
    held -= head.size;
    fill();
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
