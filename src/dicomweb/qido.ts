/**
 * The QIDO-RS query engine (PS3.18 8.3.4 and 10.6): the parameters of a search parsed and
 * checked (`parseQido`), then matched against the records a source keeps (`queryStudies`,
 * `querySeries`, `queryInstances`, `queryInstancesPaged`), answered as DICOM JSON. Pure: no
 * HTTP, no I/O; every refusal is a CircusError BAD_PARAMETER (400) naming what is wrong, so no
 * query string can make a 500.
 *
 * Matching (PS3.4 C.2.2.2), on the attributes the records keep (ATTRIBUTES below):
 * - Universal: an empty value, or `*` alone, matches everything and asks for the attribute.
 * - Single value: the whole value, case-sensitive, for text (LO, SH, CS). Person names (PN) are
 *   matched case-insensitively, against the whole name or any of its component groups
 *   (`Alphabetic=Ideographic=Phonetic`), trailing `^` ignored on both sides. Numbers (IS, US)
 *   equal as numbers.
 * - Wildcards `*` (any run of characters, none included) and `?` (one character), in text and
 *   person names (not in UIDs, dates, times or numbers: 400).
 * - UID lists: UIDs separated by `\` or `,`; one of them must be the record's.
 * - Value lists for code strings (Modality, ModalitiesInStudy, PatientSex): `CT\MR` or `CT,MR`
 *   matches either (an extension many archives share; CS values hold neither character).
 * - Dates (DA) `YYYYMMDD`, times (TM) `HH[MM[SS[.F{1,6}]]]`, each as one value or a range
 *   `A-B`, `A-` or `-B`, ends included. A time that stops early covers all it leaves out: `10`
 *   is 10:00:00 to 10:59:59.999999, so `StudyTime=1030` matches any time in that minute.
 *   StudyDate and StudyTime (SeriesDate and SeriesTime) given together are matched each on its
 *   own, not as one date-time range (PS3.4 C.2.2.2.5.1 leaves combined matching to negotiation).
 *   Records' dates in the old `YYYY.MM.DD` form and times in `HH:MM:SS` are read too.
 * - A record without a value for a key matches only universal matching.
 * - ModalitiesInStudy: a study matches when the modality of any of its series matches.
 * - Fuzzy matching (fuzzymatching=true) applies to person names only: the key is cut into words
 *   at `^`, `=`, `,` and spaces (wildcards dropped), and matches when every word begins some word
 *   of the name, case-insensitively, in any order (`jan do` matches `Doe^Jane`).
 * - Keys that are attributes this server does not keep (a valid tag or a known keyword) are
 *   ignored, with a warning in `QidoQuery.warnings` for the Warning header (PS3.18 8.3.4.4);
 *   such includefield attributes are simply not returned.
 *
 * Results are in a fixed order: studies newest first (StudyDate, then StudyTime, descending;
 * those without last), then StudyInstanceUID; series in their study's order, then SeriesNumber
 * (those without last), then SeriesInstanceUID; instances by SeriesInstanceUID, InstanceNumber
 * (those without last), then SOPInstanceUID (the order the header index pages them in, in SQL).
 * UIDs compare as plain strings. Records whose study or series UID is missing or not a valid
 * UID are left out: DICOMweb could not name them.
 */
import { badParameter } from '../core/errors.js';
import { isValidUid } from '../core/uid.js';
import { type DicomJson, type DicomJsonAttribute, jsonAttribute } from './dicomJson.js';
import type { InstanceFilter, InstanceRecord, SeriesRecord } from './records.js';

export type QidoLevel = 'study' | 'series' | 'instance';

/** How an attribute's key is matched. */
type MatchKind = 'text' | 'pn' | 'cs' | 'uid' | 'date' | 'time' | 'number' | 'none';

/** What a result is built from: its study (with every series the study has), series and instance. */
interface Row {
  study: StudyGroup;
  series?: SeriesRecord;
  instance?: InstanceRecord;
}

/** A study: its series, the one its attributes are taken from, its modalities and instances. */
interface StudyGroup {
  uid: string;
  first: SeriesRecord;
  series: SeriesRecord[];
  modalities: string[];
  instances: number;
}

type Value = string | number | readonly string[] | null;

export interface QidoAttribute {
  keyword: string;
  /** Eight upper-case hex digits, as DICOM JSON keys attributes. */
  tag: string;
  vr: string;
  level: QidoLevel;
  match: MatchKind;
  /** Its value in a result; undefined: an attribute this server does not keep. */
  get?: (row: Row, ctx: QidoContext) => Value;
}

const fromStudy =
  (f: (s: SeriesRecord) => Value) =>
  (row: Row): Value =>
    f(row.study.first);
const fromSeries =
  (f: (s: SeriesRecord) => Value) =>
  (row: Row): Value =>
    row.series ? f(row.series) : null;
const fromInstance =
  (f: (i: InstanceRecord) => Value) =>
  (row: Row): Value =>
    row.instance ? f(row.instance) : null;

const base = (ctx: QidoContext): string => ctx.retrieveBase.replace(/\/+$/, '');

