/**
 * One frame of an instance as uncompressed bytes, for /frames (application/octet-stream) and
 * rendered images: native frames as stored (little endian), compressed ones decoded on the
 * calling thread (a rendering worker for rendered images; the frames route decodes on the
 * decoding workers, through transcode.ts's frameOfInstance, and here only without them).
 */
import { CircusError } from '../core/errors.js';
import { canDecode, decodeFrame, initCodecs } from '../dicom/codecs.js';
import type { ParsedDicom } from '../dicom/parser.js';
import { isNative, type SliceHeader } from '../dicom/sliceHeader.js';
import { decodedPhotometric, encapsulatedFrames, frameInfo, nativeFrame } from '../dicom/transcode.js';
import type { FrameLayout } from './rendered.js';

/** Decodes one compressed frame (400-free: a frame that fails is a 422 naming the instance). */
export async function decodeOneFrame(header: SliceHeader, encoded: Uint8Array): Promise<Uint8Array> {
  if (!canDecode(header.transferSyntaxUid)) {
    throw new CircusError('UNSUPPORTED_TRANSFER_SYNTAX', `transfer syntax ${header.transferSyntaxUid} cannot be decoded here`);
  }
  await initCodecs();
  try {
    return decodeFrame(header.transferSyntaxUid, encoded, frameInfo(header));
  } catch (err) {
    throw new CircusError(
      'UNPROCESSABLE_SERIES',
      `instance ${header.sopInstanceUid ?? ''} has a frame that cannot be decoded: ${(err as Error).message}`,
    );
  }
}

/** Frame `index` (0-based) as uncompressed little-endian bytes, with the layout that reads them. */
export async function uncompressedFrame(
  parsed: ParsedDicom,
  header: SliceHeader,
  index: number,
): Promise<{ bytes: Uint8Array; layout: FrameLayout }> {
  const native = isNative(header.transferSyntaxUid);
  const bytes = native ? nativeFrame(parsed, header, index) : await decodeOneFrame(header, encapsulatedFrames(parsed, header)[index]);
  const photometric = native ? header.photometricInterpretation : decodedPhotometric(header.transferSyntaxUid, header);
  return {
    bytes,
    layout: {
      rows: header.rows,
      columns: header.columns,
      samplesPerPixel: header.samplesPerPixel,
      bitsAllocated: header.bitsAllocated,
      bitsStored: header.bitsStored,
      highBit: header.highBit,
      pixelRepresentation: header.pixelRepresentation,
      photometricInterpretation: photometric,
      // Decoders give interleaved samples.
      planarConfiguration: native ? header.planarConfiguration : 0,
      rescaleSlope: header.rescaleSlope,
      rescaleIntercept: header.rescaleIntercept,
      windowCenter: header.windowCenter,
      windowWidth: header.windowWidth,
    },
  };
}
