/**
 * Reading DICOM instances from a source: headers from the first kilobytes only, and pixel data
 * straight into a caller-given buffer (no intermediate copy for uncompressed instances).
 */
import type { Instance } from './instance.js';
import { DicomParseError, type ParsedDicom, PartialFileError, parseDicom } from './parser.js';
import { isDeflated, readSliceHeader, type SliceHeader } from './sliceHeader.js';
import { Tags } from './tags.js';

/** How much of an instance is read first for its header; more is read only when the header is longer. */
const FIRST_READ = 16 * 1024;

export interface ReadLimits {
  /** Largest deflated dataset accepted once inflated, in bytes. */
  maxInflatedBytes: number;
}

export const DEFAULT_READ_LIMITS: ReadLimits = { maxInflatedBytes: 1 << 30 };

/**
 * Reads the header of one instance (everything before the pixel data value).
 * Throws DicomParseError when it is not DICOM or is truncated before its pixel data.
 */
export async function readHeader(instance: Instance, limits: ReadLimits = DEFAULT_READ_LIMITS): Promise<SliceHeader> {
  return readSliceHeader(await readHeaderDataset(instance, limits));
}

/**
 * Parses one instance up to its pixel data (the value itself is not read): every attribute but
 * the pixel data's bytes, for metadata. Throws DicomParseError like readHeader.
 */
export async function readHeaderDataset(instance: Instance, limits: ReadLimits = DEFAULT_READ_LIMITS): Promise<ParsedDicom> {
  let want = FIRST_READ;
  // The size is only asked for when the first read does not hold the whole header.
  let size = -1;
  for (;;) {
    const buf = Buffer.allocUnsafe(want);
    const bytesRead = await instance.read(buf, 0);
    if (bytesRead < want) size = bytesRead;
    const data = buf.subarray(0, bytesRead);
    try {
      return parseDicom(data, { untilPixelData: true, partial: bytesRead !== size, maxInflatedBytes: limits.maxInflatedBytes });
    } catch (err) {
      if (!(err instanceof PartialFileError)) throw err;
      if (size < 0) size = await instance.size();
      if (bytesRead >= size) throw new DicomParseError(`file is truncated (${bytesRead} bytes)`);
      want = Math.min(size, Math.max(err.needed + FIRST_READ, want * 2));
    }
  }
}

/**
 * Reads `length` bytes of the native pixel data of an instance into `target` at `targetOffset`,
 * starting `frameOffset` bytes into the pixel data value. Deflated instances are inflated and copied.
 */
export async function readPixelBytes(
  instance: Instance,
  header: SliceHeader,
  target: Buffer,
  frameOffset = 0,
  limits: ReadLimits = DEFAULT_READ_LIMITS,
  targetOffset = 0,
  length = target.length - targetOffset,
): Promise<void> {
  const px = header.pixelData;
  if (!px || px.encapsulated) throw new DicomParseError('no native pixel data');
  if (frameOffset + length > px.length) {
    throw new DicomParseError(`pixel data holds ${px.length} bytes, ${frameOffset + length} are needed`);
  }
  if (isDeflated(header.transferSyntaxUid)) {
    const parsed = parseDicom(await instance.bytes(), { maxInflatedBytes: limits.maxInflatedBytes });
    const el = parsed.dataset.elements.get(Tags.PixelData);
    if (!el || el.length < frameOffset + length) throw new DicomParseError('pixel data is shorter than the image');
    parsed.dataset.buf.copy(target, targetOffset, el.offset + frameOffset, el.offset + frameOffset + length);
    return;
  }
  const done = await instance.read(target, px.offset + frameOffset, targetOffset, length);
  if (done < length) throw new DicomParseError(`file is truncated in its pixel data (${done} of ${length} bytes)`);
}