/** The attributes QIDO-RS matches and returns here, and some it knows of but does not keep. */
const ATTRIBUTE_LIST: QidoAttribute[] = [
  // Study (and patient) level.
  { keyword: 'StudyDate', tag: '00080020', vr: 'DA', level: 'study', match: 'date', get: fromStudy((s) => s.studyDate) },
  { keyword: 'StudyTime', tag: '00080030', vr: 'TM', level: 'study', match: 'time', get: fromStudy((s) => s.studyTime) },
  { keyword: 'AccessionNumber', tag: '00080050', vr: 'SH', level: 'study', match: 'text', get: fromStudy((s) => s.accessionNumber) },
  { keyword: 'InstanceAvailability', tag: '00080056', vr: 'CS', level: 'study', match: 'none', get: () => 'ONLINE' },
  { keyword: 'ModalitiesInStudy', tag: '00080061', vr: 'CS', level: 'study', match: 'cs', get: (row) => row.study.modalities },
  {
    keyword: 'ReferringPhysicianName',
    tag: '00080090',
    vr: 'PN',
    level: 'study',
    match: 'pn',
    get: fromStudy((s) => s.referringPhysicianName),
  },
  { keyword: 'TimezoneOffsetFromUTC', tag: '00080201', vr: 'SH', level: 'study', match: 'text' },
  { keyword: 'RetrieveURL', tag: '00081190', vr: 'UR', level: 'study', match: 'none' },
  { keyword: 'StudyDescription', tag: '00081030', vr: 'LO', level: 'study', match: 'text', get: fromStudy((s) => s.studyDescription) },
  { keyword: 'PatientName', tag: '00100010', vr: 'PN', level: 'study', match: 'pn', get: fromStudy((s) => s.patientName) },
  { keyword: 'PatientID', tag: '00100020', vr: 'LO', level: 'study', match: 'text', get: fromStudy((s) => s.patientId) },
  { keyword: 'IssuerOfPatientID', tag: '00100021', vr: 'LO', level: 'study', match: 'text' },
  { keyword: 'PatientBirthDate', tag: '00100030', vr: 'DA', level: 'study', match: 'date', get: fromStudy((s) => s.patientBirthDate) },
  { keyword: 'PatientSex', tag: '00100040', vr: 'CS', level: 'study', match: 'cs', get: fromStudy((s) => s.patientSex) },
  { keyword: 'OtherPatientIDs', tag: '00101000', vr: 'LO', level: 'study', match: 'text' },
  { keyword: 'PatientAge', tag: '00101010', vr: 'AS', level: 'study', match: 'text' },
  { keyword: 'StudyInstanceUID', tag: '0020000D', vr: 'UI', level: 'study', match: 'uid', get: (row) => row.study.uid },
  { keyword: 'StudyID', tag: '00200010', vr: 'SH', level: 'study', match: 'text', get: fromStudy((s) => s.studyId) },
  {
    keyword: 'NumberOfStudyRelatedSeries',
    tag: '00201206',
    vr: 'IS',
    level: 'study',
    match: 'none',
    get: (row) => row.study.series.length,
  },
  {
    keyword: 'NumberOfStudyRelatedInstances',
    tag: '00201208',
    vr: 'IS',
    level: 'study',
    match: 'none',
    get: (row) => row.study.instances,
  },
  // Series level.
  { keyword: 'SeriesDate', tag: '00080021', vr: 'DA', level: 'series', match: 'date', get: fromSeries((s) => s.seriesDate) },
  { keyword: 'SeriesTime', tag: '00080031', vr: 'TM', level: 'series', match: 'time', get: fromSeries((s) => s.seriesTime) },
  { keyword: 'Modality', tag: '00080060', vr: 'CS', level: 'series', match: 'cs', get: fromSeries((s) => s.modality) },
  { keyword: 'InstitutionName', tag: '00080080', vr: 'LO', level: 'series', match: 'text' },
  { keyword: 'SeriesDescription', tag: '0008103E', vr: 'LO', level: 'series', match: 'text', get: fromSeries((s) => s.seriesDescription) },
  { keyword: 'BodyPartExamined', tag: '00180015', vr: 'CS', level: 'series', match: 'cs' },
  { keyword: 'SeriesInstanceUID', tag: '0020000E', vr: 'UI', level: 'series', match: 'uid', get: fromSeries((s) => s.seriesInstanceUid) },
  { keyword: 'SeriesNumber', tag: '00200011', vr: 'IS', level: 'series', match: 'number', get: fromSeries((s) => s.seriesNumber) },
  {
    keyword: 'NumberOfSeriesRelatedInstances',
    tag: '00201209',
    vr: 'IS',
    level: 'series',
    match: 'none',
    get: fromSeries((s) => s.instances),
  },
  { keyword: 'PerformedProcedureStepStartDate', tag: '00400244', vr: 'DA', level: 'series', match: 'date' },
  { keyword: 'PerformedProcedureStepStartTime', tag: '00400245', vr: 'TM', level: 'series', match: 'time' },
  // Instance level.
  { keyword: 'SOPClassUID', tag: '00080016', vr: 'UI', level: 'instance', match: 'uid', get: fromInstance((i) => i.sopClassUid) },
  { keyword: 'SOPInstanceUID', tag: '00080018', vr: 'UI', level: 'instance', match: 'uid', get: fromInstance((i) => i.sopInstanceUid) },
  {
    keyword: 'AvailableTransferSyntaxUID',
    tag: '00083002',
    vr: 'UI',
    level: 'instance',
    match: 'none',
    get: fromInstance((i) => i.transferSyntaxUid || null),
  },
  { keyword: 'InstanceNumber', tag: '00200013', vr: 'IS', level: 'instance', match: 'number', get: fromInstance((i) => i.instanceNumber) },
  { keyword: 'NumberOfFrames', tag: '00280008', vr: 'IS', level: 'instance', match: 'number', get: fromInstance((i) => i.numberOfFrames) },
  { keyword: 'Rows', tag: '00280010', vr: 'US', level: 'instance', match: 'number', get: fromInstance((i) => i.rows) },
  { keyword: 'Columns', tag: '00280011', vr: 'US', level: 'instance', match: 'number', get: fromInstance((i) => i.columns) },
  { keyword: 'BitsAllocated', tag: '00280100', vr: 'US', level: 'instance', match: 'number', get: fromInstance((i) => i.bitsAllocated) },
];

