/**
 * Instances that are files. Reads use the callback API of node:fs through small promises,
 * which costs less per call than FileHandle: a series is hundreds of files, each opened for
 * its header and again for its pixel data. A decoding worker is given the path and reads the
 * file itself, so compressed bytes never cross the main thread.
 */
import { close, open, read, stat } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import type { SliceHeader } from '../dicom/sliceHeader.js';
import type { Instance, WorkerInput } from '../dicom/instance.js';

/**
 * What tells one state of a file from another without reading it: size, mtime, ctime and inode.
 * Size and mtime alone miss a file replaced by one of the same size with its mtime kept (`cp -p`,
 * `rsync -a`, an archive unpacked); ctime cannot be set by the writer and changes with every
 * write, rename or replacement, and a replaced file has a new inode.
 */
export interface FileStamp {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
}

export const stampOf = (st: FileStamp): FileStamp => ({ size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino });

export const sameStamp = (a: FileStamp, b: FileStamp): boolean =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;

/** A header read before (by the index), with the stamp of the file it was read from. */
export interface KnownHeader extends FileStamp {
  readonly header: SliceHeader;
}

const openP = promisify(open);
const closeP = promisify(close);
const statP = promisify(stat);
const readP = (fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));

export class FileInstance implements Instance {
  constructor(
    readonly path: string,
    readonly name: string = basename(path),
    private readonly known?: KnownHeader,
  ) {}

  /** The header read before, while the file's stamp is the one it was read at. */
  async knownHeader(): Promise<SliceHeader | undefined> {
    if (!this.known) return undefined;
    try {
      const st = await statP(this.path);
      return sameStamp(st, this.known) ? this.known.header : undefined;
    } catch {
      return undefined;
    }
  }

  async read(target: Buffer, position: number, targetOffset = 0, length = target.length - targetOffset): Promise<number> {
    const fd = await openP(this.path, 'r');
    try {
      let done = 0;
      while (done < length) {
        const n = await readP(fd, target, targetOffset + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    } finally {
      await closeP(fd);
    }
  }

  async size(): Promise<number> {
    return (await statP(this.path)).size;
  }

  bytes(): Promise<Buffer> {
    return readFile(this.path);
  }

  async forWorker(): Promise<WorkerInput> {
    return { kind: 'file', path: this.path };
  }
}

/** Files as instances, each named by its base name unless `name` says otherwise. */
export const fileInstances = (paths: readonly string[], name?: (path: string) => string): FileInstance[] =>
  paths.map((p) => new FileInstance(p, name ? name(p) : basename(p)));
