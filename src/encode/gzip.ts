/**
 * gzip (RFC 1952) of a stream of buffers, compressed in parallel on the libuv thread pool.
 *
 * The input is cut into pieces of about `pieceBytes`; each piece is deflated on its own as raw
 * deflate ended with a sync flush (byte-aligned, not final), the last one with a final empty
 * block, and the pieces are concatenated in order into one deflate stream inside one gzip
 * member. This is what pigz does: the result is an ordinary gzip stream any client inflates, a
 * little larger than a single-threaded one because pieces share no dictionary. The CRC-32 of
 * the whole input is computed as it passes (zlib.crc32). At most `parallel` pieces are in flight.
 */
import { constants, crc32, deflateRaw } from 'node:zlib';

export interface GzipOptions {
  level?: number;
  strategy?: number;
  pieceBytes?: number;
  parallel?: number;
}

/** zlib strategies by the names the configuration uses. */
export const GZIP_STRATEGIES = {
  default: constants.Z_DEFAULT_STRATEGY,
  filtered: constants.Z_FILTERED,
  rle: constants.Z_RLE,
  huffman: constants.Z_HUFFMAN_ONLY,
} as const;
export type GzipStrategyName = keyof typeof GZIP_STRATEGIES;

/** The zlib strategy a configured name stands for (the default strategy for an unknown name). */
export const strategyOf = (name: string | undefined): number => GZIP_STRATEGIES[name as GzipStrategyName] ?? GZIP_STRATEGIES.default;

export const DEFAULT_GZIP_OPTIONS = { level: 1, strategy: constants.Z_DEFAULT_STRATEGY, pieceBytes: 1 << 20, parallel: 4 };

function deflatePiece(data: Buffer, last: boolean, o: Required<GzipOptions>): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflateRaw(data, { level: o.level, strategy: o.strategy, finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH }, (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  );
}

/** Yields the gzip stream of everything `input` yields. */
export async function* gzipParallel(input: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options: GzipOptions = {}): AsyncGenerator<Buffer> {
  const o = { ...DEFAULT_GZIP_OPTIONS, ...options };
  // Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
  yield Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  let crc = 0;
  let size = 0;
  const inFlight: Promise<Buffer>[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const launch = (last: boolean): void => {
    const data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    const p = deflatePiece(data, last, o);
    p.catch(() => {}); // awaited below; avoids an unhandled rejection while earlier pieces drain
    inFlight.push(p);
  };
  for await (const chunk of input) {
    crc = crc32(chunk, crc);
    size += chunk.length;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= o.pieceBytes) {
      launch(false);
      while (inFlight.length >= o.parallel) yield await inFlight.shift()!;
    }
  }
  launch(true);
  while (inFlight.length > 0) yield await inFlight.shift()!;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size >>> 0, 4);
  yield trailer;
}
