/**
 * DICOM JSON (src/dicom/json.ts) and the data dictionary on files written in code, one rule at a
 * time, against expectations worked out by hand from PS3.18 F.2 and PS3.5 (the conformance suite
 * compares with pydicom on real files).
 */
import { describe, expect, it } from 'vitest';
import { keywordOf, tagOf, vrOf, vrsOf } from '../src/dicom/dictionary.js';
import { bulkValue, datasetJson, type JsonOptions } from '../src/dicom/json.js';
import { DicomParseError, parseDicom } from '../src/dicom/parser.js';
import { tag, Tags, TransferSyntax } from '../src/dicom/tags.js';
import { type WriteElement, writeDicom } from '../src/dicom/writer.js';

const { ImplicitLittle, ExplicitLittle, ExplicitBig, DeflatedExplicitLittle } = TransferSyntax;
const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const latin1 = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** AT values: (group, element) words in the byte order asked for. */
function atValue(tags: number[], le: boolean): Uint8Array {
  const b = Buffer.alloc(tags.length * 4);
  tags.forEach((t, i) => {
    if (le) {
      b.writeUInt16LE(t >>> 16, 4 * i);
      b.writeUInt16LE(t & 0xffff, 4 * i + 2);
    } else {
      b.writeUInt16BE(t >>> 16, 4 * i);
      b.writeUInt16BE(t & 0xffff, 4 * i + 2);
    }
  });
  return b;
}

function int64(values: bigint[], signed: boolean, le: boolean): Uint8Array {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => {
    if (signed) le ? b.writeBigInt64LE(v, 8 * i) : b.writeBigInt64BE(v, 8 * i);
    else le ? b.writeBigUInt64LE(v, 8 * i) : b.writeBigUInt64BE(v, 8 * i);
  });
  return b;
}