/** The attributes above by keyword and by tag. */
export const QIDO_ATTRIBUTES: ReadonlyMap<string, QidoAttribute> = new Map(
  ATTRIBUTE_LIST.flatMap((a) => [[a.keyword, a] as const, [a.tag, a] as const]),
);

const attr = (keyword: string): QidoAttribute => {
  const a = QIDO_ATTRIBUTES.get(keyword);
  if (!a) throw new Error(`no attribute ${keyword}`);
  return a;
};

/** The RetrieveURL of a result: of the level it is at. */
function retrieveUrl(level: QidoLevel, row: Row, ctx: QidoContext): string {
  const study = `${base(ctx)}/studies/${row.study.uid}`;
  if (level === 'study' || !row.series) return study;
  const series = `${study}/series/${row.series.seriesInstanceUid}`;
  if (level === 'series' || !row.instance) return series;
  return `${series}/instances/${row.instance.sopInstanceUid}`;
}

/** Return attributes of the study level (PS3.18 table 10.6.3-3), as a study result has them. */
const STUDY_RETURN = [
  'StudyDate',
  'StudyTime',
  'AccessionNumber',
  'InstanceAvailability',
  'ModalitiesInStudy',
  'ReferringPhysicianName',
  'TimezoneOffsetFromUTC',
  'RetrieveURL',
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientSex',
  'StudyInstanceUID',
  'StudyID',
  'NumberOfStudyRelatedSeries',
  'NumberOfStudyRelatedInstances',
  'StudyDescription',
];
/** The study's attributes a series or instance result carries when the query names no study. */
const STUDY_OF_LOWER = STUDY_RETURN.filter((k) => k !== 'RetrieveURL' && k !== 'InstanceAvailability');
/** Return attributes of the series level (table 10.6.3-4). */
const SERIES_RETURN = [
  'Modality',
  'SeriesDescription',
  'SeriesNumber',
  'SeriesInstanceUID',
  'NumberOfSeriesRelatedInstances',
  'PerformedProcedureStepStartDate',
  'PerformedProcedureStepStartTime',
  'RetrieveURL',
];
const SERIES_OF_INSTANCE = SERIES_RETURN.filter((k) => k !== 'RetrieveURL');
/** Return attributes of the instance level (table 10.6.3-5). */
const INSTANCE_RETURN = [
  'SOPClassUID',
  'SOPInstanceUID',
  'InstanceAvailability',
  'RetrieveURL',
  'InstanceNumber',
  'Rows',
  'Columns',
  'BitsAllocated',
  'NumberOfFrames',
];

/** One matching key, checked and compiled. */
export interface QidoMatch {
  attribute: QidoAttribute;
  /** As given (after the path's fixed UIDs are put in). */
  raw: string;
  /** Universal matching: the attribute is asked for, nothing is filtered. */
  universal: boolean;
  /** The UIDs of a UID key (one or a list). */
  uids?: string[];
  /** The value of a number key. */
  number?: number;
  /** Whether a record's value matches (always true for universal matching). */
  test: (value: Value) => boolean;
}

export interface QidoQuery {
  level: QidoLevel;
  /** The matching keys, universal ones included, in the order given. */
  matches: QidoMatch[];
  /** includefield=all: every attribute kept at the level and above. */
  includeAll: boolean;
  /** includefield attributes (those this server does not keep included: they are not returned). */
  include: QidoAttribute[];
  fuzzy: boolean;
  limit: number;
  offset: number;
  /** The UIDs the path fixed (/studies/{study}/series/{series}/...). */
  fixed: { StudyInstanceUID?: string; SeriesInstanceUID?: string };
  /** Things done that the answer should say (PS3.18 8.3.4.4: a Warning header, 299). */
  warnings: string[];
}

export interface QidoOptions {
  /** The most results one answer gives; a larger limit is cut to it (with a warning). */
  maxLimit: number;
  /** The limit when none is given; maxLimit by default. */
  defaultLimit?: number;
  /** UIDs of the path, which become matching keys (the query must not give them again). */
  fixed?: { StudyInstanceUID?: string; SeriesInstanceUID?: string };
  /** Parameters the HTTP layer reads itself (a token): not taken for matching keys. */
  ignore?: readonly string[];
}

export interface QidoContext {
  /** URL of the DICOMweb root (`.../dicom-web`), which RetrieveURL (0008,1190) values begin with. */
  retrieveBase: string;
  /**
   * Every series known (for ModalitiesInStudy and the study's counts at the instance level);
   * by default the series of the instances given.
   */
  studySeries?: readonly SeriesRecord[];
}

