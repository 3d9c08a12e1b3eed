/**
 * Reading DICOM files from disk: headers from the first kilobytes only, and pixel data straight
 * into a caller-given buffer (no intermediate copy for uncompressed files).
 */
import { open, readFile } from 'node:fs/promises';
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

/**
 * Reads the header of one file (everything before the pixel data value).
 * Throws DicomParseError when the file is not DICOM or is truncated before its pixel data.
 */
export async function readHeader(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): Promise<SliceHeader> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    let want = Math.min(size, FIRST_READ);
    for (;;) {
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, 0);
      const data = buf.subarray(0, bytesRead);
      try {
        return readSliceHeader(parseDicom(data, { untilPixelData: true, partial: bytesRead < size, maxInflatedBytes: limits.maxInflatedBytes }));
      } catch (err) {
        if (!(err instanceof PartialFileError)) throw err;
        if (want >= size) throw new DicomParseError(`file is truncated (${bytesRead} bytes)`);
        want = Math.min(size, Math.max(err.needed + FIRST_READ, want * 2));
      }
    }
  } finally {
    await fh.close();
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
  const fh = await open(path, 'r');
  try {
    let done = 0;
    while (done < target.length) {
      const { bytesRead } = await fh.read(target, done, target.length - done, px.offset + frameOffset + done);
      if (bytesRead === 0) throw new DicomParseError(`file is truncated in its pixel data (${done} of ${target.length} bytes)`);
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
