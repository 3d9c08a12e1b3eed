/**
 * Whether bytes, or a file, are a whole DICOM Part 10 instance of a given SOP Instance UID: what
 * a PACS's answer and a file of the instance cache are checked against before they are used.
 */
import { open } from 'node:fs/promises';
import { PartialFileError, parseDicom } from '../dicom/parser.js';
import { isDeflated } from '../dicom/sliceHeader.js';
import { Tags } from '../dicom/tags.js';

/**
 * The SOP Instance UID of a whole Part 10 instance (parsed to its end); throws an Error saying
 * why when `bytes` are not one (no DICM marker, cut short, no SOPInstanceUID).
 */
export function sopInstanceUidOf(bytes: Buffer, maxInflatedBytes: number): string {
  if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part 10 file (no DICM marker)');
  const uid = parseDicom(bytes, { maxInflatedBytes }).dataset.string(Tags.SOPInstanceUID);
  if (!uid) throw new Error('it has no SOPInstanceUID');
  return uid;
}

/** Whether `bytes` are a whole Part 10 instance of `sopInstanceUid`; a reason when they are not. */
export function checkInstance(bytes: Buffer, sopInstanceUid: string, maxInflatedBytes: number): string | null {
  try {
    const uid = sopInstanceUidOf(bytes, maxInflatedBytes);
    return uid === sopInstanceUid ? null : `its SOPInstanceUID is ${uid}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** How much of a file is read first for its header. */
const HEAD = 64 * 1024;
/** The Sequence Delimitation Item that ends encapsulated pixel data: (FFFE,E0DD), length 0. */
const SEQUENCE_END = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);

/**
 * Whether the file at `path` is a whole Part 10 instance of `sopInstanceUid`, reading little of
 * it: its header (the first 64 KiB, more only when the header is longer), then whether it is
 * long enough for its pixel data (native: the value's end; encapsulated: the file ends with the
 * Sequence Delimitation Item). Anything else (deflated, no pixel data, elements after the
 * pixel data) is parsed whole. Resolves to the file's size, or to why it is not good; rejects
 * when the file cannot be read (gone).
 */
export async function checkFile(path: string, sopInstanceUid: string, maxInflatedBytes: number): Promise<{ size: number } | { wrong: string }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const whole = async (): Promise<{ size: number } | { wrong: string }> => {
      const wrong = checkInstance(await handle.readFile(), sopInstanceUid, maxInflatedBytes);
      return wrong === null ? { size } : { wrong };
    };
    const head = Buffer.alloc(Math.min(size, HEAD));
    await handle.read(head, 0, head.length, 0);
    if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') return { wrong: 'not a DICOM Part 10 file (no DICM marker)' };
    let parsed: ReturnType<typeof parseDicom>;
    try {
      parsed = parseDicom(head, { untilPixelData: true, partial: head.length < size, maxInflatedBytes });
    } catch (err) {
      if (err instanceof PartialFileError) return whole();
      return { wrong: (err as Error).message };
    }
    const uid = parsed.dataset.string(Tags.SOPInstanceUID);
    if (uid !== sopInstanceUid) return { wrong: `its SOPInstanceUID is ${uid ?? '(none)'}` };
    const px = parsed.pixelData;
    if (!px || isDeflated(parsed.transferSyntaxUid)) return whole();
    if (px.length >= 0) {
      return px.offset + px.length <= size ? { size } : { wrong: `file is cut short in its pixel data (${size} bytes)` };
    }
    const tail = Buffer.alloc(SEQUENCE_END.length);
    await handle.read(tail, 0, tail.length, size - tail.length);
    return tail.equals(SEQUENCE_END) ? { size } : whole();
  } finally {
    await handle.close();
  }
}
