/**
 * circus-rs's DICOMweb answers compared with Orthanc's (Debian's Orthanc and its DICOMweb
 * plugin) over the same files: the series of test/fixtures/interop.ts, uploaded to Orthanc and
 * served by circus-rs from a data directory. QIDO-RS results (studies, the series of a study,
 * the instances of a series or a study, series by Modality, included fields) and metadata
 * (series, study, instance) are matched by UID and compared attribute by attribute on the tags
 * both return: the same VR and the same Value (binary values byte for byte, whether inline or
 * by BulkDataURI). Searches with matching keys must find the same. Where Orthanc is the one
 * that departs from PS3.18, PS3.4 or PS3.5, the difference is listed below with its reason
 * (ONLY_ORTHANC, ONLY_CIRCUS, ORTHANC_VALUE_DIFFERS, ORTHANC_MATCHES_DIFFERENTLY; and in
 * docs/API.md's "Differences from Orthanc"); nothing else may differ.
 *
 * Skipped with a message when Orthanc or its DICOMweb plugin is not installed (failed instead
 * when CI is set, since .ci/run installs them).
 */
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { inCi } from './conformance/pydicomEnv.js';
import { framePixels, type InteropSeries, interopSeries, STUDY_A, STUDY_B, writeInteropData } from './fixtures/interop.js';
import { dicomwebPlugin, Orthanc, orthancBinary } from './fixtures/orthanc.js';
import { TempDir } from './fixtures/series.js';

type Attribute = { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string };
type Json = Record<string, Attribute>;

const missing =
  orthancBinary() === null || dicomwebPlugin() === null
    ? 'Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)'
    : null;
const suite = missing === null || inCi ? describe : describe.skip;
if (missing !== null && !inCi) console.warn(`Orthanc reference tests skipped: ${missing} (the suite fails instead when CI is set)`);

/** The kinds of resource compared, by path. */
type Kind = 'studies' | 'studySeries' | 'allSeries' | 'seriesInstances' | 'studyInstances' | 'allInstances' | 'metadata';

function kindOf(path: string): Kind {
  const p = path.split('?')[0];
  if (p.endsWith('/metadata')) return 'metadata';
  if (p === '/studies') return 'studies';
  if (p === '/series') return 'allSeries';
  if (p === '/instances') return 'allInstances';
  if (/^\/studies\/[^/]+\/series$/.test(p)) return 'studySeries';
  if (/^\/studies\/[^/]+\/instances$/.test(p)) return 'studyInstances';
  return 'seriesInstances';
}

/** Attributes one server returns where the other does not, and why. */
interface Presence {
  tags: string[];
  kinds: Kind[];
  reason: string;
}

const QIDO: Kind[] = ['studies', 'studySeries', 'allSeries', 'seriesInstances', 'studyInstances', 'allInstances'];
const STUDY_LEVEL = ['00080005', '00080020', '00080030', '00080050', '00080090', '00100010', '00100020', '00100030', '00100040', '00200010'];

/** What Orthanc returns and circus-rs does not. */
const ONLY_ORTHANC: Presence[] = [
  {
    tags: ['00080005'],
    kinds: QIDO,
    reason:
      'Specific Character Set "ISO_IR 100": the one series B1 declares, and also (Orthanc\'s DefaultEncoding) for files that declare none, ' +
      'whose repertoire is the default one. PS3.18 asks for it "if known"; circus-rs keeps no character set in its records and DICOM JSON ' +
      'is UTF-8 either way (metadata carries the attribute as the file has it).',
  },
  {
    tags: [...STUDY_LEVEL, '00080060', '0008103E', '00200011'],
    kinds: ['studySeries', 'seriesInstances', 'studyInstances'],
    reason:
      'Study (and series) attributes on results below a study (or series) the path names: PS3.18 10.6.3.3 asks for them only when the ' +
      'target resource is all series or all instances; more is allowed, circus-rs leaves them out.',
  },
];

