/**
 * What the reader reads: one DICOM instance as a provider of bytes, wherever they live (a
 * file, memory, a PACS). The file reader, the volume loader and the decoding workers see only
 * this; the sources implement it. Nothing here sees a file path unless an instance
 * chooses to hand one to a worker thread as the cheapest way to reach its bytes.
 */

import { readFile } from 'node:fs/promises';
import type { SliceHeader } from './sliceHeader.js';

/** How a worker thread reaches an instance's bytes: a file it reads itself, or the bytes. */
export type WorkerInput = { kind: 'file'; path: string } | { kind: 'bytes'; bytes: Uint8Array };

/** The bytes a worker was given, or read from the file it was given (the worker side of WorkerInput). */
export const workerInputBytes = async (input: WorkerInput): Promise<Buffer> =>
  input.kind === 'file' ? readFile(input.path) : Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);

/**
 * One DICOM instance (Part 10 file or bare dataset) as bytes. An instance whose bytes are
 * remote (a PACS) rejects its reads with a CircusError BAD_GATEWAY or GATEWAY_TIMEOUT
 * (`isSourceFailure`) when it cannot get them: the load fails with that error.
 */
export interface Instance {
  /** How the instance is named in messages (a path below the data directory, a name given in memory). */
  readonly name: string;
  /**
   * Reads up to `target.length` bytes starting at byte `position` of the instance into
   * `target` (from `targetOffset`); resolves to the number of bytes read, fewer only at its end.
   */
  read(target: Buffer, position: number, targetOffset?: number, length?: number): Promise<number>;
  /** The size of the instance in bytes. */
  size(): Promise<number>;
  /** Every byte of the instance. */
  bytes(): Promise<Buffer>;
  /** What a decoding worker is given to read the same bytes. */
  forWorker(): Promise<WorkerInput>;
  /**
   * The instance's slice header when the source already knows it (an index read it before and
   * the instance has not changed since); undefined when it must be read.
   */
  knownHeader?(): Promise<SliceHeader | undefined>;
}
