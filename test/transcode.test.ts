/**
 * Transcoding (src/dicom/transcode.ts) on files written in code: the Explicit VR Little Endian
 * file each syntax becomes (its meta, VRs, swapped values, sequences, pixel data), the frames
 * WADO-RS serves, and refusals. Expected bytes are worked out by hand; the conformance suite
 * has pydicom, GDCM and dcmtk read the outputs of real files.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initCodecs } from '../src/dicom/codecs.js';
import { datasetJson } from '../src/dicom/json.js';
import { DicomParseError, parseDicom } from '../src/dicom/parser.js';
import { readSliceHeader } from '../src/dicom/sliceHeader.js';
import { tag, Tags, TransferSyntax } from '../src/dicom/tags.js';
import { decodedPixelData, encapsulatedFrames, explicitLittlePart10, IMPLEMENTATION_CLASS_UID, nativeFrame } from '../src/dicom/transcode.js';
import { imageElements, packBitsLsbFirst, type WriteElement, writeDicom } from '../src/dicom/writer.js';
import { rleFrame } from './fixtures/rle.js';

const { ImplicitLittle, ExplicitLittle, ExplicitBig, DeflatedExplicitLittle } = TransferSyntax;
const RLE = '1.2.840.10008.1.2.5';

const image = (pixels: Int16Array | Uint16Array | Uint8Array, rows: number, columns: number, extra: WriteElement[] = []) =>
  imageElements({
    rows,
    columns,
    bitsAllocated: pixels instanceof Uint8Array ? 8 : 16,
    signed: pixels instanceof Int16Array,
    pixels,
    seriesInstanceUid: '1.2.3',
    sopInstanceUid: '1.2.3.1',
    extra,
  });

const bytesOf = (a: Int16Array | Uint16Array | Uint8Array): number[] => [...new Uint8Array(a.buffer, a.byteOffset, a.byteLength)];

describe('explicitLittlePart10', () => {
  for (const ts of [ImplicitLittle, ExplicitLittle, ExplicitBig, DeflatedExplicitLittle]) {
    it(`re-encodes ${ts} as Explicit VR Little Endian with the same attributes`, () => {
      const pixels = new Int16Array([-1000, 0, 1, 32767, -32768, 258]);
      const extra: WriteElement[] = [
        { tag: tag(0x0008, 0x0070), vr: 'LO', value: 'ACME' },
        { tag: tag(0x0018, 0x9087), vr: 'FD', value: [1000.5] },
        { tag: tag(0x0028, 0x0009), vr: 'AT', value: new Uint8Array(ts === ExplicitBig ? [0x00, 0x18, 0x10, 0x63] : [0x18, 0x00, 0x63, 0x10]) },
        { tag: tag(0x0009, 0x0010), vr: 'LO', value: 'ACME' },
        { tag: tag(0x0009, 0x1001), vr: 'OB', value: new Uint8Array([1, 2]) },
        {
          tag: tag(0x0008, 0x1115),
          vr: 'SQ',
          value: [[{ tag: Tags.SeriesInstanceUID, vr: 'UI', value: '1.2.3.5' }], []],
        },
      ];
      const input = parseDicom(writeDicom(image(pixels, 2, 3, extra), { transferSyntax: ts }));
      const out = explicitLittlePart10(input);
      expect(out.toString('latin1', 128, 132)).toBe('DICM');
      const parsed = parseDicom(out);
      expect(parsed.transferSyntaxUid).toBe(ExplicitLittle);
      expect(parsed.meta.string(tag(0x0002, 0x0002))).toBe('1.2.840.10008.5.1.4.1.1.2');
      expect(parsed.meta.string(tag(0x0002, 0x0003))).toBe('1.2.3.1');
      expect(parsed.meta.string(tag(0x0002, 0x0012))).toBe(IMPLEMENTATION_CLASS_UID);
      // The group length counts the meta elements after it.
      const groupLength = parsed.meta.numbers(tag(0x0002, 0x0000))![0];
      expect(parsed.dataset.elements.values().next().value!.offset - 8).toBe(132 + 12 + groupLength);
      const ds = parsed.dataset;
      expect(ds.elements.get(tag(0x0008, 0x0070))!.vr).toBe('LO');
      expect(ds.elements.get(tag(0x0018, 0x9087))!.vr).toBe('FD');
      expect(ds.numbers(tag(0x0018, 0x9087))).toEqual([1000.5]);
      expect([...ds.buf.subarray(ds.elements.get(tag(0x0028, 0x0009))!.offset).subarray(0, 4)]).toEqual([0x18, 0x00, 0x63, 0x10]);
      // Private: the creator is LO; the other element keeps its VR, or is UN from Implicit VR.
      expect(ds.elements.get(tag(0x0009, 0x0010))!.vr).toBe('LO');
      expect(ds.elements.get(tag(0x0009, 0x1001))!.vr).toBe(ts === ImplicitLittle ? 'UN' : 'OB');
      expect(ds.sequence(tag(0x0008, 0x1115))!.map((item) => item.string(Tags.SeriesInstanceUID) ?? null)).toEqual(['1.2.3.5', null]);
      // Pixel data: the stored words, little endian.
      expect(ds.elements.get(Tags.PixelData)!.vr).toBe('OW');
      expect([...nativeFrame(parsed, readSliceHeader(parsed), 0)]).toEqual(bytesOf(pixels));
      expect(datasetJson(ds)).toEqual(datasetJson(input.dataset));
    });
  }

  it('writes a value too long for its VR as UN', () => {
    const long = 'A'.repeat(70000);
    const input = parseDicom(
      writeDicom([...image(new Uint8Array(4), 2, 2), { tag: tag(0x0008, 0x0070), vr: 'LO', value: long }], { transferSyntax: ImplicitLittle }),
    );
    const ds = parseDicom(explicitLittlePart10(input)).dataset;
    const e = ds.elements.get(tag(0x0008, 0x0070))!;
    expect(e.vr).toBe('UN');
    expect(ds.buf.toString('latin1', e.offset, e.offset + e.length)).toBe(long);
  });

  it('replaces pixel data, Photometric Interpretation and Planar Configuration by decoded pixels', () => {
    const elements = image(new Uint8Array(12), 2, 2, [
      { tag: Tags.SamplesPerPixel, vr: 'US', value: 3 },
      { tag: Tags.PhotometricInterpretation, vr: 'CS', value: 'YBR_FULL_422' },
    ]);
    const input = parseDicom(writeDicom(elements, { transferSyntax: ExplicitLittle }));
    const rgb = new Uint8Array(Array.from({ length: 12 }, (_, i) => i * 10));
    const ds = parseDicom(explicitLittlePart10(input, { bytes: rgb, photometricInterpretation: 'RGB', planarConfiguration: 0 })).dataset;
    expect(ds.string(Tags.PhotometricInterpretation)).toBe('RGB');
    expect(ds.number(Tags.PlanarConfiguration)).toBe(0);
    const px = ds.elements.get(Tags.PixelData)!;
    expect(px.vr).toBe('OB');
    expect([...ds.buf.subarray(px.offset, px.offset + px.length)]).toEqual([...rgb]);
    expect([...ds.elements.keys()]).toEqual([...ds.elements.keys()].sort((a, b) => a - b));
  });

  it('refuses compressed pixel data without decoded pixels, and DICOMDIRs', () => {
    const elements = image(new Uint16Array(4), 2, 2);
    const input = parseDicom(writeDicom(elements, { transferSyntax: RLE, encapsulated: [rleFrame(new Uint16Array(4))] }));
    expect(() => explicitLittlePart10(input)).toThrow(/must be decoded/);
    const dir = parseDicom(writeDicom([{ tag: Tags.SOPClassUID, vr: 'UI', value: '1.2.840.10008.1.3.10' }]));
    expect(() => explicitLittlePart10(dir)).toThrow(DicomParseError);
  });
});

describe('frames', () => {
  beforeAll(() => initCodecs());

  it('cuts native frames out of big-endian multi-frame pixel data', () => {
    const frames = [new Uint16Array([1, 2, 3, 4]), new Uint16Array([0x0102, 0x0304, 0xfffe, 7]), new Uint16Array([9, 9, 9, 0x8000])];
    const all = new Uint16Array(12);
    frames.forEach((f, i) => {
      all.set(f, i * 4);
    });
    const input = parseDicom(writeDicom(image(all, 2, 2, [{ tag: Tags.NumberOfFrames, vr: 'IS', value: '3' }]), { transferSyntax: ExplicitBig }));
    const header = readSliceHeader(input);
    frames.forEach((f, i) => {
      expect([...nativeFrame(input, header, i)]).toEqual(bytesOf(f));
    });
    expect(() => nativeFrame(input, header, 3)).toThrow(/frame 4 is not among the 3/);
    expect(() => encapsulatedFrames(input, header)).toThrow(/not encapsulated/);
    expect([...decodedPixelData(input, header).bytes]).toEqual(bytesOf(all));
  });

  it('unswaps 8-bit pixel data in OW from big endian', () => {
    const pixels = new Uint8Array([10, 20, 30, 40, 50, 60]);
    const elements = image(pixels, 1, 3, [{ tag: Tags.NumberOfFrames, vr: 'IS', value: '2' }]).map((e) =>
      e.tag === Tags.PixelData ? { ...e, vr: 'OW' } : e,
    );
    const input = parseDicom(writeDicom(elements, { transferSyntax: ExplicitBig }));
    const header = readSliceHeader(input);
    expect([...nativeFrame(input, header, 0)]).toEqual([10, 20, 30]);
    expect([...nativeFrame(input, header, 1)]).toEqual([40, 50, 60]);
  });

  it('moves 1-bit frames that do not start on a byte boundary to bit 0', () => {
    // 3 x 3 masks: 9 bits a frame, so frame 1 starts at bit 1 of byte 1.
    const f0 = [1, 0, 1, 1, 0, 0, 1, 0, 1];
    const f1 = [0, 1, 1, 0, 1, 0, 0, 1, 1];
    const elements = imageElements({
      rows: 3,
      columns: 3,
      bitsAllocated: 1,
      signed: false,
      pixels: new Uint8Array([...f0, ...f1]),
      seriesInstanceUid: '1.2.3',
      sopInstanceUid: '1.2.3.9',
      extra: [{ tag: Tags.NumberOfFrames, vr: 'IS', value: '2' }],
    });
    const input = parseDicom(writeDicom(elements, { transferSyntax: DeflatedExplicitLittle }));
    const header = readSliceHeader(input);
    expect([...nativeFrame(input, header, 0)]).toEqual([...packBitsLsbFirst(f0)]);
    expect([...nativeFrame(input, header, 1)]).toEqual([...packBitsLsbFirst(f1)]);
  });

  it('gives each encapsulated frame and decodes them all', () => {
    const frames = [new Int16Array([-5, 300, 7, 0]), new Int16Array([1, -2, 3, -4])];
    const encoded = frames.map((f) => rleFrame(f));
    const elements = image(new Int16Array(8), 2, 2, [{ tag: Tags.NumberOfFrames, vr: 'IS', value: '2' }]);
    const input = parseDicom(writeDicom(elements, { transferSyntax: RLE, encapsulated: encoded, offsetTable: true }));
    const header = readSliceHeader(input);
    const split = encapsulatedFrames(input, header);
    expect(split.map((f) => [...f])).toEqual(encoded.map((e) => [...e, ...(e.length % 2 ? [0] : [])]));
    expect(() => nativeFrame(input, header, 0)).toThrow(/compressed/);
    const decoded = decodedPixelData(input, header);
    expect([...decoded.bytes]).toEqual([...bytesOf(frames[0]), ...bytesOf(frames[1])]);
    expect(decoded.photometricInterpretation).toBe('MONOCHROME2');
    const out = parseDicom(explicitLittlePart10(input, decoded));
    expect(out.transferSyntaxUid).toBe(ExplicitLittle);
    expect([...nativeFrame(out, readSliceHeader(out), 1)]).toEqual(bytesOf(frames[1]));
  });
});

describe('malformed input', () => {
  /** A small deterministic generator (mulberry32), so a failure can be replayed. */
  function random(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const nested: WriteElement[] = [
    ...image(new Int16Array([1, -2, 3, -4]), 2, 2),
    { tag: tag(0x0008, 0x0070), vr: 'LO', value: 'ACME' },
    {
      tag: tag(0x0008, 0x1115),
      vr: 'SQ',
      value: [
        [
          { tag: Tags.SeriesInstanceUID, vr: 'UI', value: '1.2.3.5' },
          { tag: tag(0x0008, 0x1140), vr: 'SQ', value: [[{ tag: Tags.SOPInstanceUID, vr: 'UI', value: '9.8' }], []] },
          { tag: tag(0x0028, 0x0009), vr: 'AT', value: new Uint8Array([0x18, 0, 0x63, 0x10]) },
        ],
      ],
    },
  ];

  for (const ts of [ImplicitLittle, ExplicitBig]) {
    it(`throws only DicomParseError for damaged files (${ts})`, () => {
      const good = writeDicom(nested, { transferSyntax: ts });
      const next = random(ts === ImplicitLittle ? 1 : 2);
      let parsedCount = 0;
      let refused = 0;
      for (let n = 0; n < 1500; n++) {
        const buf = Buffer.from(good.subarray(0, next() < 0.2 ? Math.floor(next() * good.length) : good.length));
        const flips = 1 + Math.floor(next() * 4);
        for (let k = 0; k < flips; k++) buf[132 + Math.floor(next() * (buf.length - 132))] = Math.floor(next() * 256);
        try {
          const parsed = parseDicom(buf, { elementsAfterPixelData: true });
          parsedCount++;
          datasetJson(parsed.dataset, { bulkDataUri: (p) => p, bulkThreshold: 4 });
          explicitLittlePart10(parsed);
        } catch (err) {
          if (!(err instanceof DicomParseError)) throw new Error(`mutation ${n}: ${(err as Error).stack}`);
          refused++;
        }
      }
      // Both outcomes happen: the damage is neither always fatal nor always harmless.
      expect(parsedCount).toBeGreaterThan(100);
      expect(refused).toBeGreaterThan(50);
    });
  }

  it('refuses a sequence the dictionary names that is not one, when transcoding', () => {
    // ReferencedSeriesSequence of 8 bytes holding an element instead of an item, Implicit VR.
    const bytes = Buffer.alloc(8);
    bytes.writeUInt16LE(0x0008, 0);
    bytes.writeUInt16LE(0x0060, 2);
    const elements: WriteElement[] = [...image(new Uint8Array(4), 2, 2), { tag: tag(0x0008, 0x1115), vr: 'OB', value: bytes }];
    const input = parseDicom(writeDicom(elements, { transferSyntax: ImplicitLittle }));
    expect(() => explicitLittlePart10(input)).toThrow(/expected a sequence item/);
  });
});