export interface QidoResult {
  results: DicomJson[];
  /** Matches before paging. */
  total: number;
  /** Whether matches are left after this page (offset + results < total). */
  truncated?: boolean;
}

/** Largest offset taken: past it no source has anything to give, and it is surely a mistake. */
export const MAX_OFFSET = 1_000_000_000;
/** Most includefield attributes in one query. */
export const MAX_INCLUDE_FIELDS = 256;
/** Most matching keys in one query. */
export const MAX_MATCH_KEYS = 64;
/** Most UIDs (or codes) in one value list. */
export const MAX_LIST_VALUES = 1000;
/** Longest value of a key that is not a list (PN, LO and SH are at most 64 characters a value). */
export const MAX_VALUE_LENGTH = 1024;

const LEVEL_RANK: Record<QidoLevel, number> = { study: 0, series: 1, instance: 2 };
const LEVEL_PATH: Record<QidoLevel, string> = { study: '/studies', series: 'series', instance: 'instances' };

const TAG_FORM = /^[0-9A-Fa-f]{8}$/;
const KEYWORD_FORM = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Quoted for a message, cut short. */
const show = (s: string): string => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}...` : s);

/**
 * An attribute named by keyword or tag: the kept or known attribute, an unknown but valid tag
 * (a stand-in this server keeps nothing of), or a 400.
 */
function attributeOf(name: string, what: string): QidoAttribute {
  if (name.includes('.')) {
    throw badParameter(`${what} ${show(name)} is a sequence path: matching and returning attributes inside sequences is not supported`);
  }
  if (TAG_FORM.test(name)) {
    const tag = name.toUpperCase();
    return QIDO_ATTRIBUTES.get(tag) ?? { keyword: tag, tag, vr: 'UN', level: 'study', match: 'none' };
  }
  const known = QIDO_ATTRIBUTES.get(name);
  if (known) return known;
  if (KEYWORD_FORM.test(name)) {
    throw badParameter(`${what} ${show(name)} is not an attribute this server knows: give its tag (eight hex digits) instead`);
  }
  throw badParameter(`${what} ${show(name)} is neither an attribute keyword nor a tag (eight hex digits)`);
}

/** The one value of a parameter given once; 400 when it is given several times or is not text. */
function single(name: string, v: unknown): string {
  if (Array.isArray(v)) throw badParameter(`parameter ${show(name)} is given ${v.length} times; give it once`);
  if (typeof v !== 'string') throw badParameter(`parameter ${show(name)} has no text value`);
  return v;
}

function wholeNumber(name: string, raw: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(raw)) throw badParameter(`${name} must be a whole number, got ${show(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw badParameter(`${name} must be from ${min} to ${max}, got ${raw}`);
  return n;
}

/**
 * Parses and checks the parameters of a QIDO-RS search at `level`. Matching keys by keyword
 * (`PatientName`) or tag (`00100010`); `includefield` (repeatable, comma-separated, or `all`),
 * `fuzzymatching` (true or false), `limit` and `offset`; anything else is a 400 naming it.
 */
export function parseQido(level: QidoLevel, query: Record<string, string | string[] | undefined>, options: QidoOptions): QidoQuery {
  const warnings: string[] = [];
  const fixed = { ...(options.fixed ?? {}) };
  for (const [k, v] of Object.entries(fixed)) {
    if (v !== undefined && !isValidUid(v)) throw badParameter(`the ${k} of the path is not a valid UID: ${show(v)}`);
  }
  const ignore = new Set(options.ignore ?? []);
  let includeAll = false;
  const include = new Map<string, QidoAttribute>();
  let fuzzy = false;
  let limit: number | undefined;
  let offset = 0;
  const given: { attribute: QidoAttribute; raw: string; name: string }[] = [];
  const seen = new Map<string, string>();
  for (const name of Object.keys(query)) {
    const v = query[name];
    if (v === undefined || ignore.has(name)) continue;
    if (name === 'includefield') {
      const list = (Array.isArray(v) ? v : [v]).flatMap((x) => (typeof x === 'string' ? x.split(',') : [x]));
      if (list.length > MAX_INCLUDE_FIELDS)
        throw badParameter(`includefield names ${list.length} attributes; at most ${MAX_INCLUDE_FIELDS} are taken`);
      for (const f of list) {
        if (typeof f !== 'string') throw badParameter('includefield has no text value');
        const field = f.trim();
        if (field === '') continue;
        if (field === 'all') includeAll = true;
        else {
          const a = attributeOf(field, 'includefield');
          include.set(a.tag, a);
        }
      }
    } else if (name === 'fuzzymatching') {
      const s = single(name, v);
      if (s !== 'true' && s !== 'false') throw badParameter(`fuzzymatching must be true or false, got ${show(s)}`);
      fuzzy = s === 'true';
    } else if (name === 'limit') {
      limit = wholeNumber('limit', single(name, v), 1, Number.MAX_SAFE_INTEGER);
    } else if (name === 'offset') {
      offset = wholeNumber('offset', single(name, v), 0, MAX_OFFSET);
    } else {
      const a = attributeOf(name, 'query parameter');
      const raw = single(name, v);
      const before = seen.get(a.tag);
      if (before !== undefined) throw badParameter(`${a.keyword} is given twice (as ${show(before)} and ${show(name)}); give it once`);
      seen.set(a.tag, name);
      if (given.length >= MAX_MATCH_KEYS) throw badParameter(`more than ${MAX_MATCH_KEYS} matching keys`);
      given.push({ attribute: a, raw, name });
    }
  }
  for (const [keyword, uid] of Object.entries(fixed)) {
    if (uid === undefined) continue;
    const a = attr(keyword);
    if (seen.has(a.tag)) throw badParameter(`${keyword} is given by the path; the query must not give it again`);
    given.push({ attribute: a, raw: uid, name: keyword });
  }
  const matches: QidoMatch[] = [];
  const unsupported: string[] = [];
  for (const { attribute, raw, name } of given) {
    if (LEVEL_RANK[attribute.level] > LEVEL_RANK[level]) {
      const hint = attribute.keyword === 'Modality' ? ' (ModalitiesInStudy matches the modalities of a study)' : '';
      throw badParameter(
        `${attribute.keyword} is ${attribute.level === 'instance' ? 'an' : 'a'} ${attribute.level} attribute: a search for ${LEVEL_PATH[level]} does not match on it${hint}`,
      );
    }
    const m = compileMatch(attribute, raw, name, fuzzy);
    if (attribute.get === undefined && !m.universal) {
      unsupported.push(attribute.keyword);
      continue;
    }
    if (attribute.match === 'none' && !m.universal) {
      throw badParameter(`${attribute.keyword} is returned, not matched: give it with an empty value (or as includefield) to have it returned`);
    }
    matches.push(m);
  }
  if (unsupported.length > 0) warnings.push(`The following attributes were not supported for matching and are ignored: ${unsupported.join(', ')}`);
  const defaultLimit = Math.max(1, Math.min(options.defaultLimit ?? options.maxLimit, options.maxLimit));
  let effective = limit ?? defaultLimit;
  if (effective > options.maxLimit) {
    warnings.push(`The limit ${effective} is more than this server gives at once; at most ${options.maxLimit} results are returned`);
    effective = options.maxLimit;
  }
  if (fuzzy && !given.some((g) => g.attribute.match === 'pn')) {
    // Nothing to match fuzzily: harmless, and said so the client knows it changed nothing.
    warnings.push('fuzzymatching applies to person names only, and none is matched');
  }
  return { level, matches, includeAll, include: [...include.values()], fuzzy, limit: effective, offset, fixed, warnings };
}

// --- Matching ------------------------------------------------------------------------------

/** Whether `text` matches the wildcard `pattern` (`*` any run, `?` one character); linear in practice, never exponential. */
export function wildcardMatch(pattern: string, text: string): boolean {
  const p = [...pattern.replace(/\*+/g, '*')];
  const t = [...text];
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === t[ti]))) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

