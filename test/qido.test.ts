/**
 * The QIDO-RS engine over records written out by hand: every matching rule with the studies,
 * series and instances it must answer (worked out from the records below, not by the engine),
 * the DICOM JSON of each level, paging, and hostile parameters, which must all be 400s.
 */
import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { jsonAttribute, personNameJson } from '../src/dicomweb/dicomJson.js';
import {
  MAX_INCLUDE_FIELDS,
  parseQido,
  type QidoLevel,
  type QidoQuery,
  queryInstances,
  queryInstancesPaged,
  querySeries,
  queryStudies,
  wildcardMatch,
} from '../src/dicomweb/qido.js';
import type { InstanceFilter, InstanceRecord, SeriesRecord } from '../src/dicomweb/records.js';

const BASE = 'http://pacs.example/dicom-web';
const ctx = { retrieveBase: `${BASE}/` };

const blank: Omit<SeriesRecord, 'seriesInstanceUid'> = {
  studyInstanceUid: null,
  patientName: null,
  patientId: null,
  patientBirthDate: null,
  patientSex: null,
  studyDate: null,
  studyTime: null,
  accessionNumber: null,
  referringPhysicianName: null,
  studyId: null,
  studyDescription: null,
  modality: null,
  seriesNumber: null,
  seriesDescription: null,
  seriesDate: null,
  seriesTime: null,
  instances: 0,
  frames: 0,
  rows: 0,
  columns: 0,
};

const S1 = '1.2.3.1';
const S2 = '1.2.3.2';
const S3 = '1.2.3.3';
const study1 = {
  studyInstanceUid: S1,
  patientName: 'Doe^Jane',
  patientId: 'P1',
  patientBirthDate: '19800101',
  patientSex: 'F',
  studyDate: '20240102',
  studyTime: '101500',
  accessionNumber: 'ACC1',
  referringPhysicianName: 'House^Gregory',
  studyId: 'ST1',
  studyDescription: 'Chest CT',
};
const study2 = {
  studyInstanceUid: S2,
  patientName: 'Roe^Rick',
  patientId: 'P2',
  patientSex: 'M',
  studyDate: '2025.06.10', // the old form, read as 20250610
  studyTime: '083000.5',
  accessionNumber: 'ACC2',
  referringPhysicianName: 'Chen^Li=陳^力',
  studyDescription: 'Head',
};
const study3 = { studyInstanceUid: S3, patientName: "O'Brien^Mary^^", patientId: 'P3', studyDescription: 'Knee' };

const SERIES: SeriesRecord[] = [
  { ...blank, ...study1, seriesInstanceUid: `${S1}.1`, modality: 'CT', seriesNumber: 2, seriesDescription: 'Axial', instances: 100, frames: 100 },
  { ...blank, ...study1, seriesInstanceUid: `${S1}.2`, modality: 'PT', seriesNumber: 1, seriesDescription: 'PET', instances: 50, frames: 50 },
  {
    ...blank,
    ...study2,
    seriesInstanceUid: `${S2}.1`,
    modality: 'MR',
    seriesNumber: 1,
    seriesDescription: 'T1',
    seriesDate: '20250610',
    seriesTime: '0830',
    instances: 20,
    frames: 20,
  },
  { ...blank, ...study3, seriesInstanceUid: `${S3}.1`, modality: 'MR', seriesDescription: 'PD', instances: 3, frames: 3 },
  // Not addressable: no study UID, or a series UID that is not one.
  { ...blank, seriesInstanceUid: '1.2.3.9.1', patientName: 'Doe^Jane', modality: 'CT' },
  { ...blank, ...study1, seriesInstanceUid: '1.2.abc', modality: 'CT' },
];

const studyUids = (r: { results: Record<string, { Value?: unknown[] }>[] }): unknown[] => r.results.map((o) => o['0020000D']?.Value?.[0]);
const seriesUids = (r: { results: Record<string, { Value?: unknown[] }>[] }): unknown[] => r.results.map((o) => o['0020000E']?.Value?.[0]);

const opts = { maxLimit: 100 };
const studies = (query: Record<string, string | string[]>) => queryStudies(SERIES, parseQido('study', query, opts), ctx);
const series = (query: Record<string, string | string[]>, fixed?: { StudyInstanceUID?: string }) =>
  querySeries(SERIES, parseQido('series', query, { ...opts, fixed }), ctx);