/** What circus-rs returns and Orthanc does not. */
const ONLY_CIRCUS: Presence[] = [
  {
    tags: ['00080056'],
    kinds: ['studies', 'seriesInstances', 'studyInstances', 'allInstances'],
    reason: 'Instance Availability (ONLINE): PS3.18 Tables 10.6.3-3 and 10.6.3-5, "shall be present if known"; Orthanc leaves it out.',
  },
  {
    tags: ['00081030'],
    kinds: ['studies', 'allSeries', 'allInstances'],
    reason: 'Study Description, returned without includefield (OHIF lists it); Orthanc returns it only when asked.',
  },
  {
    tags: ['00080061', '00201206', '00201208', '00080060', '0008103E', '00200011', '00201209'],
    kinds: ['allSeries', 'studyInstances', 'allInstances'],
    reason:
      "Modalities in Study, the study's counts and the series attributes: PS3.18 10.6.3.3.2 and 10.6.3.3.3 ask for every study-level " +
      'attribute on all-series and all-instances results, and every series-level one on study-instances and all-instances results; ' +
      'Orthanc leaves them out.',
  },
  {
    tags: ['00280008'],
    kinds: ['seriesInstances', 'studyInstances', 'allInstances'],
    reason:
      'Number of Frames (PS3.18 Table 10.6.3-5): 1 for a single-frame file without the attribute; Orthanc returns it only when the file has it.',
  },
  {
    tags: ['7FE00010'],
    kinds: ['metadata'],
    reason:
      'Pixel Data of an encapsulated (RLE) instance as a BulkDataURI: PS3.18 10.4.1.1.2 and F.2.7 keep bulk data in metadata as ' +
      'BulkDataURIs; Orthanc leaves the attribute out of the metadata of compressed instances.',
  },
];

/**
 * Attributes both return with different values, Orthanc's being the wrong one: the tag, where,
 * why, and circus-rs's value (checked).
 */
const ORTHANC_VALUE_DIFFERS: { tag: string; kinds: Kind[]; reason: string; circus: Attribute }[] = [
  {
    tag: '00204000',
    kinds: ['metadata'],
    reason: 'An LT value holding a backslash: a backslash is no value delimiter in LT, ST, UT (PS3.5 6.2, 6.4); Orthanc splits it into two values.',
    circus: { vr: 'LT', Value: ['first\\second, \u00e9t\u00e9'] },
  },
];

/** Tags returned by one side only that no entry of `allowed` explains for `kind`. */
const unexplained = (tags: Iterable<string>, allowed: Presence[], kind: Kind): string[] =>
  [...tags].filter((t) => !allowed.some((a) => a.kinds.includes(kind) && a.tags.includes(t))).sort();

/** RetrieveURL values are compared below the DICOMweb root (the roots differ). */
const RETRIEVE_URL = '00081190';
const relative = (url: unknown): unknown => (typeof url === 'string' ? url.replace(/^.*?\/dicom-web/, '') : url);

interface Difference {
  uid: string;
  tag: string;
  circus: Attribute;
  orthanc: Attribute;
}

interface Comparison {
  /** Attributes both return whose VR or Value differ. */
  differences: Difference[];
  /** Attributes compared. */
  common: number;
  onlyCircus: string[];
  onlyOrthanc: string[];
  /**
   * Binary values one side sends inline and the other by BulkDataURI (PS3.18 F.2.7 allows
   * either): the inline base64 and the URI, for the bytes to be compared.
   */
  inlineAgainstBulk: { inline: string; uri: string }[];
}

/**
 * Pairs results by the UID at `key` (both must hold the same UIDs) and compares the attributes
 * both return: the same VR and Value (a BulkDataURI on both sides, whatever its address).
 */