const hasWildcard = (s: string): boolean => s.includes('*') || s.includes('?');
/** Whether a value holds a control character (no DICOM text value of a key may). */
const hasControl = (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/** A person name's forms to match against: the whole name and each component group, trailing `^` dropped, lower case. */
function nameForms(pn: string): string[] {
  const trim = (s: string): string => s.replace(/\^+$/, '').toLowerCase();
  const groups = pn.split('=').map(trim).filter(Boolean);
  return [trim(pn), ...groups];
}

/** The words of a person name (or of a fuzzy key), lower case. */
const nameWords = (s: string): string[] =>
  s
    .toLowerCase()
    .split(/[\^=,\s]+/)
    .filter(Boolean);

/** DICOM date of a record as `YYYYMMDD`, or null when it is not one. */
function recordDate(v: Value): string | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d{4})\.?(\d{2})\.?(\d{2})$/.exec(v.trim());
  return m ? `${m[1]}${m[2]}${m[3]}` : null;
}

/** A time as 12 digits (`HHMMSSffffff`): what it leaves out as 0 (`low`) or as its largest (`high`). */
function timeDigits(hh: string, mm: string | undefined, ss: string | undefined, frac: string | undefined, high: boolean): string {
  const fill = (s: string | undefined, n: number, top: string): string => s ?? (high ? top : '0'.repeat(n));
  const f = frac === undefined ? (high ? '999999' : '000000') : frac.padEnd(6, high ? '9' : '0');
  return `${hh}${fill(mm, 2, '59')}${fill(ss, 2, '59')}${f}`;
}

const TIME_FORM = /^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$/;

/** A record's time as 12 digits (its own precision: what it leaves out is 0), or null. */
function recordTime(v: Value): string | null {
  if (typeof v !== 'string') return null;
  const m = TIME_FORM.exec(v.trim().replace(/:/g, ''));
  return m ? timeDigits(m[1], m[2], m[3], m[4], false) : null;
}

function checkDate(s: string, key: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s);
  if (!m) throw badParameter(`${key} takes dates as YYYYMMDD (or a range A-B, A- or -B), got ${show(s)}`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > days) throw badParameter(`${key}: ${show(s)} is not a date of the calendar`);
  return s;
}

function checkTime(s: string, key: string, high: boolean): string {
  const m = TIME_FORM.exec(s);
  if (!m) throw badParameter(`${key} takes times as HH[MM[SS[.FFFFFF]]] (or a range A-B, A- or -B), got ${show(s)}`);
  if (Number(m[1]) > 23 || (m[2] !== undefined && Number(m[2]) > 59) || (m[3] !== undefined && Number(m[3]) > 60)) {
    throw badParameter(`${key}: ${show(s)} is not a time of day`);
  }
  return timeDigits(m[1], m[2], m[3], m[4], high);
}