const base = (): WriteElement[] => [
  { tag: Tags.SOPClassUID, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
  { tag: Tags.SOPInstanceUID, vr: 'UI', value: '1.2.3.4' },
];

const json = (elements: WriteElement[], ts: string = ExplicitLittle, options: JsonOptions = {}) =>
  datasetJson(parseDicom(writeDicom(elements, { transferSyntax: ts }), { elementsAfterPixelData: true }).dataset, options);

describe('data dictionary', () => {
  it('knows standard tags, their keywords and VRs', () => {
    expect(vrOf(Tags.PatientName)).toBe('PN');
    expect(keywordOf(Tags.PatientName)).toBe('PatientName');
    expect(tagOf('PatientName')).toBe(0x00100010);
    expect(vrOf(0x00081115)).toBe('SQ');
    expect(keywordOf(0x00081115)).toBe('ReferencedSeriesSequence');
    expect(tagOf('ReferencedSeriesSequence')).toBe(0x00081115);
    expect(vrOf(0x00189445)).toBeUndefined(); // not in PS3.6
    expect(tagOf('NoSuchKeyword')).toBeUndefined();
  });

  it('gives the usual VR where the standard allows several', () => {
    expect(vrsOf(Tags.PixelPaddingValue)).toEqual(['US', 'SS']);
    expect(vrOf(Tags.PixelPaddingValue)).toBe('US');
    expect(vrOf(Tags.PixelData)).toBe('OW');
    expect(vrOf(0x00283006)).toBe('OW'); // LUT Data, 'US or OW'
  });

  it('matches repeating groups by mask', () => {
    expect(vrOf(0x60003000)).toBe('OW');
    expect(keywordOf(0x60223000)).toBe('OverlayData');
    expect(vrOf(0x60220010)).toBe('US'); // OverlayRows of group 6022
    expect(keywordOf(0x501e0005)).toBe('CurveDimensions');
    expect(tagOf('OverlayData')).toBe(0x60003000);
  });

  it('gives private creators LO, other private tags nothing, group lengths UL', () => {
    expect(vrOf(0x00090010)).toBe('LO');
    expect(vrOf(0x00091001)).toBeUndefined();
    expect(keywordOf(0x00090010)).toBeUndefined();
    expect(vrOf(0x00180000)).toBe('UL');
  });
});

describe('DICOM JSON rules', () => {
  it('writes keys as 8 hex digits in tag order, without group lengths or the file meta', () => {
    const out = json([
      { tag: tag(0x0010, 0x0020), vr: 'LO', value: 'ID1' },
      { tag: tag(0x0008, 0x0000), vr: 'UL', value: 30 },
      { tag: tag(0x0008, 0x0060), vr: 'CS', value: 'CT' },
      ...base(),
    ]);
    expect(Object.keys(out)).toEqual(['00080016', '00080018', '00080060', '00100020']);
    expect(out['00080016']).toEqual({ vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.7'] });
  });

  it('splits person names into their groups', () => {
    const out = json([
      ...base(),
      { tag: Tags.SpecificCharacterSet, vr: 'CS', value: 'ISO_IR 192' },
      { tag: Tags.PatientName, vr: 'PN', value: utf8('Yamada^Tarou=山田^太郎=やまだ^たろう') },
      { tag: tag(0x0008, 0x0090), vr: 'PN', value: utf8('=山田') },
      { tag: tag(0x0008, 0x1050), vr: 'PN', value: utf8('Doe^John\\\\Roe^Jane=^') },
      { tag: tag(0x0008, 0x1060), vr: 'PN', value: '' },
    ]);
    expect(out['00100010'].Value).toEqual([{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }]);
    expect(out['00080090'].Value).toEqual([{ Ideographic: '山田' }]);
    expect(out['00081050'].Value).toEqual([{ Alphabetic: 'Doe^John' }, null, { Alphabetic: 'Roe^Jane', Ideographic: '^' }]);
    expect(out['00081060']).toEqual({ vr: 'PN' });
  });

  it('reads Latin-1 text when no character set names UTF-8', () => {
    const out = json([...base(), { tag: Tags.PatientName, vr: 'PN', value: latin1('Müller^Jörg') }]);
    expect(out['00100010'].Value).toEqual([{ Alphabetic: 'Müller^Jörg' }]);
  });

  it('writes DS and IS as numbers, entries that are not numbers as null', () => {
    const out = json([
      ...base(),
      { tag: Tags.ImagePositionPatient, vr: 'DS', value: ' -12.5\\3e2\\.25 ' },
      { tag: Tags.PixelSpacing, vr: 'DS', value: '0.5\\abc' },
      { tag: Tags.WindowCenter, vr: 'DS', value: '40\\\\1e999' },
      { tag: Tags.InstanceNumber, vr: 'IS', value: '+7' },
      { tag: tag(0x0020, 0x0012), vr: 'IS', value: '1.5\\-3' },
    ]);
    expect(out['00200032'].Value).toEqual([-12.5, 300, 0.25]);
    expect(out['00280030'].Value).toEqual([0.5, null]);
    expect(out['00281050'].Value).toEqual([40, null, null]);
    expect(out['00200013'].Value).toEqual([7]);
    expect(out['00200012'].Value).toEqual([null, -3]);
  });

  it('trims text as each VR says and keeps LT, ST, UT, UR whole', () => {
    const out = json([
      ...base(),
      { tag: tag(0x0008, 0x0008), vr: 'CS', value: 'ORIGINAL \\ PRIMARY' },
      { tag: tag(0x0008, 0x0070), vr: 'LO', value: '  ACME  ' },
      { tag: tag(0x0020, 0x4000), vr: 'LT', value: '  two\\lines  ' },
      { tag: tag(0x0008, 0x0081), vr: 'ST', value: 'a\\b' },
      { tag: tag(0x0008, 0x0019), vr: 'UI', value: '1.2.3' }, // padded with a NUL to 6 bytes
      { tag: tag(0x0008, 0x1010), vr: 'SH', value: '\\x' },
      { tag: tag(0x0008, 0x1040), vr: 'LO', value: '    ' },
      { tag: tag(0x0008, 0x0050), vr: 'SH', value: '' },
    ]);
    expect(out['00080008'].Value).toEqual(['ORIGINAL', 'PRIMARY']);
    expect(out['00080070'].Value).toEqual(['ACME']);
    expect(out['00204000'].Value).toEqual(['  two\\lines']);
    expect(out['00080081'].Value).toEqual(['a\\b']);
    expect(out['00080019'].Value).toEqual(['1.2.3']);
    expect(out['00081010'].Value).toEqual([null, 'x']);
    expect(out['00081040']).toEqual({ vr: 'LO' });
    expect(out['00080050']).toEqual({ vr: 'SH' });
  });

  for (const ts of [ExplicitLittle, ExplicitBig]) {
    const le = ts === ExplicitLittle;
    it(`reads binary numbers, AT, SV and UV (${le ? 'little' : 'big'} endian)`, () => {
      const out = json(
        [
          ...base(),
          { tag: Tags.Rows, vr: 'US', value: [512, 65535] },
          { tag: Tags.PixelPaddingValue, vr: 'SS', value: -2000 },
          { tag: tag(0x0018, 0x9219), vr: 'SS', value: [-1, 2] },
          { tag: tag(0x0028, 0x0009), vr: 'AT', value: atValue([0x00181063, 0x00540080], le) },
          { tag: tag(0x0018, 0x1310), vr: 'UL', value: [4294967295] },
          { tag: tag(0x0018, 0x9101), vr: 'SL', value: [-123456] },
          { tag: tag(0x0018, 0x9087), vr: 'FD', value: [1000.5, Number.NaN] },
          { tag: tag(0x0018, 0x9089), vr: 'FL', value: [0.25, Number.POSITIVE_INFINITY] },
          { tag: tag(0x0040, 0xa162), vr: 'SV', value: int64([-5n, -(2n ** 60n)], true, le) },
          { tag: tag(0x0040, 0xa163), vr: 'UV', value: int64([2n ** 53n - 1n, 2n ** 64n - 1n], false, le) },
        ],
        ts,
      );
      expect(out['00280010'].Value).toEqual([512, 65535]);
      expect(out['00280120'].Value).toEqual([-2000]);
      expect(out['00189219'].Value).toEqual([-1, 2]);
      expect(out['00280009']).toEqual({ vr: 'AT', Value: ['00181063', '00540080'] });
      expect(out['00181310'].Value).toEqual([4294967295]);
      expect(out['00189101'].Value).toEqual([-123456]);
      expect(out['00189087'].Value).toEqual([1000.5, null]);
      expect(out['00189089'].Value).toEqual([0.25, null]);
      expect(out['0040A162'].Value).toEqual([-5, '-1152921504606846976']);
      expect(out['0040A163'].Value).toEqual([9007199254740991, '18446744073709551615']);
    });

    it(`writes binary values as little-endian base64 or a BulkDataURI (${le ? 'little' : 'big'} endian)`, () => {
      const words = new Uint16Array([0x0102, 0x0304, 0xa0b0]);
      const ow = new Uint8Array(words.buffer);
      const elements: WriteElement[] = [
        ...base(),
        { tag: tag(0x0028, 0x1201), vr: 'OW', value: ow },
        { tag: tag(0x0042, 0x0011), vr: 'OB', value: new Uint8Array([1, 2, 3]) },
        { tag: tag(0x0009, 0x1001), vr: 'UN', value: new Uint8Array([9, 8]) },
        { tag: tag(0x0028, 0x1202), vr: 'OW', value: new Uint8Array(0) },
      ];
      const inline = json(elements, ts);
      expect(inline['00281201']).toEqual({ vr: 'OW', InlineBinary: Buffer.from([2, 1, 4, 3, 0xb0, 0xa0]).toString('base64') });
      expect(inline['00420011']).toEqual({ vr: 'OB', InlineBinary: Buffer.from([1, 2, 3, 0]).toString('base64') });
      expect(inline['00091001']).toEqual({ vr: 'UN', InlineBinary: Buffer.from([9, 8]).toString('base64') });
      expect(inline['00281202']).toEqual({ vr: 'OW' });
      const ds = parseDicom(writeDicom(elements, { transferSyntax: ts })).dataset;
      const bulk = datasetJson(ds, { bulkThreshold: 4, bulkDataUri: (p) => `bulk/${p}` });
      expect(bulk['00281201']).toEqual({ vr: 'OW', BulkDataURI: 'bulk/00281201' });
      expect(bulk['00420011'].InlineBinary).toBeDefined(); // 4 bytes: not above the threshold
      expect([...bulkValue(ds, '00281201')!]).toEqual([2, 1, 4, 3, 0xb0, 0xa0]);
      expect(bulkValue(ds, '00281203')).toBeUndefined();
      expect(bulkValue(ds, 'not a path')).toBeUndefined();
    });
  }

  it('gives Pixel Data a BulkDataURI when it can, else leaves it out', () => {
    const pixels = new Uint8Array(new Uint16Array([1, 2, 3, 4]).buffer);
    const elements: WriteElement[] = [
      ...base(),
      { tag: Tags.BitsAllocated, vr: 'US', value: 16 },
      { tag: Tags.PixelData, vr: 'OW', value: pixels },
      { tag: tag(0xfffc, 0xfffc), vr: 'OB', value: new Uint8Array(2) },
    ];
    expect(json(elements)['7FE00010']).toBeUndefined();
    const out = json(elements, ExplicitLittle, { bulkDataUri: (p: string) => `/bulk/${p}`, bulkThreshold: 1 << 20 });
    expect(out['7FE00010']).toEqual({ vr: 'OW', BulkDataURI: '/bulk/7FE00010' });
    expect(out.FFFCFFFC).toEqual({ vr: 'OB', InlineBinary: 'AAA=' }); // read past Pixel Data
    const buf = writeDicom(base(), {
      encapsulated: [new Uint8Array([1, 2, 3, 4]), new Uint8Array([5, 6])],
      transferSyntax: '1.2.840.10008.1.2.4.70',
    });
    const ds = parseDicom(buf).dataset;
    expect(datasetJson(ds, { bulkDataUri: (p) => p })['7FE00010']).toEqual({ vr: 'OB', BulkDataURI: '7FE00010' });
    // The items as stored: an empty offset table, then the two fragments.
    expect([...bulkValue(ds, '7FE00010')!]).toEqual([
      0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0x00, 0xe0, 4, 0, 0, 0, 1, 2, 3, 4, 0xfe, 0xff, 0x00, 0xe0, 2, 0, 0, 0, 5, 6,
    ]);
  });

  for (const ts of [ExplicitLittle, ImplicitLittle, ExplicitBig, DeflatedExplicitLittle]) {
    it(`writes sequences as nested objects with paths for their bulk data (${ts})`, () => {
      const elements: WriteElement[] = [
        ...base(),
        {
          tag: tag(0x0008, 0x1115),
          vr: 'SQ',
          value: [
            [{ tag: Tags.SeriesInstanceUID, vr: 'UI', value: '1.2.3.5' }],
            [],
            [
              { tag: tag(0x0028, 0x1201), vr: 'OW', value: new Uint8Array([1, 0, 2, 0]) },
              { tag: tag(0x0008, 0x1140), vr: 'SQ', value: [[{ tag: Tags.SOPInstanceUID, vr: 'UI', value: '9.8' }]] },
            ],
          ],
        },
        { tag: tag(0x0008, 0x1111), vr: 'SQ', value: [] },
      ];
      const ds = parseDicom(writeDicom(elements, { transferSyntax: ts })).dataset;
      const out = datasetJson(ds, { bulkThreshold: 0, bulkDataUri: (p) => `u:${p}` });
      expect(out['00081115']).toEqual({
        vr: 'SQ',
        Value: [
          { '0020000E': { vr: 'UI', Value: ['1.2.3.5'] } },
          {},
          {
            '00081140': { vr: 'SQ', Value: [{ '00080018': { vr: 'UI', Value: ['9.8'] } }] },
            '00281201': { vr: 'OW', BulkDataURI: 'u:00081115/2/00281201' },
          },
        ],
      });
      expect(out['00081111']).toEqual({ vr: 'SQ' });
      expect([...bulkValue(ds, '00081115/2/00281201')!]).toEqual([1, 0, 2, 0]);
      expect(bulkValue(ds, '00081115/5/00281201')).toBeUndefined();
    });
  }

  it('takes VRs of Implicit VR elements from the dictionary', () => {
    const out = json(
      [
        ...base(),
        { tag: tag(0x0008, 0x0070), vr: 'LO', value: 'ACME' },
        { tag: tag(0x0018, 0x1151), vr: 'IS', value: '250' },
        { tag: Tags.PixelRepresentation, vr: 'US', value: 1 },
        { tag: tag(0x0028, 0x0106), vr: 'SS', value: -5 },
        { tag: tag(0x0009, 0x0010), vr: 'LO', value: 'ACME 1.0' },
        { tag: tag(0x0009, 0x1001), vr: 'DS', value: '1.5' },
        { tag: tag(0x6000, 0x0010), vr: 'US', value: 4 },
        { tag: tag(0x0071, 0x0000), vr: 'UL', value: 4 },
      ],
      ImplicitLittle,
    );
    expect(out['00080070']).toEqual({ vr: 'LO', Value: ['ACME'] });
    expect(out['00181151']).toEqual({ vr: 'IS', Value: [250] });
    expect(out['00280106']).toEqual({ vr: 'SS', Value: [-5] }); // 'US or SS', signed by PixelRepresentation
    expect(out['00090010']).toEqual({ vr: 'LO', Value: ['ACME 1.0'] });
    expect(out['00091001']).toEqual({ vr: 'UN', InlineBinary: Buffer.from('1.5 ').toString('base64') });
    expect(out['60000010']).toEqual({ vr: 'US', Value: [4] });
    expect(out['00710000']).toBeUndefined();
  });
});

/** An Implicit VR bare dataset from raw elements: [tag, value bytes or undefined length]. */
function implicit(parts: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([0x08, 0x00, 0x18, 0x00, 2, 0, 0, 0, 0x31, 0x00]), ...parts]);
}
const el = (t: number, length: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(t >>> 16, 0);
  b.writeUInt16LE(t & 0xffff, 2);
  b.writeUInt32LE(length >>> 0, 4);
  return b;
};
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQ_END = 0xfffee0dd;
const REF_SERIES = 0x00081115;

describe('sequences kept as bytes by the parser', () => {
  it('parses undefined-length items inside a defined-length Implicit VR sequence', () => {
    const inner = Buffer.concat([el(ITEM, -1), el(Tags.SeriesInstanceUID, 4), Buffer.from('1.23'), el(ITEM_END, 0), el(ITEM, 0)]);
    const buf = implicit([el(REF_SERIES, inner.length), inner]);
    const out = datasetJson(parseDicom(buf).dataset);
    expect(out['00081115']).toEqual({ vr: 'SQ', Value: [{ '0020000E': { vr: 'UI', Value: ['1.23'] } }, {}] });
  });

  it('parses undefined-length sequences of the dictionary', () => {
    const buf = implicit([el(REF_SERIES, -1), el(ITEM, 12), el(Tags.Modality, 4), Buffer.from('MR  '), el(SEQ_END, 0)]);
    expect(datasetJson(parseDicom(buf).dataset)['00081115']).toEqual({ vr: 'SQ', Value: [{ '00080060': { vr: 'CS', Value: ['MR'] } }] });
  });

  const bad: [string, Buffer][] = [
    ['an item that is not terminated', implicit([el(REF_SERIES, 16), el(ITEM, -1), el(Tags.Modality, 0)])],
    ['an item longer than its sequence', implicit([el(REF_SERIES, 8), el(ITEM, 0x7ffffff0)])],
    ['an element longer than its item', implicit([el(REF_SERIES, 16), el(ITEM, 8), el(Tags.Modality, 0xfffffff0)])],
    ['no item tag', implicit([el(REF_SERIES, 8), el(Tags.Modality, 0)])],
    ['a sequence cut short', implicit([el(REF_SERIES, 6), Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0])])],
  ];
  for (const [name, buf] of bad) {
    it(`refuses ${name} with a DicomParseError`, () => {
      const ds = parseDicom(buf).dataset;
      expect(() => datasetJson(ds)).toThrow(DicomParseError);
    });
  }

  it('refuses sequences nested deeper than the parser allows', () => {
    // 40 levels of defined-length Implicit VR sequences, each parsed only when reached.
    let body = Buffer.concat([el(Tags.Modality, 2), Buffer.from('CT')]);
    for (let i = 0; i < 40; i++) {
      const item = Buffer.concat([el(ITEM, body.length), body]);
      body = Buffer.concat([el(REF_SERIES, item.length), item]);
    }
    const ds = parseDicom(implicit([body])).dataset;
    expect(() => datasetJson(ds)).toThrow(/nested deeper than 16/);
  });
});