function compare(circus: Json[], orthanc: Json[], key: string, kind: Kind): Comparison {
  const uid = (d: Json) => String(d[key]?.Value?.[0]);
  expect(circus.map(uid).sort()).toEqual(orthanc.map(uid).sort());
  const differences: Difference[] = [];
  const inlineAgainstBulk: Comparison['inlineAgainstBulk'] = [];
  const onlyCircus = new Set<string>();
  const onlyOrthanc = new Set<string>();
  let common = 0;
  for (const c of circus) {
    const o = orthanc.find((x) => uid(x) === uid(c))!;
    for (const t of Object.keys(o)) if (!(t in c)) onlyOrthanc.add(t);
    for (const t of Object.keys(c)) {
      if (!(t in o)) {
        onlyCircus.add(t);
        continue;
      }
      common++;
      const [a, b] = [c[t], o[t]];
      const excepted = ORTHANC_VALUE_DIFFERS.find((e) => e.tag === t && e.kinds.includes(kind));
      if (excepted) {
        expect(a, `${uid(c)} ${t}`).toEqual(excepted.circus);
        continue;
      }
      const inline = a.InlineBinary ?? b.InlineBinary;
      const uri = a.BulkDataURI ?? b.BulkDataURI;
      if (a.vr === b.vr && inline !== undefined && uri !== undefined) {
        inlineAgainstBulk.push({ inline, uri });
        continue;
      }
      const same =
        t === RETRIEVE_URL
          ? a.vr === b.vr && relative(a.Value?.[0]) === relative(b.Value?.[0])
          : a.BulkDataURI !== undefined || b.BulkDataURI !== undefined
            ? a.vr === b.vr && a.BulkDataURI !== undefined && b.BulkDataURI !== undefined
            : a.vr === b.vr && isDeepStrictEqual(a.Value, b.Value) && a.InlineBinary === b.InlineBinary;
      if (!same) differences.push({ uid: uid(c), tag: t, circus: a, orthanc: b });
    }
  }
  return {
    differences,
    common,
    onlyCircus: unexplained(onlyCircus, ONLY_CIRCUS, kind),
    onlyOrthanc: unexplained(onlyOrthanc, ONLY_ORTHANC, kind),
    inlineAgainstBulk,
  };
}

/**
 * Searches whose matches differ, Orthanc being the one that departs from PS3.4 C.2.2.2 (the
 * query, and why circus-rs's matches are the right ones). Every other search compared must find
 * the same.
 */
const ORTHANC_MATCHES_DIFFERENTLY: { query: string; circus: string[]; reason: string }[] = [
  {
    query: '/studies?PatientID=int-0002',
    circus: [],
    reason: 'Single Value Matching is case-sensitive for all but PN (PS3.4 C.2.2.2.1); Orthanc ignores case for LO.',
  },
  { query: '/series?Modality=ct', circus: [], reason: 'The same for CS: Orthanc matches CT for ct.' },
  ...['/studies?PatientName=Doe%5EJane', '/studies?PatientID=INT%2D0002'].map((query) => ({
    query,
    circus: [query.includes('PatientID') ? STUDY_B.uid : STUDY_A.uid],
    reason:
      'A percent-encoded character is the character (RFC 3986 2.1), and dicomweb-client encodes every value (encodeURIComponent): ' +
      'Orthanc does not decode query values, so Doe%5EJane and INT%2D0002 match nothing.',
  })),
  {
    query: '/studies?PatientName=Doe^Jane^',
    circus: [STUDY_A.uid],
    reason: 'Trailing empty name components and their ^ are insignificant (PS3.5 6.2); Orthanc matches none.',
  },
  {
    query: `/studies?StudyInstanceUID=${STUDY_A.uid}\\${STUDY_B.uid}`,
    circus: [STUDY_A.uid, STUDY_B.uid],
    reason: 'A list of UIDs is delimited by backslashes (PS3.4 C.2.2.2.2); Orthanc takes commas only.',
  },
];