/** A date or time key as the inclusive range [low, high] of comparable strings (null: open). */
function rangeOf(raw: string, key: string, kind: 'date' | 'time'): [string | null, string | null] {
  const parts = raw.split('-');
  if (parts.length > 2) throw badParameter(`${key} takes one value or one range A-B, got ${show(raw)}`);
  const end = (s: string, high: boolean): string | null => {
    if (s === '') return null;
    return kind === 'date' ? checkDate(s, key) : checkTime(s, key, high);
  };
  if (parts.length === 1) return [end(raw, false), end(raw, true)];
  const [lo, hi] = [end(parts[0], false), end(parts[1], true)];
  if (lo === null && hi === null) throw badParameter(`${key}: a range needs at least one end, got ${show(raw)}`);
  if (lo !== null && hi !== null && lo > hi) throw badParameter(`${key}: the range ${show(raw)} ends before it begins`);
  return [lo, hi];
}

/** The values of a record's attribute as strings (text split at backslashes, lists as they are). */
function valuesOf(v: Value): string[] {
  if (v === null) return [];
  if (typeof v === 'number') return [String(v)];
  if (typeof v === 'string') return v === '' ? [] : v.split('\\');
  return [...v];
}

function compileMatch(attribute: QidoAttribute, raw: string, name: string, fuzzy: boolean): QidoMatch {
  const key = attribute.keyword === name ? name : `${attribute.keyword} (${name})`;
  const universal: QidoMatch = { attribute, raw, universal: true, test: () => true };
  if (raw === '' || raw === '*') return universal;
  const isList = attribute.match === 'uid' || attribute.match === 'cs';
  const maxLength = isList ? MAX_LIST_VALUES * 65 : MAX_VALUE_LENGTH;
  if (raw.length > maxLength) throw badParameter(`${key}: the value is ${raw.length} characters long; at most ${maxLength} are taken`);
  if (hasControl(raw)) throw badParameter(`${key}: the value holds control characters`);
  const matcher = (test: (v: Value) => boolean, extra: Partial<QidoMatch> = {}): QidoMatch => ({ attribute, raw, universal: false, test, ...extra });
  switch (attribute.match) {
    case 'none':
      return matcher(() => true);
    case 'uid': {
      const uids = raw.split(/[\\,]/);
      if (uids.length > MAX_LIST_VALUES) throw badParameter(`${key} lists ${uids.length} UIDs; at most ${MAX_LIST_VALUES} are taken`);
      for (const u of uids) {
        if (!isValidUid(u)) {
          throw badParameter(
            `${key} takes a UID or a list of UIDs (separated by \\ or ,) and no wildcards; ${show(u)} is not a UID (digits and dots, at most 64 characters)`,
          );
        }
      }
      const set = new Set(uids);
      return matcher((v) => valuesOf(v).some((x) => set.has(x)), { uids: [...set] });
    }
    case 'number': {
      if (!/^[+-]?\d{1,10}$/.test(raw.trim())) throw badParameter(`${key} takes one whole number, got ${show(raw)}`);
      const n = Number(raw.trim());
      return matcher((v) => valuesOf(v).some((x) => x.trim() !== '' && Number(x) === n), { number: n });
    }
    case 'date': {
      if (hasWildcard(raw)) throw badParameter(`${key} takes a date or a date range, not wildcards: ${show(raw)}`);
      const [lo, hi] = rangeOf(raw, key, 'date');
      return matcher((v) => {
        const d = recordDate(v);
        return d !== null && (lo === null || d >= lo) && (hi === null || d <= hi);
      });
    }
    case 'time': {
      if (hasWildcard(raw)) throw badParameter(`${key} takes a time or a time range, not wildcards: ${show(raw)}`);
      const [lo, hi] = rangeOf(raw, key, 'time');
      return matcher((v) => {
        const t = recordTime(v);
        return t !== null && (lo === null || t >= lo) && (hi === null || t <= hi);
      });
    }
    case 'cs': {
      const codes = raw.split(/[\\,]/);
      if (codes.length > MAX_LIST_VALUES) throw badParameter(`${key} lists ${codes.length} values; at most ${MAX_LIST_VALUES} are taken`);
      if (codes.some((c) => c === '')) throw badParameter(`${key}: a list of values has an empty one: ${show(raw)}`);
      return matcher((v) => {
        const values = valuesOf(v);
        return codes.some((c) => values.some((x) => wildcardMatch(c, x)));
      });
    }
    case 'pn': {
      if (raw.includes('\\')) throw badParameter(`${key} takes one person name, not a list: ${show(raw)}`);
      if (fuzzy) {
        const words = nameWords(raw.replace(/[*?]/g, ' '));
        if (words.length === 0) return universal;
        return matcher((v) =>
          valuesOf(v).some((name) => {
            const have = nameWords(name);
            return words.every((w) => have.some((h) => h.startsWith(w)));
          }),
        );
      }
      const pattern = raw.replace(/\^+$/, '').toLowerCase();
      return matcher((v) => valuesOf(v).some((name) => nameForms(name).some((form) => wildcardMatch(pattern, form))));
    }
    case 'text': {
      if (raw.includes('\\')) throw badParameter(`${key} takes one value, not a list: ${show(raw)}`);
      return matcher((v) => valuesOf(v).some((x) => wildcardMatch(raw, x)));
    }
  }
}

