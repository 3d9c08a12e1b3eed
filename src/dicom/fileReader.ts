/**
 * Reading DICOM files from disk: headers from the first kilobytes only, and pixel data straight
 * into a caller-given buffer (no intermediate copy for uncompressed files).
 */
import { close, fstat, open, read } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { DicomParseError, PartialFileError, parseDicom } from './parser.js';
import { isDeflated, readSliceHeader, type SliceHeader } from './sliceHeader.js';
import { Tags } from './tags.js';

/** How much of a file is read first for its header; more is read only when the header is longer. */
const FIRST_READ = 16 * 1024;

export interface ReadLimits {
  /** Largest deflated dataset accepted once inflated, in bytes. */
  maxInflatedBytes: number;
}

export const DEFAULT_READ_LIMITS: ReadLimits = { maxInflatedBytes: 1 << 30 };

// The callback API with promisify costs less per call than FileHandle, which matters at
// hundreds of files per series.
const openP = promisify(open);
const closeP = promisify(close);
const fstatP = promisify(fstat);
const readP = (fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> =>
  new Promise((resolve, reject) => read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));

/**
 * Reads the header of one file (everything before the pixel data value).
 * Throws DicomParseError when the file is not DICOM or is truncated before its pixel data.
 */
export async function readHeader(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): Promise<SliceHeader> {
  const fd = await openP(path, 'r');
  try {
    let want = FIRST_READ;
    // The size is only asked for when the first read does not hold the whole header.
    let size = -1;
    for (;;) {
      const buf = Buffer.allocUnsafe(want);
      const bytesRead = await readP(fd, buf, 0, want, 0);
      if (bytesRead < want) size = bytesRead;
      const data = buf.subarray(0, bytesRead);
      try {
        return readSliceHeader(parseDicom(data, { untilPixelData: true, partial: bytesRead !== size, maxInflatedBytes: limits.maxInflatedBytes }));
      } catch (err) {
        if (!(err instanceof PartialFileError)) throw err;
        if (size < 0) size = (await fstatP(fd)).size;
        if (bytesRead >= size) throw new DicomParseError(`file is truncated (${bytesRead} bytes)`);
        want = Math.min(size, Math.max(err.needed + FIRST_READ, want * 2));
      }
    }
  } finally {
    await closeP(fd);
  }
}

/**
 * Reads `target.length` bytes of the native pixel data of a file into `target`, starting
 * `frameOffset` bytes into the pixel data value. Deflated files are inflated and copied.
 */
export async function readPixelBytes(
  path: string,
  header: SliceHeader,
  target: Buffer,
  frameOffset = 0,
  limits: ReadLimits = DEFAULT_READ_LIMITS,
): Promise<void> {
  const px = header.pixelData;
  if (!px || px.encapsulated) throw new DicomParseError('no native pixel data');
  if (frameOffset + target.length > px.length) {
    throw new DicomParseError(`pixel data holds ${px.length} bytes, ${frameOffset + target.length} are needed`);
  }
  if (isDeflated(header.transferSyntaxUid)) {
    const parsed = parseDicom(await readFile(path), { maxInflatedBytes: limits.maxInflatedBytes });
    const el = parsed.dataset.elements.get(Tags.PixelData);
    if (!el || el.length < frameOffset + target.length) throw new DicomParseError('pixel data is shorter than the image');
    parsed.dataset.buf.copy(target, 0, el.offset + frameOffset, el.offset + frameOffset + target.length);
    return;
  }
  const fd = await openP(path, 'r');
  try {
    let done = 0;
    while (done < target.length) {
      const bytesRead = await readP(fd, target, done, target.length - done, px.offset + frameOffset + done);
      if (bytesRead === 0) throw new DicomParseError(`file is truncated in its pixel data (${done} of ${target.length} bytes)`);
      done += bytesRead;
    }
  } finally {
    await closeP(fd);
  }
}