suite('circus-rs and Orthanc answer DICOMweb alike', { timeout: 120_000 }, () => {
  let tmp: TempDir;
  let server: Server;
  let orthanc: Orthanc;
  let series: InteropSeries[];

  beforeAll(async () => {
    if (missing !== null) throw new Error(`CI=${process.env.CI}: ${missing}`);
    tmp = new TempDir();
    series = interopSeries();
    const data = join(tmp.path, 'data');
    writeInteropData(data, series);
    server = createServer(loadConfig({ flags: { dataDir: data, indexPath: join(tmp.path, 'index.sqlite') }, env: {} }), {});
    orthanc = await Orthanc.start();
    await orthanc.upload(series.flatMap((s) => s.files.map((f) => f.bytes)));
  }, 90_000);

  afterAll(async () => {
    await server?.close();
    await orthanc?.remove();
    tmp?.remove();
  });

  async function both(path: string): Promise<{ circus: Json[]; orthanc: Json[] }> {
    const c = await server.app.inject({ url: `/dicom-web${path}`, headers: { accept: 'application/dicom+json' } });
    expect(c.statusCode, path).toBe(200);
    const o = await fetch(`${orthanc.dicomweb}${path}`, { headers: { Accept: 'application/dicom+json' } });
    expect(o.status, path).toBe(200);
    return { circus: c.json() as Json[], orthanc: (await o.json()) as Json[] };
  }

  /** Compares the answers to `path`; every difference must be one listed above. */
  async function same(path: string, key: string, results: number): Promise<Comparison & { circus: Json[] }> {
    const { circus, orthanc: o } = await both(path);
    expect(circus, path).toHaveLength(results);
    const comparison = compare(circus, o, key, kindOf(path));
    expect(comparison.differences, path).toEqual([]);
    expect(comparison.onlyCircus, `${path}: returned by circus-rs only`).toEqual([]);
    expect(comparison.onlyOrthanc, `${path}: returned by Orthanc only`).toEqual([]);
    return { ...comparison, circus };
  }

  const value = (d: Json, t: string): unknown => d[t]?.Value?.[0];

  /** The bytes of a bulk data URI (either server's), the one part of its multipart answer. */
  async function bulkBytes(uri: string): Promise<Buffer> {
    const local = uri.replace(/^http:\/\/localhost:80/, '');
    const res = local.startsWith('/')
      ? await server.app
          .inject({ url: local, headers: { accept: 'application/octet-stream' } })
          .then((r) => ({ type: String(r.headers['content-type']), body: r.rawPayload }))
      : await fetch(uri, { headers: { Accept: 'multipart/related; type="application/octet-stream"' } }).then(async (r) => ({
          type: r.headers.get('content-type') ?? '',
          body: Buffer.from(await r.arrayBuffer()),
        }));
    const boundary = /boundary="?([^";]+)"?/.exec(res.type)?.[1];
    if (boundary === undefined) return res.body;
    const start = res.body.indexOf('\r\n\r\n', res.body.indexOf(`--${boundary}`)) + 4;
    return res.body.subarray(start, res.body.indexOf(`\r\n--${boundary}`, start));
  }

  it('finds the same studies with the same attributes', async () => {
    const { common, circus } = await same('/studies', '0020000D', 2);
    // Patient, study and counts attributes compared: at least 14 a study.
    expect(common).toBeGreaterThanOrEqual(28);
    expect(circus.map((s) => [value(s, '0020000D'), value(s, '00201206'), value(s, '00201208'), value(s, '00080056')])).toEqual([
      [STUDY_A.uid, 2, 5, 'ONLINE'],
      [STUDY_B.uid, 2, 4, 'ONLINE'],
    ]);
  });

  it('finds the same series of each study, and of every study by Modality', async () => {
    for (const study of [STUDY_A, STUDY_B]) {
      const { common } = await same(`/studies/${study.uid}/series`, '0020000E', 2);
      expect(common).toBeGreaterThanOrEqual(14);
    }
    const { circus } = await same('/series?Modality=CT', '0020000E', 3);
    expect(circus.map((s) => value(s, '0020000E')).sort()).toEqual(
      series
        .filter((s) => s.modality === 'CT')
        .map((s) => s.uid)
        .sort(),
    );
    expect(circus.map((s) => s['00080061'])).toEqual([
      { vr: 'CS', Value: ['CT'] },
      { vr: 'CS', Value: ['CT'] },
      { vr: 'CS', Value: ['CT', 'MR'] },
    ]);
  });

  it('finds the same instances of each series, of a study and across studies', async () => {
    for (const s of series) {
      const { common, circus } = await same(`/studies/${s.study.uid}/series/${s.uid}/instances`, '00080018', s.files.length);
      expect(common).toBeGreaterThanOrEqual(9 * s.files.length);
      expect(circus.map((i) => value(i, '00280008'))).toEqual(s.files.map(() => 1));
    }
    await same(`/studies/${STUDY_A.uid}/instances`, '00080018', 5);
    await same(`/instances?SeriesInstanceUID=${series[2].uid}`, '00080018', 2);
  });

  it('finds the same with matching keys', async () => {
    const [a, b] = [STUDY_A.uid, STUDY_B.uid];
    const queries: [string, string[]][] = [
      ['/studies?PatientName=Doe*', [a]],
      ['/studies?PatientName=doe*', [a]],
      ['/studies?PatientName=Doe^Jane', [a]],
      ['/studies?PatientName=*Jane', [a]],
      ['/studies?PatientName=Doe', []],
      ['/studies?PatientID=INT-000?', [a, b]],
      ['/studies?00100020=INT-0002', [b]],
      ['/studies?StudyDate=20240101-', [a]],
      ['/studies?StudyDate=-20231231', [b]],
      ['/studies?StudyDate=20230615', [b]],
      ['/studies?StudyTime=0800-0900', [b]],
      ['/studies?AccessionNumber=ACC-0002', [b]],
      ['/studies?ModalitiesInStudy=MR', [b]],
      ['/studies?ModalitiesInStudy=CT', [a, b]],
      ['/studies?PatientBirthDate=19700102', [a]],
      ['/studies?ReferringPhysicianName=House*', [a]],
      ['/studies?StudyID=S2', [b]],
      ['/studies?StudyDescription=Chest', [a]],
      [`/studies?StudyInstanceUID=${a},${b}`, [a, b]],
      ['/studies?limit=1&offset=1', [b]],
      ['/series?SeriesNumber=5', [series[3].uid]],
      ['/series?SeriesDescription=Axial*', [series[0].uid, series[1].uid]],
      ['/series?PatientSex=M', [series[2].uid, series[3].uid]],
      [`/studies/${a}/series/${series[0].uid}/instances?InstanceNumber=2`, [series[0].files[1].sopInstanceUid]],
      ...ORTHANC_MATCHES_DIFFERENTLY.map((e): [string, string[]] => [e.query, e.circus]),
    ];
    const uid = (d: Json) => String(value(d, '00080018') ?? value(d, '0020000E') ?? value(d, '0020000D'));
    for (const [query, expected] of queries) {
      const { circus, orthanc: o } = await both(query);
      expect(circus.map(uid), query).toEqual(expected);
      if (ORTHANC_MATCHES_DIFFERENTLY.some((e) => e.query === query)) continue;
      expect(o.map(uid).sort(), `Orthanc: ${query}`).toEqual([...expected].sort());
    }
  });

  it('returns the same values for included fields', async () => {
    // Values only: with includefield=all circus-rs returns every attribute it keeps at the level
    // and above (SeriesDate, SeriesTime, AvailableTransferSyntaxUID too), Orthanc fewer.
    for (const [q, key] of [
      [`/studies/${STUDY_A.uid}/series?includefield=SeriesDate,SeriesTime`, '0020000E'],
      ['/series?includefield=all', '0020000E'],
      [`/studies/${STUDY_B.uid}/series/${series[2].uid}/instances?includefield=all`, '00080018'],
      ['/instances?includefield=all&Modality=MR', '00080018'],
    ]) {
      const { circus, orthanc: o } = await both(q);
      expect(compare(circus, o, key, kindOf(q)).differences, q).toEqual([]);
      // The fixture's SeriesDate and SeriesTime are its study's date and time.
      const studyOf = (r: Json) => (value(r, '0020000D') === STUDY_A.uid ? STUDY_A : STUDY_B);
      expect(
        circus.map((r) => [r['00080021'], r['00080031']]),
        q,
      ).toEqual(
        circus.map((r) => [
          { vr: 'DA', Value: [studyOf(r).studyDate] },
          { vr: 'TM', Value: [studyOf(r).studyTime] },
        ]),
      );
    }
  });

  it('answers a search naming a series it does not have, or a series of another study, with 200 and []', async () => {
    for (const path of [
      `/studies/9.9.9/series/9.9/instances`,
      `/studies/${STUDY_A.uid}/series/${series[2].uid}/instances`,
      '/studies/9.9.9/series',
    ]) {
      const { circus, orthanc: o } = await both(path);
      expect(circus, path).toEqual([]);
      expect(o, path).toEqual([]);
    }
  });

  it("sends the same metadata for every series' instances", async () => {
    for (const s of series) {
      const comparison = await same(`/studies/${s.study.uid}/series/${s.uid}/metadata`, '00080018', s.files.length);
      const { common, circus } = comparison;
      expect(common).toBeGreaterThanOrEqual(34 * s.files.length);
      if (s.uid === series[2].uid) {
        // The varied elements (test/fixtures/interop.ts): Latin-1 decoded, numbers trimmed and
        // parsed, empty values without Value, the short private OB inline (Orthanc: a BulkDataURI).
        const m = circus[0];
        expect(m['00081070']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'M\u00fcller^J\u00fcrgen' }] });
        expect(m['00080008']).toEqual({ vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'OTHER'] });
        expect(m['00180081']).toEqual({ vr: 'DS', Value: [15] });
        expect(m['00180086']).toEqual({ vr: 'IS', Value: [3] });
        expect(m['00080080']).toEqual({ vr: 'LO' });
        expect(m['00091002']).toEqual({ vr: 'OB', InlineBinary: 'AQIDBA==' });
        expect(comparison.inlineAgainstBulk).toHaveLength(2);
      }
      if (s.uid === series[3].uid) {
        // UTF-8 (ISO_IR 192): a name's three component groups, Japanese text.
        expect(circus[0]['00081070']).toEqual({
          vr: 'PN',
          Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '\u5c71\u7530^\u592a\u90ce', Phonetic: '\u3084\u307e\u3060^\u305f\u308d\u3046' }],
        });
        expect(circus[0]['00082111']).toEqual({ vr: 'ST', Value: ['\u65e5\u672c\u8a9e\u306e\u30b3\u30e1\u30f3\u30c8'] });
      }
      for (const { inline, uri } of comparison.inlineAgainstBulk) expect((await bulkBytes(uri)).toString('base64'), uri).toBe(inline);
      expect(circus.map((m) => m['7FE00010']?.BulkDataURI)).toEqual(
        s.files.map((f) => expect.stringMatching(new RegExp(`/instances/${f.sopInstanceUid.replace(/\./g, '\\.')}/bulkdata/7FE00010$`))),
      );
    }
  });

  it('sends the same metadata for a study and for one instance, and the same bulk data bytes for native pixel data', async () => {
    await same(`/studies/${STUDY_B.uid}/metadata`, '00080018', 4);
    const s = series[0];
    const one = await same(`/studies/${STUDY_A.uid}/series/${s.uid}/instances/${s.files[2].sopInstanceUid}/metadata`, '00080018', 1);
    expect(one.circus[0]['00080018']).toEqual({ vr: 'UI', Value: [s.files[2].sopInstanceUid] });
    const { orthanc: o } = await both(`/studies/${STUDY_A.uid}/series/${s.uid}/instances/${s.files[2].sopInstanceUid}/metadata`);
    const [mine, theirs] = await Promise.all([
      bulkBytes(String(one.circus[0]['7FE00010'].BulkDataURI)),
      bulkBytes(String(o[0]['7FE00010'].BulkDataURI)),
    ]);
    expect(mine.equals(framePixels(s, 2))).toBe(true);
    expect(theirs.equals(mine)).toBe(true);
  });
});