/** The 400 a query must give, with its message. */
function refusal(level: QidoLevel, query: Record<string, string | string[] | undefined>, options: Parameters<typeof parseQido>[2] = opts): string {
  try {
    parseQido(level, query, options);
  } catch (err) {
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(400);
    return (err as CircusError).message;
  }
  throw new Error(`accepted: ${JSON.stringify(query)}`);
}

describe('DICOM JSON', () => {
  it('writes person names as component groups, numbers as numbers, and empty values without Value', () => {
    expect(personNameJson('Chen^Li=陳^力=')).toEqual({ Alphabetic: 'Chen^Li', Ideographic: '陳^力' });
    expect(personNameJson('==')).toBeNull();
    expect(jsonAttribute('PN', 'Doe^Jane')).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] });
    expect(jsonAttribute('IS', 12)).toEqual({ vr: 'IS', Value: [12] });
    expect(jsonAttribute('US', '512')).toEqual({ vr: 'US', Value: [512] });
    expect(jsonAttribute('CS', 'ORIGINAL\\PRIMARY')).toEqual({ vr: 'CS', Value: ['ORIGINAL', 'PRIMARY'] });
    expect(jsonAttribute('LO', '')).toEqual({ vr: 'LO' });
    expect(jsonAttribute('DA', null)).toEqual({ vr: 'DA' });
    expect(jsonAttribute('CS', [])).toEqual({ vr: 'CS' });
  });
});

