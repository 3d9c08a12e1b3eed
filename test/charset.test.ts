import { describe, expect, it } from 'vitest';
import { parseDicom, type DataSet } from '../src/dicom/parser.js';
import { readSliceHeader } from '../src/dicom/sliceHeader.js';
import { tag, Tags, TransferSyntax } from '../src/dicom/tags.js';
import { imageElements, writeDicom, type WriteElement } from '../src/dicom/writer.js';

const ReferencedSeriesSequence = tag(0x0008, 0x1115);
const RequestAttributesSequence = tag(0x0040, 0x0275);
const RequestedProcedureDescription = tag(0x0032, 0x1060);

/** A text value as the bytes of `text` in `encoding` (the writer itself writes Latin-1). */
const text = (t: number, vr: string, value: string, encoding: BufferEncoding = 'utf8'): WriteElement => ({
  tag: t,
  vr,
  value: new Uint8Array(Buffer.from(value, encoding)),
});
const sq = (t: number, items: WriteElement[][]): WriteElement => ({ tag: t, vr: 'SQ', value: items });

/** A small image with `top` added to its top-level elements. */
function file(top: WriteElement[], transferSyntax: string = TransferSyntax.ExplicitLittle): Buffer {
  const elements = imageElements({
    rows: 2,
    columns: 2,
    bitsAllocated: 16,
    signed: false,
    pixels: new Uint16Array([1, 2, 3, 4]),
    seriesInstanceUid: '1.2.3.9',
    sopInstanceUid: '1.2.3.9.1',
    extra: top,
  });
  return writeDicom(elements, { transferSyntax });
}

const first = (ds: DataSet, t: number): DataSet => {
  const items = ds.sequence(t);
  expect(items).toBeDefined();
  return items![0];
};

describe('character set of text values', () => {
  for (const [name, ts] of [
    ['Explicit VR LE', TransferSyntax.ExplicitLittle],
    ['Explicit VR BE', TransferSyntax.ExplicitBig],
    ['Deflated', TransferSyntax.DeflatedExplicitLittle],
  ] as const) {
    it(`decodes text in nested items as UTF-8 when the dataset says ISO_IR 192 (${name})`, () => {
      const buf = file(
        [
          { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' },
          text(Tags.PatientName, 'PN', 'Müller^Jürgen'),
          sq(RequestAttributesSequence, [
            [
              text(RequestedProcedureDescription, 'LO', 'Ω scan'),
              sq(ReferencedSeriesSequence, [[text(Tags.SeriesDescription, 'LO', 'Müller^Jürgen')]]),
            ],
            [text(RequestedProcedureDescription, 'LO', 'Łódź')],
          ]),
        ],
        ts,
      );
      const ds = parseDicom(buf).dataset;
      expect(ds.string(Tags.PatientName)).toBe('Müller^Jürgen');
      const item = first(ds, RequestAttributesSequence);
      expect(item.string(RequestedProcedureDescription)).toBe('Ω scan');
      expect(first(item, ReferencedSeriesSequence).string(Tags.SeriesDescription)).toBe('Müller^Jürgen');
      expect(ds.sequence(RequestAttributesSequence)![1].string(RequestedProcedureDescription)).toBe('Łódź');
    });
  }

  it('lets an item with its own Specific Character Set override the one it inherits', () => {
    const buf = file([
      { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' },
      sq(RequestAttributesSequence, [
        [{ tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 100' }, text(RequestedProcedureDescription, 'LO', 'Müller', 'latin1')],
        [text(RequestedProcedureDescription, 'LO', 'Müller')],
      ]),
    ]);
    const [latin, inherited] = parseDicom(buf).dataset.sequence(RequestAttributesSequence)!;
    expect(latin.string(RequestedProcedureDescription)).toBe('Müller');
    expect(inherited.string(RequestedProcedureDescription)).toBe('Müller');
  });

  it('reads an ISO_IR 192 item inside a Latin-1 dataset as UTF-8, and its container as Latin-1', () => {
    const buf = file([
      text(Tags.PatientName, 'PN', 'Jürgen', 'latin1'),
      sq(RequestAttributesSequence, [
        [
          { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' },
          text(RequestedProcedureDescription, 'LO', 'Ω'),
          sq(ReferencedSeriesSequence, [[text(Tags.SeriesDescription, 'LO', 'Jürgen')]]),
        ],
      ]),
    ]);
    const ds = parseDicom(buf).dataset;
    expect(ds.string(Tags.PatientName)).toBe('Jürgen');
    const item = first(ds, RequestAttributesSequence);
    expect(item.string(RequestedProcedureDescription)).toBe('Ω');
    expect(first(item, ReferencedSeriesSequence).string(Tags.SeriesDescription)).toBe('Jürgen');
  });

  it('reads the slice header of a UTF-8 file read only up to its pixel data', () => {
    const buf = file([
      { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' },
      text(Tags.SeriesDescription, 'LO', 'Thorax Ω'),
      sq(RequestAttributesSequence, [[text(RequestedProcedureDescription, 'LO', 'Müller')]]),
    ]);
    const parsed = parseDicom(buf, { untilPixelData: true });
    expect(readSliceHeader(parsed).seriesDescription).toBe('Thorax Ω');
    expect(first(parsed.dataset, RequestAttributesSequence).string(RequestedProcedureDescription)).toBe('Müller');
  });
});