// --- Studies, series and instances --------------------------------------------------------

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Descending, those without a value last. */
const descNullsLast = (a: string | null, b: string | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : cmp(b, a));
const ascNullsLast = (a: number | null, b: number | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a - b);

const compareSeriesInStudy = (a: SeriesRecord, b: SeriesRecord): number =>
  ascNullsLast(a.seriesNumber, b.seriesNumber) || cmp(a.seriesInstanceUid, b.seriesInstanceUid);

const compareStudies = (a: StudyGroup, b: StudyGroup): number =>
  descNullsLast(recordDate(a.first.studyDate), recordDate(b.first.studyDate)) ||
  descNullsLast(recordTime(a.first.studyTime), recordTime(b.first.studyTime)) ||
  cmp(a.uid, b.uid);

/** The series that DICOMweb can name (valid study and series UIDs), each once (the first given). */
function addressable(series: readonly SeriesRecord[]): SeriesRecord[] {
  const seen = new Set<string>();
  const out: SeriesRecord[] = [];
  for (const s of series) {
    if (s.studyInstanceUid === null || !isValidUid(s.studyInstanceUid) || !isValidUid(s.seriesInstanceUid)) continue;
    if (seen.has(s.seriesInstanceUid)) continue;
    seen.add(s.seriesInstanceUid);
    out.push(s);
  }
  return out;
}

/** The studies of `series` by UID, each with its series in order and the study attributes of the first. */
function studiesOf(series: readonly SeriesRecord[]): Map<string, StudyGroup> {
  const groups = new Map<string, SeriesRecord[]>();
  for (const s of series) {
    const uid = s.studyInstanceUid as string;
    const list = groups.get(uid);
    if (list) list.push(s);
    else groups.set(uid, [s]);
  }
  const out = new Map<string, StudyGroup>();
  for (const [uid, list] of groups) {
    list.sort(compareSeriesInStudy);
    const modalities = [...new Set(list.map((s) => s.modality).filter((m): m is string => m !== null))].sort(cmp);
    out.set(uid, { uid, first: list[0], series: list, modalities, instances: list.reduce((n, s) => n + s.instances, 0) });
  }
  return out;
}

const attributeValue = (a: QidoAttribute, row: Row, ctx: QidoContext): Value => (a.get ? a.get(row, ctx) : null);

function matchesRow(q: QidoQuery, row: Row, ctx: QidoContext, only?: (a: QidoAttribute) => boolean): boolean {
  for (const m of q.matches) {
    if (m.universal || (only && !only(m.attribute))) continue;
    if (!m.test(attributeValue(m.attribute, row, ctx))) return false;
  }
  return true;
}

/** The attributes a result of `q` carries: its level's, the includefield ones it keeps and every matching key's. */
function returnAttributes(q: QidoQuery): QidoAttribute[] {
  const keywords: string[] = [];
  if (q.level === 'study') keywords.push(...STUDY_RETURN);
  else if (q.level === 'series') {
    keywords.push(...SERIES_RETURN, 'StudyInstanceUID');
    if (q.fixed.StudyInstanceUID === undefined) keywords.push(...STUDY_OF_LOWER);
  } else {
    keywords.push(...INSTANCE_RETURN, 'StudyInstanceUID', 'SeriesInstanceUID');
    if (q.fixed.SeriesInstanceUID === undefined) keywords.push(...SERIES_OF_INSTANCE);
    if (q.fixed.StudyInstanceUID === undefined) keywords.push(...STUDY_OF_LOWER);
  }
  const out = new Map<string, QidoAttribute>();
  for (const k of keywords) {
    const a = attr(k);
    out.set(a.tag, a);
  }
  if (q.includeAll) {
    for (const a of ATTRIBUTE_LIST) if (LEVEL_RANK[a.level] <= LEVEL_RANK[q.level]) out.set(a.tag, a);
  }
  for (const a of q.include) out.set(a.tag, a);
  for (const m of q.matches) out.set(m.attribute.tag, m.attribute);
  // Attributes this server does not keep, and those below the level, are not returned.
  return [...out.values()]
    .filter((a) => (a.get !== undefined || a.keyword === 'RetrieveURL') && LEVEL_RANK[a.level] <= LEVEL_RANK[q.level])
    .sort((a, b) => cmp(a.tag, b.tag));
}

function resultOf(attributes: readonly QidoAttribute[], level: QidoLevel, row: Row, ctx: QidoContext): DicomJson {
  const out: DicomJson = {};
  for (const a of attributes) {
    const value = a.keyword === 'RetrieveURL' ? retrieveUrl(level, row, ctx) : attributeValue(a, row, ctx);
    out[a.tag] = jsonAttribute(a.vr, value) satisfies DicomJsonAttribute;
  }
  return out;
}

function page<T>(items: readonly T[], q: QidoQuery): { items: T[]; total: number; truncated?: boolean } {
  const items2 = items.slice(q.offset, q.offset + q.limit);
  const truncated = q.offset + items2.length < items.length;
  return { items: items2, total: items.length, ...(truncated ? { truncated } : {}) };
}

