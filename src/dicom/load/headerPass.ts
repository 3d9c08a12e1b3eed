/**
 * Step 1 of loading a volume, the header pass (volumeLoader.ts says what each step does): every
 * instance's header read, the instances that are not images of the series skipped, one slice per
 * frame, every slice checked. Nothing is ordered or allocated yet.
 */
import { CircusError, isSourceFailure, tooLarge, unprocessable } from '../../core/errors.js';
import type { Instance } from '../instance.js';
import { canDecode } from '../codecs.js';
import { DEFAULT_READ_LIMITS, readHeader } from '../fileReader.js';
import { isNative, type SliceHeader } from '../sliceHeader.js';
import { describeTransferSyntax } from '../tags.js';
import { mapLimit } from '../../util/async.js';
import type { LoadOptions } from '../volumeLoader.js';

/** One image plane: a single-frame instance, or one frame of a multi-frame instance. */
export interface Slice {
  instance: Instance;
  label: string;
  /** The file's header with this frame's geometry and values put in. */
  header: SliceHeader;
  /** Frame index in the instance (0 for single-frame instances). */
  frame: number;
  /**
   * Its place in InstanceNumber order, frames within their instance: InstanceNumber x 10^6 plus
   * the frame number (1 for a single-frame instance), so single- and multi-frame instances of one
   * series compare on one scale; undefined for an instance without InstanceNumber (a stack keeps
   * those in the order given, after the numbered ones, each instance's frames together).
   */
  stackNumber: number | undefined;
  /** The number the geometry's ordering breaks ties and picks its direction by: stackNumber, but frames of an unnumbered instance count as instance 0. */
  geometryNumber: number | undefined;
}

/** What the header pass found: the slices of the series, checked, in the order of the instances given (frames in order). */
export interface HeaderPass {
  readonly slices: readonly Slice[];
}

/**
 * Reads, sorts out and checks the headers of a series' instances. Rejects with 422 when no
 * instance is a readable image or a slice cannot be part of a volume (named), 413 beyond
 * maxFrameBytes, 422 (UNSUPPORTED_TRANSFER_SYNTAX) for pixel data that cannot be decoded, and
 * with a source's own failure (502, 504).
 */
export async function headerPass(
  instances: readonly Instance[],
  options: Pick<LoadOptions, 'seriesInstanceUid' | 'readLimits' | 'log' | 'concurrency' | 'pool' | 'maxFrameBytes'>,
): Promise<HeaderPass> {
  const log = options.log ?? (() => {});
  const limits = options.readLimits ?? DEFAULT_READ_LIMITS;
  const read = await mapLimit(instances, options.concurrency ?? 8, async (instance): Promise<Slice[] | null> => {
    try {
      const header = (await instance.knownHeader?.()) ?? (await readHeader(instance, limits));
      if (options.seriesInstanceUid !== undefined && header.seriesInstanceUid !== options.seriesInstanceUid) {
        log(`skipped ${instance.name}: SeriesInstanceUID ${header.seriesInstanceUid ?? '(none)'} is not the series asked for`);
        return null;
      }
      if (!header.pixelData && header.rows === 0) {
        log(`skipped ${instance.name}: not an image (no Rows and no pixel data)`);
        return null;
      }
      return slicesOf(instance, header);
    } catch (err) {
      if (isSourceFailure(err)) throw err;
      log(`skipped ${instance.name}: ${(err as Error).message}`);
      return null;
    }
  });
  const slices = read.filter((s): s is Slice[] => s !== null).flat();
  if (slices.length === 0) throw unprocessable(`the series has no readable DICOM image (${instances.length} files looked at)`);
  for (const s of slices) checkSlice(s, slices[0], options.pool !== undefined, options.maxFrameBytes ?? 256 * 1024 * 1024);
  return { slices };
}

const orderNumber = (instanceNumber: number | undefined, frameNumber: number): number | undefined =>
  instanceNumber === undefined ? undefined : instanceNumber * 1e6 + frameNumber;

/** The slices of one instance: one, or one per frame with the frame's own geometry. */
function slicesOf(instance: Instance, h: SliceHeader): Slice[] {
  if (!h.frames) {
    const n = orderNumber(h.instanceNumber, 1);
    return [{ instance, label: instance.name, header: h, frame: 0, stackNumber: n, geometryNumber: n }];
  }
  return h.frames.map((f, i) => ({
    instance,
    label: `${instance.name} frame ${i + 1}`,
    frame: i,
    stackNumber: orderNumber(h.instanceNumber, f.frameNumber),
    geometryNumber: orderNumber(h.instanceNumber ?? 0, f.frameNumber),
    header: {
      ...h,
      imagePositionPatient: f.imagePositionPatient ?? h.imagePositionPatient,
      imageOrientationPatient: f.imageOrientationPatient ?? h.imageOrientationPatient,
      pixelSpacing: f.pixelSpacing ?? h.pixelSpacing,
      sliceThickness: f.sliceThickness ?? h.sliceThickness,
      spacingBetweenSlices: f.spacingBetweenSlices ?? h.spacingBetweenSlices,
      rescaleSlope: f.rescaleSlope !== undefined && f.rescaleSlope !== 0 ? f.rescaleSlope : h.rescaleSlope,
      rescaleIntercept: f.rescaleIntercept ?? h.rescaleIntercept,
      windowCenter: f.windowCenter ?? h.windowCenter,
      windowWidth: f.windowWidth ?? h.windowWidth,
    },
  }));
}