describe('wildcard matching', () => {
  it('* is any run of characters (none included), ? exactly one', () => {
    expect(wildcardMatch('Doe*', 'Doe^Jane')).toBe(true);
    expect(wildcardMatch('*Jane', 'Doe^Jane')).toBe(true);
    expect(wildcardMatch('D?e^J*e', 'Doe^Jane')).toBe(true);
    expect(wildcardMatch('D?e', 'De')).toBe(false);
    expect(wildcardMatch('Doe*', 'Do')).toBe(false);
    expect(wildcardMatch('a**b', 'ab')).toBe(true);
    expect(wildcardMatch('', '')).toBe(true);
    expect(wildcardMatch('?', '')).toBe(false);
    expect(wildcardMatch('陳*', '陳^力')).toBe(true);
  });

  it('a pattern of many stars and question marks against a long value ends at once, unmatched', () => {
    const started = performance.now();
    expect(wildcardMatch(`${'*a'.repeat(500)}b`, 'a'.repeat(1000))).toBe(false);
    expect(wildcardMatch('*?'.repeat(500), 'x'.repeat(400))).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('parseQido', () => {
  it('takes keys by keyword and by tag (either case), includefield lists, fuzzymatching, limit and offset', () => {
    const q = parseQido(
      'series',
      { PatientName: 'Doe*', '0020000d': '1.2.3.1', includefield: ['00081030,SeriesDate', 'all'], fuzzymatching: 'false', limit: '5', offset: '10' },
      opts,
    );
    expect(q.matches.map((m) => [m.attribute.keyword, m.raw, m.universal])).toEqual([
      ['PatientName', 'Doe*', false],
      ['StudyInstanceUID', '1.2.3.1', false],
    ]);
    expect(q.matches[1].uids).toEqual(['1.2.3.1']);
    expect(q.include.map((a) => a.keyword)).toEqual(['StudyDescription', 'SeriesDate']);
    expect(q).toMatchObject({ level: 'series', includeAll: true, fuzzy: false, limit: 5, offset: 10, warnings: [] });
  });

  it('pages by the default limit, cuts a larger limit to the most with a warning', () => {
    expect(parseQido('study', {}, { maxLimit: 100, defaultLimit: 20 }).limit).toBe(20);
    expect(parseQido('study', {}, { maxLimit: 100 }).limit).toBe(100);
    const q = parseQido('study', { limit: '5000' }, { maxLimit: 100 });
    expect(q.limit).toBe(100);
    expect(q.warnings).toEqual(['The limit 5000 is more than this server gives at once; at most 100 results are returned']);
  });

  it('ignores keys on attributes it does not keep, with a warning, and the parameters the HTTP layer reads', () => {
    const q = parseQido('series', { BodyPartExamined: 'CHEST', '00091001': 'x', token: 'abc' }, { ...opts, ignore: ['token'] });
    expect(q.matches).toEqual([]);
    expect(q.warnings).toEqual(['The following attributes were not supported for matching and are ignored: BodyPartExamined, 00091001']);
  });

  it('puts the UIDs of the path in as keys, and refuses them given again', () => {
    const q = parseQido('instance', {}, { ...opts, fixed: { StudyInstanceUID: S1, SeriesInstanceUID: `${S1}.1` } });
    expect(q.matches.map((m) => [m.attribute.keyword, m.uids])).toEqual([
      ['StudyInstanceUID', [S1]],
      ['SeriesInstanceUID', [`${S1}.1`]],
    ]);
    expect(refusal('series', { StudyInstanceUID: S2 }, { ...opts, fixed: { StudyInstanceUID: S1 } })).toBe(
      'StudyInstanceUID is given by the path; the query must not give it again',
    );
    expect(refusal('series', {}, { ...opts, fixed: { StudyInstanceUID: '1.2.x' } })).toMatch(/StudyInstanceUID of the path is not a valid UID/);
  });
});

describe('study queries', () => {
  it('without keys: every addressable study, newest first, those without a date last, with the study return attributes', () => {
    const r = studies({});
    expect(studyUids(r)).toEqual([S2, S1, S3]);
    expect(r.total).toBe(3);
    expect(r.truncated).toBeUndefined();
    const s1 = r.results[1];
    expect(s1).toEqual({
      '00080020': { vr: 'DA', Value: ['20240102'] },
      '00080030': { vr: 'TM', Value: ['101500'] },
      '00080050': { vr: 'SH', Value: ['ACC1'] },
      '00080056': { vr: 'CS', Value: ['ONLINE'] },
      '00080061': { vr: 'CS', Value: ['CT', 'PT'] },
      '00080090': { vr: 'PN', Value: [{ Alphabetic: 'House^Gregory' }] },
      '00081030': { vr: 'LO', Value: ['Chest CT'] },
      '00081190': { vr: 'UR', Value: [`${BASE}/studies/${S1}`] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] },
      '00100020': { vr: 'LO', Value: ['P1'] },
      '00100030': { vr: 'DA', Value: ['19800101'] },
      '00100040': { vr: 'CS', Value: ['F'] },
      '0020000D': { vr: 'UI', Value: [S1] },
      '00200010': { vr: 'SH', Value: ['ST1'] },
      '00201206': { vr: 'IS', Value: [2] },
      '00201208': { vr: 'IS', Value: [150] },
    });
    // Keys in tag order, as DICOM JSON writes them.
    expect(Object.keys(s1)).toEqual([...Object.keys(s1)].sort());
    // Empty attributes are there, without Value.
    expect(r.results[2]['00080020']).toEqual({ vr: 'DA' });
    expect(r.results[2]['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: "O'Brien^Mary^^" }] });
    expect(r.results[0]['00080090']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Chen^Li', Ideographic: '陳^力' }] });
  });

  it('person names: whole value, case-insensitive; wildcards; any component group; trailing ^ ignored', () => {
    expect(studyUids(studies({ PatientName: 'doe^jane' }))).toEqual([S1]);
    expect(studyUids(studies({ PatientName: 'Doe' }))).toEqual([]);
    expect(studyUids(studies({ PatientName: 'Doe*' }))).toEqual([S1]);
    expect(studyUids(studies({ PatientName: '*E^*' }))).toEqual([S2, S1]);
    expect(studyUids(studies({ PatientName: '?oe^*' }))).toEqual([S2, S1]);
    expect(studyUids(studies({ PatientName: "o'brien^mary" }))).toEqual([S3]);
    expect(studyUids(studies({ PatientName: "O'Brien^Mary^" }))).toEqual([S3]);
    expect(studyUids(studies({ ReferringPhysicianName: '陳^力' }))).toEqual([S2]);
    expect(studyUids(studies({ ReferringPhysicianName: '陳*' }))).toEqual([S2]);
  });

  it('the SQL-looking name is a name like any other: it matches nobody', () => {
    expect(studies({ PatientName: "'; DROP TABLE files;--" })).toEqual({ results: [], total: 0 });
  });

  it('fuzzy matching (only with fuzzymatching=true): every word of the key begins a word of the name, any case, any order', () => {
    expect(studyUids(studies({ PatientName: 'jan do', fuzzymatching: 'true' }))).toEqual([S1]);
    expect(studyUids(studies({ PatientName: 'jan do' }))).toEqual([]);
    expect(studyUids(studies({ PatientName: 'ri', fuzzymatching: 'true' }))).toEqual([S2]);
    expect(studyUids(studies({ PatientName: 'MAR*', fuzzymatching: 'true' }))).toEqual([S3]);
    expect(studyUids(studies({ PatientName: 'ane', fuzzymatching: 'true' }))).toEqual([]);
    expect(studyUids(studies({ PatientName: '^', fuzzymatching: 'true' }))).toEqual([S2, S1, S3]);
    expect(parseQido('study', { PatientID: 'P1', fuzzymatching: 'true' }, opts).warnings).toEqual([
      'fuzzymatching applies to person names only, and none is matched',
    ]);
  });

  it('text other than names is case-sensitive', () => {
    expect(studyUids(studies({ StudyDescription: 'chest ct' }))).toEqual([]);
    expect(studyUids(studies({ StudyDescription: 'Chest CT' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyDescription: 'Chest*' }))).toEqual([S1]);
    expect(studyUids(studies({ AccessionNumber: 'ACC?' }))).toEqual([S2, S1]);
    expect(studyUids(studies({ PatientSex: 'f' }))).toEqual([]);
    expect(studyUids(studies({ PatientSex: 'F' }))).toEqual([S1]);
  });

  it('UID lists, separated by backslash or comma', () => {
    expect(studyUids(studies({ StudyInstanceUID: `${S1}\\${S3}` }))).toEqual([S1, S3]);
    expect(studyUids(studies({ StudyInstanceUID: `${S3},${S2}` }))).toEqual([S2, S3]);
    expect(studyUids(studies({ StudyInstanceUID: '1.2.3.4' }))).toEqual([]);
  });

  it('date ranges: both ends included; open at either end; a single date; records without a date never match', () => {
    expect(studyUids(studies({ StudyDate: '20240101-20241231' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyDate: '20240102-20250610' }))).toEqual([S2, S1]);
    expect(studyUids(studies({ StudyDate: '20250101-' }))).toEqual([S2]);
    expect(studyUids(studies({ StudyDate: '-20241231' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyDate: '20240102' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyDate: '20250610' }))).toEqual([S2]);
    expect(studyUids(studies({ PatientBirthDate: '-19991231' }))).toEqual([S1]);
  });

  it('time ranges: a time that stops early covers what it leaves out; date and time are matched each on its own', () => {
    expect(studyUids(studies({ StudyTime: '1000-1100' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyTime: '08' }))).toEqual([S2]);
    expect(studyUids(studies({ StudyTime: '0830' }))).toEqual([S2]);
    expect(studyUids(studies({ StudyTime: '083000.4-083000.6' }))).toEqual([S2]);
    expect(studyUids(studies({ StudyTime: '1015' }))).toEqual([S1]);
    expect(studyUids(studies({ StudyTime: '1016' }))).toEqual([]);
    expect(studyUids(studies({ StudyTime: '-0900' }))).toEqual([S2]);
    // Not one date-time range: S1's time is outside 08:00-09:00 whatever its date.
    expect(studyUids(studies({ StudyDate: '20240101-20250610', StudyTime: '08-09' }))).toEqual([S2]);
  });

  it('universal matching returns the attribute and filters nothing', () => {
    expect(studyUids(studies({ StudyDate: '' }))).toEqual([S2, S1, S3]);
    expect(studyUids(studies({ PatientName: '*' }))).toEqual([S2, S1, S3]);
  });

  it('ModalitiesInStudy: a study matches when any of its series does; lists of modalities', () => {
    expect(studyUids(studies({ ModalitiesInStudy: 'PT' }))).toEqual([S1]);
    expect(studyUids(studies({ ModalitiesInStudy: 'MR' }))).toEqual([S2, S3]);
    expect(studyUids(studies({ ModalitiesInStudy: 'CT\\MR' }))).toEqual([S2, S1, S3]);
    expect(studyUids(studies({ ModalitiesInStudy: 'CT,PT' }))).toEqual([S1]);
    expect(studyUids(studies({ ModalitiesInStudy: 'US' }))).toEqual([]);
  });

  it('keys together must all match', () => {
    expect(studyUids(studies({ ModalitiesInStudy: 'MR', StudyDate: '20250101-' }))).toEqual([S2]);
    expect(studyUids(studies({ ModalitiesInStudy: 'PT', StudyDate: '20250101-' }))).toEqual([]);
    expect(studyUids(studies({ ModalitiesInStudy: 'MR', PatientID: 'P3' }))).toEqual([S3]);
  });

  it('pages with limit and offset, saying when more are left', () => {
    expect(studies({ limit: '1', offset: '1' })).toMatchObject({ total: 3, truncated: true });
    expect(studyUids(studies({ limit: '1', offset: '1' }))).toEqual([S1]);
    expect(studyUids(studies({ limit: '2', offset: '1' }))).toEqual([S1, S3]);
    expect(studies({ limit: '2', offset: '1' }).truncated).toBeUndefined();
    expect(studies({ offset: '3' })).toEqual({ results: [], total: 3 });
  });

  it('includefield: attributes kept are returned; those not kept, and series attributes, are not', () => {
    const [r] = studies({ StudyInstanceUID: S1, includefield: 'TimezoneOffsetFromUTC,00091001,Modality' }).results;
    expect(Object.keys(r)).not.toContain('00080201');
    expect(Object.keys(r)).not.toContain('00091001');
    expect(Object.keys(r)).not.toContain('00080060');
    expect(Object.keys(r)).toHaveLength(16);
  });
});

describe('series queries', () => {
  it('within a study: its series by SeriesNumber, with series attributes and StudyInstanceUID, not the patient', () => {
    const r = series({}, { StudyInstanceUID: S1 });
    expect(seriesUids(r)).toEqual([`${S1}.2`, `${S1}.1`]);
    expect(r.results[0]).toEqual({
      '00080060': { vr: 'CS', Value: ['PT'] },
      '0008103E': { vr: 'LO', Value: ['PET'] },
      '00081190': { vr: 'UR', Value: [`${BASE}/studies/${S1}/series/${S1}.2`] },
      '0020000D': { vr: 'UI', Value: [S1] },
      '0020000E': { vr: 'UI', Value: [`${S1}.2`] },
      '00200011': { vr: 'IS', Value: [1] },
      '00201209': { vr: 'IS', Value: [50] },
    });
  });

  it('across studies: in study order, each with its study attributes; series without a number last in their study', () => {
    const r = series({});
    expect(seriesUids(r)).toEqual([`${S2}.1`, `${S1}.2`, `${S1}.1`, `${S3}.1`]);
    expect(r.results[0]['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Roe^Rick' }] });
    expect(r.results[0]['00080061']).toEqual({ vr: 'CS', Value: ['MR'] });
    expect(r.results[3]['00200011']).toEqual({ vr: 'IS' });
  });

  it('matches series keys and study keys, and returns the attributes asked for', () => {
    expect(seriesUids(series({ Modality: 'MR' }))).toEqual([`${S2}.1`, `${S3}.1`]);
    expect(seriesUids(series({ SeriesNumber: '1' }))).toEqual([`${S2}.1`, `${S1}.2`]);
    expect(seriesUids(series({ SeriesNumber: '+2' }))).toEqual([`${S1}.1`]);
    expect(seriesUids(series({ PatientName: 'doe*', Modality: 'CT' }))).toEqual([`${S1}.1`]);
    expect(seriesUids(series({ SeriesTime: '0830-0831' }))).toEqual([`${S2}.1`]);
    expect(seriesUids(series({ ModalitiesInStudy: 'PT' }))).toEqual([`${S1}.2`, `${S1}.1`]);
    const withDate = series({ SeriesDate: '' }, { StudyInstanceUID: S2 });
    expect(withDate.results[0]['00080021']).toEqual({ vr: 'DA', Value: ['20250610'] });
    expect(series({}, { StudyInstanceUID: S2 }).results[0]['00080021']).toBeUndefined();
    const all = series({ includefield: 'all' }, { StudyInstanceUID: S2 }).results[0];
    expect(all['00080031']).toEqual({ vr: 'TM', Value: ['0830'] });
    expect(all['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Roe^Rick' }] });
    expect(all['00080018']).toBeUndefined();
  });

  it('a study that has no series here answers none', () => {
    expect(series({}, { StudyInstanceUID: '1.2.3.99' })).toEqual({ results: [], total: 0 });
  });
});

const inst = (series: string, n: number | null, sop: string): InstanceRecord => ({
  sopInstanceUid: sop,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  seriesInstanceUid: series,
  studyInstanceUid: null,
  instanceNumber: n,
  rows: 512,
  columns: 512,
  bitsAllocated: 16,
  numberOfFrames: n === 3 ? 4 : 1,
  transferSyntaxUid: '1.2.840.10008.1.2.1',
});
const bySeries = new Map(SERIES.map((s) => [s.seriesInstanceUid, s]));
const INSTANCES = [
  inst(`${S1}.1`, 2, `${S1}.1.20`),
  inst(`${S1}.1`, null, `${S1}.1.5`),
  inst(`${S1}.1`, 1, `${S1}.1.30`),
  inst(`${S1}.2`, 3, `${S1}.2.1`),
  inst(`${S2}.1`, 1, `${S2}.1.1`),
  inst('1.2.3.9.1', 1, '1.2.3.9.1.1'), // its series has no study: left out
].map((instance) => ({ instance, series: bySeries.get(instance.seriesInstanceUid)! }));
const sops = (r: { results: Record<string, { Value?: unknown[] }>[] }): unknown[] => r.results.map((o) => o['00080018']?.Value?.[0]);

/** A store that filters and pages as the header index does, over INSTANCES. */
function find(filter: InstanceFilter, p: { limit: number; offset: number }): { records: InstanceRecord[]; total: number } {
  const pass = INSTANCES.map((i) => i.instance).filter(
    (i) =>
      (filter.seriesUids === undefined || filter.seriesUids.includes(i.seriesInstanceUid)) &&
      (filter.sopInstanceUids === undefined || filter.sopInstanceUids.includes(i.sopInstanceUid)) &&
      (filter.sopClassUids === undefined || filter.sopClassUids.includes(i.sopClassUid ?? '')) &&
      (filter.instanceNumber === undefined || filter.instanceNumber === i.instanceNumber) &&
      (filter.numberOfFrames === undefined || filter.numberOfFrames === i.numberOfFrames),
  );
  pass.sort(
    (a, b) =>
      a.seriesInstanceUid.localeCompare(b.seriesInstanceUid) ||
      (a.instanceNumber ?? Infinity) - (b.instanceNumber ?? Infinity) ||
      a.sopInstanceUid.localeCompare(b.sopInstanceUid),
  );
  return { records: pass.slice(p.offset, p.offset + p.limit), total: pass.length };
}

describe('instance queries', () => {
  const q = (query: Record<string, string>, fixed?: QidoQuery['fixed']) => parseQido('instance', query, { ...opts, fixed });

  it('a series: its instances by InstanceNumber (those without last), with the instance return attributes', () => {
    const r = queryInstances(INSTANCES, q({}, { StudyInstanceUID: S1, SeriesInstanceUID: `${S1}.1` }), ctx);
    expect(sops(r)).toEqual([`${S1}.1.30`, `${S1}.1.20`, `${S1}.1.5`]);
    expect(r.results[0]).toEqual({
      '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
      '00080018': { vr: 'UI', Value: [`${S1}.1.30`] },
      '00080056': { vr: 'CS', Value: ['ONLINE'] },
      '00081190': { vr: 'UR', Value: [`${BASE}/studies/${S1}/series/${S1}.1/instances/${S1}.1.30`] },
      '0020000D': { vr: 'UI', Value: [S1] },
      '0020000E': { vr: 'UI', Value: [`${S1}.1`] },
      '00200013': { vr: 'IS', Value: [1] },
      '00280008': { vr: 'IS', Value: [1] },
      '00280010': { vr: 'US', Value: [512] },
      '00280011': { vr: 'US', Value: [512] },
      '00280100': { vr: 'US', Value: [16] },
    });
    expect(r.results[2]['00200013']).toEqual({ vr: 'IS' });
  });

  it('every instance: by series UID, each with its series and study attributes', () => {
    const r = queryInstances(INSTANCES, q({}), ctx);
    expect(sops(r)).toEqual([`${S1}.1.30`, `${S1}.1.20`, `${S1}.1.5`, `${S1}.2.1`, `${S2}.1.1`]);
    expect(r.results[3]['00080060']).toEqual({ vr: 'CS', Value: ['PT'] });
    expect(r.results[3]['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] });
    // The study's counts from the series given; with every series known, from all of them.
    expect(r.results[3]['00201206']).toEqual({ vr: 'IS', Value: [2] });
  });

  it('matches instance, series and study keys; the paged form gives the same answers', () => {
    const cases: [Record<string, string>, string[]][] = [
      [{ SOPInstanceUID: `${S1}.1.5\\${S2}.1.1` }, [`${S1}.1.5`, `${S2}.1.1`]],
      [{ InstanceNumber: '1' }, [`${S1}.1.30`, `${S2}.1.1`]],
      [{ NumberOfFrames: '4' }, [`${S1}.2.1`]],
      [{ Modality: 'CT' }, [`${S1}.1.30`, `${S1}.1.20`, `${S1}.1.5`]],
      [{ PatientName: 'roe^rick' }, [`${S2}.1.1`]],
      [{ ModalitiesInStudy: 'PT', InstanceNumber: '2' }, [`${S1}.1.20`]],
      [{ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4' }, []],
      [{ limit: '2', offset: '1' }, [`${S1}.1.20`, `${S1}.1.5`]],
    ];
    for (const [query, expected] of cases) {
      const inMemory = queryInstances(INSTANCES, q(query), { ...ctx, studySeries: SERIES });
      const paged = queryInstancesPaged(SERIES, q(query), ctx, find);
      expect(sops(inMemory), JSON.stringify(query)).toEqual(expected);
      expect(paged, JSON.stringify(query)).toEqual(inMemory);
    }
    expect(queryInstancesPaged(SERIES, q({ limit: '2', offset: '1' }), ctx, find)).toMatchObject({ total: 5, truncated: true });
  });

  it('the paged form hands the store the series that match and the instance keys, nothing it must not', () => {
    const seen: InstanceFilter[] = [];
    queryInstancesPaged(SERIES, q({ Modality: 'MR', SOPInstanceUID: `${S2}.1.1`, InstanceNumber: '1' }), ctx, (f, p) => {
      seen.push(f);
      expect(p).toEqual({ limit: 100, offset: 0 });
      return { records: [], total: 0 };
    });
    expect(seen).toEqual([{ seriesUids: [`${S2}.1`, `${S3}.1`], sopInstanceUids: [`${S2}.1.1`], instanceNumber: 1 }]);
    // No series matches: the store is not asked.
    expect(
      queryInstancesPaged(SERIES, q({ Modality: 'XA' }), ctx, () => {
        throw new Error('asked');
      }),
    ).toEqual({ results: [], total: 0 });
  });
});

describe('hostile parameters are 400s that say what is wrong', () => {
  it.each<[string, QidoLevel, Record<string, string | string[]>, RegExp]>([
    ['an SQL-looking key', 'study', { "'; DROP TABLE files;--": '1' }, /is neither an attribute keyword nor a tag/],
    ['an SQL-looking UID', 'study', { StudyInstanceUID: "1.2'; DROP TABLE files;--" }, /is not a UID/],
    ['a UID with letters', 'series', { SeriesInstanceUID: '1.2.abc' }, /"1.2.abc" is not a UID/],
    ['a UID with a leading zero', 'series', { SeriesInstanceUID: '1.02.3' }, /is not a UID/],
    ['a UID with wildcards', 'study', { StudyInstanceUID: '1.2.*' }, /no wildcards/],
    ['a UID list with an empty UID', 'study', { StudyInstanceUID: '1.2\\\\1.3' }, /"" is not a UID/],
    ['too many UIDs', 'study', { StudyInstanceUID: Array.from({ length: 1001 }, (_, i) => `1.${i}`).join('\\') }, /lists 1001 UIDs; at most 1000/],
    ['a date with dashes', 'study', { StudyDate: '2020-13-45' }, /one value or one range/],
    ['a month 13', 'study', { StudyDate: '20201345' }, /"20201345" is not a date of the calendar/],
    ['30 February', 'study', { StudyDate: '20200230' }, /not a date of the calendar/],
    ['a date range that ends before it begins', 'study', { StudyDate: '20201231-20200101' }, /ends before it begins/],
    ['a range without ends', 'study', { StudyDate: '-' }, /needs at least one end/],
    ['a date with a wildcard', 'study', { StudyDate: '2020*' }, /not wildcards/],
    ['a time of hour 25', 'study', { StudyTime: '2500' }, /not a time of day/],
    ['a time of odd length', 'study', { StudyTime: '101' }, /HH\[MM\[SS/],
    ['limit=-1', 'study', { limit: '-1' }, /limit must be a whole number, got "-1"/],
    ['limit=0', 'study', { limit: '0' }, /limit must be from 1/],
    ['limit=ten', 'study', { limit: 'ten' }, /limit must be a whole number/],
    ['offset=1e12', 'study', { offset: '1e12' }, /offset must be a whole number, got "1e12"/],
    ['offset beyond the bound', 'study', { offset: '1000000000000' }, /offset must be from 0 to 1000000000/],
    ['limit given twice', 'study', { limit: ['1', '2'] }, /"limit" is given 2 times/],
    ['a key given twice', 'study', { PatientName: ['A', 'B'] }, /"PatientName" is given 2 times/],
    ['a key by keyword and by tag', 'study', { PatientName: 'A', '00100010': 'B' }, /PatientName is given twice/],
    ['an unknown keyword', 'study', { PatientNames: 'A' }, /"PatientNames" is not an attribute this server knows/],
    ['an unknown parameter', 'study', { 'foo bar': '1' }, /neither an attribute keyword nor a tag/],
    ['a sequence path', 'study', { '00400275.00321060': 'X' }, /sequence path/],
    ['a sequence path in includefield', 'study', { includefield: '00400275.00321060' }, /sequence path/],
    ['an unknown includefield', 'study', { includefield: 'NotAnAttribute' }, /not an attribute this server knows/],
    ['10,000 includefields', 'study', { includefield: Array.from({ length: 10_000 }, () => '00100010') }, /names 10000 attributes; at most 256/],
    ['fuzzymatching=yes', 'study', { fuzzymatching: 'yes' }, /fuzzymatching must be true or false/],
    ['a series number that is not a number', 'series', { SeriesNumber: '1.5' }, /takes one whole number/],
    ['a count as a key', 'study', { NumberOfStudyRelatedSeries: '3' }, /returned, not matched/],
    ['a series key at the study level', 'study', { Modality: 'CT' }, /Modality is a series attribute.*ModalitiesInStudy/],
    ['an instance key at the series level', 'series', { SOPInstanceUID: '1.2' }, /SOPInstanceUID is an instance attribute/],
    ['a list of names', 'study', { PatientName: 'A\\B' }, /one person name, not a list/],
    ['a long name', 'study', { PatientName: '*'.repeat(5000) }, /5000 characters long; at most 1024/],
    ['control characters', 'study', { PatientID: 'P1\u0000' }, /control characters/],
    [
      'too many keys',
      'instance',
      Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`0009${String(i).padStart(4, '0')}`, 'x'])),
      /more than 64 matching keys/,
    ],
  ])('%s', (_what, level, query, message) => {
    expect(refusal(level, query)).toMatch(message);
  });

  it('a flood of wildcards within the bound is matched, quickly, against nothing', () => {
    expect(studies({ PatientName: '*?'.repeat(500) })).toEqual({ results: [], total: 0 });
    expect(studyUids(studies({ PatientName: '*'.repeat(1000) }))).toEqual([S2, S1, S3]);
  });

  it('at most MAX_INCLUDE_FIELDS includefields are taken', () => {
    expect(parseQido('study', { includefield: Array.from({ length: MAX_INCLUDE_FIELDS }, () => 'PatientID') }, opts).include).toHaveLength(1);
  });

  it('no string, as a key or a value, at any level, makes anything but a query or a 400', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const alphabet = ['0', '1', '9', '.', '-', '*', '?', '\\', ',', '^', '=', ' ', 'A', 'z', "'", ';', '%', '\u0000', '陳', '\ud800', '1e5'];
    const text = (): string => Array.from({ length: Math.floor(random() * 12) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    const keys = [
      'PatientName',
      'StudyDate',
      'StudyTime',
      'StudyInstanceUID',
      'SeriesNumber',
      'ModalitiesInStudy',
      'limit',
      'offset',
      'includefield',
      'fuzzymatching',
      '00100010',
      'SOPInstanceUID',
    ];
    let accepted = 0;
    let refused = 0;
    for (let n = 0; n < 3000; n++) {
      const level = (['study', 'series', 'instance'] as const)[n % 3];
      const key = random() < 0.8 ? keys[Math.floor(random() * keys.length)] : text();
      const query = { [key]: text(), fuzzymatching: random() < 0.5 ? 'true' : 'false' };
      try {
        const q = parseQido(level, query, opts);
        const r =
          level === 'study' ? queryStudies(SERIES, q, ctx) : level === 'series' ? querySeries(SERIES, q, ctx) : queryInstances(INSTANCES, q, ctx);
        expect(r.total).toBeGreaterThanOrEqual(0);
        accepted++;
      } catch (err) {
        expect(err, JSON.stringify(query)).toBeInstanceOf(CircusError);
        expect((err as CircusError).status).toBe(400);
        refused++;
      }
    }
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});