/** The studies of `series` that match `q` (a study-level query), one page of them. */
export function queryStudies(series: readonly SeriesRecord[], q: QidoQuery, ctx: QidoContext): QidoResult {
  const studies = [...studiesOf(addressable(series)).values()].filter((study) => matchesRow(q, { study }, ctx)).sort(compareStudies);
  const attributes = returnAttributes(q);
  const p = page(studies, q);
  return {
    results: p.items.map((study) => resultOf(attributes, 'study', { study }, ctx)),
    total: p.total,
    ...(p.truncated ? { truncated: true } : {}),
  };
}

/** The series of `series` that match `q` (a series-level query), one page of them. */
export function querySeries(series: readonly SeriesRecord[], q: QidoQuery, ctx: QidoContext): QidoResult {
  const studies = studiesOf(addressable(series));
  const rows: Row[] = [];
  for (const study of [...studies.values()].sort(compareStudies)) {
    for (const s of study.series) {
      const row = { study, series: s };
      if (matchesRow(q, row, ctx)) rows.push(row);
    }
  }
  const attributes = returnAttributes(q);
  const p = page(rows, q);
  return { results: p.items.map((row) => resultOf(attributes, 'series', row, ctx)), total: p.total, ...(p.truncated ? { truncated: true } : {}) };
}

const compareInstances = (a: InstanceRecord, b: InstanceRecord): number =>
  cmp(a.seriesInstanceUid, b.seriesInstanceUid) || ascNullsLast(a.instanceNumber, b.instanceNumber) || cmp(a.sopInstanceUid, b.sopInstanceUid);

/**
 * The instances of `instances` (each with its series) that match `q` (an instance-level
 * query), one page of them. Study attributes come from `ctx.studySeries` when given (every
 * series known), else from the series of the instances given.
 */
export function queryInstances(instances: readonly { instance: InstanceRecord; series: SeriesRecord }[], q: QidoQuery, ctx: QidoContext): QidoResult {
  const studies = studiesOf(addressable(ctx.studySeries ?? instances.map((i) => i.series)));
  const rows: Row[] = [];
  for (const { instance, series } of instances) {
    const study = series.studyInstanceUid === null ? undefined : studies.get(series.studyInstanceUid);
    if (!study || !isValidUid(instance.sopInstanceUid) || !isValidUid(series.seriesInstanceUid)) continue;
    // The instance is taken as of the series it was given with.
    const row = { study, series, instance: { ...instance, seriesInstanceUid: series.seriesInstanceUid } };
    if (matchesRow(q, row, ctx)) rows.push(row);
  }
  rows.sort((a, b) => compareInstances(a.instance!, b.instance!));
  const attributes = returnAttributes(q);
  const p = page(rows, q);
  return { results: p.items.map((row) => resultOf(attributes, 'instance', row, ctx)), total: p.total, ...(p.truncated ? { truncated: true } : {}) };
}

/** Finds one page of instances that pass a filter, ordered as `queryInstances` orders them (`SeriesIndex.instanceRecordsWhere`). */
export type FindInstances = (filter: InstanceFilter, page: { limit: number; offset: number }) => { records: InstanceRecord[]; total: number };

/**
 * An instance-level query answered by a store that filters and pages instances itself (the
 * header index, in SQL), so that only one page of instances is ever in memory: the study and
 * series keys are matched here against `series` (every series known), the instance keys (UIDs
 * and numbers) and the page are handed to `find` with the series that matched.
 */
export function queryInstancesPaged(series: readonly SeriesRecord[], q: QidoQuery, ctx: QidoContext, find: FindInstances): QidoResult {
  const all = addressable(series);
  const studies = studiesOf(all);
  const upper = (a: QidoAttribute): boolean => a.level !== 'instance';
  const candidates = new Map<string, Row>();
  for (const s of all) {
    const row = { study: studies.get(s.studyInstanceUid as string)!, series: s };
    if (matchesRow(q, row, ctx, upper)) candidates.set(s.seriesInstanceUid, row);
  }
  if (candidates.size === 0) return { results: [], total: 0 };
  const filter: { -readonly [K in keyof InstanceFilter]: InstanceFilter[K] } = { seriesUids: [...candidates.keys()] };
  for (const m of q.matches) {
    if (m.universal || m.attribute.level !== 'instance') continue;
    switch (m.attribute.keyword) {
      case 'SOPInstanceUID':
        filter.sopInstanceUids = m.uids;
        break;
      case 'SOPClassUID':
        filter.sopClassUids = m.uids;
        break;
      case 'InstanceNumber':
        filter.instanceNumber = m.number;
        break;
      case 'Rows':
        filter.rows = m.number;
        break;
      case 'Columns':
        filter.columns = m.number;
        break;
      case 'BitsAllocated':
        filter.bitsAllocated = m.number;
        break;
      case 'NumberOfFrames':
        filter.numberOfFrames = m.number;
        break;
      default:
        throw new Error(`instance key ${m.attribute.keyword} cannot be handed to a store`);
    }
  }
  const found = find(filter, { limit: q.limit, offset: q.offset });
  const attributes = returnAttributes(q);
  const results: DicomJson[] = [];
  for (const instance of found.records) {
    const row = candidates.get(instance.seriesInstanceUid);
    if (row) results.push(resultOf(attributes, 'instance', { ...row, instance }, ctx));
  }
  const truncated = q.offset + found.records.length < found.total;
  return { results, total: found.total, ...(truncated ? { truncated } : {}) };
}