function checkSlice(s: Slice, first: Slice, decoding: boolean, maxFrameBytes: number): void {
  const h = s.header;
  const name = `slice ${s.label}`;
  if (!h.pixelData) throw unprocessable(`${name}: no pixel data`);
  const frameBytes = h.rows * h.columns * Math.max(1, h.samplesPerPixel) * Math.ceil(Math.max(8, h.bitsAllocated) / 8);
  if (frameBytes > maxFrameBytes) {
    throw tooLarge(`${name}: a ${h.rows}x${h.columns} frame needs ${frameBytes} bytes, more than maxFrameBytes (${maxFrameBytes})`);
  }
  const binary = h.bitsAllocated === 1;
  if (binary && h.pixelData.encapsulated) {
    throw unprocessable(
      `${name}: BitsAllocated 1 pixel data is compressed (${describeTransferSyntax(h.transferSyntaxUid)}); only uncompressed masks are read`,
    );
  }
  const native = isNative(h.transferSyntaxUid) && !h.pixelData.encapsulated;
  if (!native && !(decoding && canDecode(h.transferSyntaxUid) && h.pixelData.encapsulated)) {
    throw new CircusError('UNSUPPORTED_TRANSFER_SYNTAX', `${name}: transfer syntax ${describeTransferSyntax(h.transferSyntaxUid)} cannot be decoded`);
  }
  if (h.samplesPerPixel !== 1 || (h.photometricInterpretation !== 'MONOCHROME1' && h.photometricInterpretation !== 'MONOCHROME2')) {
    throw unprocessable(
      `${name}: colour image (PhotometricInterpretation ${h.photometricInterpretation}, SamplesPerPixel ${h.samplesPerPixel}) where a monochrome one is needed`,
    );
  }
  if (h.bitsAllocated !== 1 && h.bitsAllocated !== 8 && h.bitsAllocated !== 16) {
    throw unprocessable(`${name}: BitsAllocated ${h.bitsAllocated} is not supported (1, 8 or 16)`);
  }
  if (binary && (h.bitsStored !== 1 || h.highBit !== 0 || h.pixelRepresentation !== 0)) {
    throw unprocessable(
      `${name}: BitsAllocated 1 needs BitsStored 1, HighBit 0 and PixelRepresentation 0, got BitsStored ${h.bitsStored}, HighBit ${h.highBit}, PixelRepresentation ${h.pixelRepresentation}`,
    );
  }
  if (!(h.bitsStored >= 1 && h.bitsStored <= h.bitsAllocated && h.highBit >= h.bitsStored - 1 && h.highBit < h.bitsAllocated)) {
    throw unprocessable(`${name}: BitsStored ${h.bitsStored} and HighBit ${h.highBit} do not fit BitsAllocated ${h.bitsAllocated}`);
  }
  if (h.pixelRepresentation !== 0 && h.pixelRepresentation !== 1) {
    throw unprocessable(`${name}: PixelRepresentation ${h.pixelRepresentation} is not 0 or 1`);
  }
  const f = first.header;
  for (const key of ['bitsAllocated', 'pixelRepresentation', 'photometricInterpretation'] as const) {
    if (h[key] !== f[key]) {
      throw unprocessable(`${name}: ${key} ${h[key]} differs from ${f[key]} of slice ${first.label}`);
    }
  }
  const needed = pixelDataBytes(h);
  if (native && h.pixelData.length < needed) {
    const frames = h.numberOfFrames > 1 ? ` x ${h.numberOfFrames} frames` : '';
    const packing = binary ? ' at 1 bit a pixel' : '';
    throw unprocessable(`${name}: pixel data holds ${h.pixelData.length} bytes, ${h.rows}x${h.columns}${frames}${packing} needs ${needed}`);
  }
}

/** Bytes the native pixel data of every frame of an instance takes (before padding to even length). */
function pixelDataBytes(h: SliceHeader): number {
  const pixels = h.rows * h.columns * h.numberOfFrames;
  return h.bitsAllocated === 1 ? Math.ceil(pixels / 8) : pixels * (h.bitsAllocated / 8);
}
