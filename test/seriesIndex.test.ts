import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHeader } from '../src/dicom/fileReader.js';
import { Tags, TransferSyntax } from '../src/dicom/tags.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { CT_IMAGE_STORAGE, type WriteElement } from '../src/dicom/writer.js';
import { type InstanceRecord, type SeriesRecord, summaryOfRecord } from '../src/dicomweb/records.js';
import { CompositeSource } from '../src/sources/composite.js';
import { DataDirectorySource } from '../src/sources/dataDirectory.js';
import { MemorySource } from '../src/sources/memorySource.js';
import { FileInstance, stampOf } from '../src/sources/fileInstance.js';
import { SCHEMA_VERSION, SeriesIndex } from '../src/sources/seriesIndex.js';
import { TempDir, writeMultiFrame, writeSeries } from './fixtures/series.js';

let tmp: TempDir;
beforeEach(() => {
  tmp = new TempDir();
});
afterEach(() => tmp.remove());

describe('SeriesIndex', () => {
  it('indexes a tree incrementally: new, changed and removed files', async () => {
    const a = writeSeries(join(tmp.path, 'x', 'y'), { uid: '1.2.10', slices: 3, fileName: (k) => `A${k}` });
    writeSeries(join(tmp.path, 'z'), { uid: '1.2.20', slices: 2, fileName: (k) => `B${k}` });
    writeFileSync(join(tmp.path, 'README.txt'), 'not dicom');
    writeFileSync(join(tmp.path, '.hidden'), 'skipped');
    const index = new SeriesIndex(tmp.path, join(tmp.path, '.idx.sqlite'));
    try {
      const first = await index.update();
      expect(first).toMatchObject({ files: 6, added: 6, changed: 0, removed: 0, unchanged: 0, notDicom: 1, series: 2 });
      expect(index.filesOf('1.2.10')).toEqual(a);
      expect(index.series()).toEqual([
        { seriesUid: '1.2.10', files: 3 },
        { seriesUid: '1.2.20', files: 2 },
      ]);

      const again = await index.update();
      expect(again).toMatchObject({ files: 6, added: 0, changed: 0, removed: 0, unchanged: 6 });

      // A file moved to another series (rewritten with a new mtime), one removed, one added.
      writeSeries(join(tmp.path, 'x', 'y'), { uid: '1.2.20', slices: 1, fileName: () => 'A0', position: () => [0, 0, 50] });
      const t = statSync(a[0]).mtimeMs / 1000 + 5;
      utimesSync(a[0], t, t);
      rmSync(a[2]);
      writeSeries(join(tmp.path, 'new'), { uid: '1.2.30', slices: 1, fileName: () => 'C0' });
      const third = await index.update();
      expect(third).toMatchObject({ files: 6, added: 1, changed: 1, removed: 1, unchanged: 4 });
      expect(index.filesOf('1.2.10')).toEqual([a[1]]);
      expect(index.filesOf('1.2.20')).toHaveLength(3);
      expect(index.filesOf('1.2.30')).toHaveLength(1);
      expect(index.filesOf('9.9')).toEqual([]);
    } finally {
      index.close();
    }
  });

  it('keeps its contents across reopening', async () => {
    writeSeries(join(tmp.path, 's'), { uid: '1.2.40', slices: 2 });
    const db = join(tmp.path, 'idx.sqlite');
    const one = new SeriesIndex(tmp.path, db);
    await one.update();
    one.close();
    const two = new SeriesIndex(tmp.path, db);
    try {
      expect(two.filesOf('1.2.40')).toHaveLength(2);
      expect((await two.update()).unchanged).toBe(2);
    } finally {
      two.close();
    }
  });

  it('lists the files of a series in natural order (IM2 before IM10), as a folder listing does', async () => {
    const names = ['IM1', 'IM2', 'IM10'];
    const paths = writeSeries(join(tmp.path, 'cd'), { uid: '1.2.50', slices: 3, position: null, fileName: (k) => names[k] });
    const index = new SeriesIndex(tmp.path, join(tmp.path, '.idx.sqlite'));
    try {
      await index.update();
      expect(index.filesOf('1.2.50')).toEqual(paths);
      expect(index.filesOf('1.2.50').map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual(['IM1', 'IM2', 'IM10']);
    } finally {
      index.close();
    }
  });

  it('rebuilds an index written by an older schema instead of failing on it', async () => {
    const [file] = writeSeries(join(tmp.path, 's'), { uid: '1.2.60', slices: 1, fileName: () => 'IM1' });
    const st = statSync(file);
    const dbPath = join(tmp.path, 'old.sqlite');
    // The shape of schema version 1: an instance_number column, and rows that look current.
    const old = new Database(dbPath);
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ms REAL NOT NULL, series_uid TEXT, instance_number REAL, note TEXT);
      CREATE INDEX files_by_series ON files(series_uid);
      INSERT INTO meta VALUES ('schema', '1');
    `);
    const insert = old.prepare('INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)');
    insert.run('s/IM1', st.size, st.mtimeMs, '9.9.1', 1, null);
    insert.run('gone/IM7', 10, 0, '9.9.2', 7, null);
    old.close();

    const index = new SeriesIndex(tmp.path, dbPath);
    try {
      expect(index.series()).toEqual([]);
      const summary = await index.update();
      // The unchanged file is read again, not trusted from the old rows.
      expect(summary).toMatchObject({ files: 1, added: 1, changed: 0, removed: 0, unchanged: 0, series: 1 });
      expect(index.filesOf('1.2.60')).toEqual([file]);
      expect(index.filesOf('9.9.1')).toEqual([]);
      expect(index.series()).toEqual([{ seriesUid: '1.2.60', files: 1 }]);
    } finally {
      index.close();
    }
    const reopened = new Database(dbPath, { readonly: true });
    try {
      const columns = (reopened.prepare('PRAGMA table_info(files)').all() as { name: string }[]).map((c) => c.name);
      expect(columns).toEqual([
        'path',
        'size',
        'mtime_ms',
        'ctime_ms',
        'ino',
        'series_uid',
        'note',
        'header',
        'sop_uid',
        'instance_number',
        'frames',
      ]);
      expect(reopened.prepare("SELECT value FROM meta WHERE key = 'schema'").get()).toEqual({ value: SCHEMA_VERSION });
      expect(SCHEMA_VERSION).toBe('6');
      expect(reopened.prepare('SELECT series_uid, instances FROM series').all()).toEqual([{ series_uid: '1.2.60', instances: 1 }]);
    } finally {
      reopened.close();
    }
  });

  it('keeps each file header, which a series load takes instead of reading the file while the file is unchanged', async () => {
    const files = writeSeries(join(tmp.path, 'tree', 'a'), {
      uid: '1.2.70',
      slices: 3,
      windowCenter: 40,
      windowWidth: 400,
      fileName: (k) => `F${k}`,
    });
    // Whole seconds, so the mtime can be put back exactly after a rewrite.
    const T = 1_700_000_000;
    for (const f of files) utimesSync(f, T, T);
    const index = new SeriesIndex(tmp.path, join(tmp.path, '.idx.sqlite'));
    try {
      await index.update();
      const known = index.headersOf('1.2.70');
      expect([...known.keys()].sort()).toEqual([...files].sort());
      for (const f of files) {
        const st = statSync(f);
        expect(known.get(f)).toEqual({
          size: st.size,
          mtimeMs: st.mtimeMs,
          ctimeMs: st.ctimeMs,
          ino: st.ino,
          header: await readHeader(new FileInstance(f)),
        });
      }
      expect(index.headersOf('9.9.9').size).toBe(0);

      // A load takes the header it is given while the file's stamp is the one given: a header
      // with another window, given with the file's own stamp, is what the load sees.
      const header = await readHeader(new FileInstance(files[1]));
      const given = (f: string, windowCenter: number) =>
        new FileInstance(f, basename(f), { ...stampOf(statSync(f)), header: { ...header, windowCenter } });
      const withGiven = [new FileInstance(files[0]), given(files[1], 77), new FileInstance(files[2])];
      expect((await loadVolume(withGiven, { maxVoxels: 1e6 })).sliceWindows.map((w) => w?.level)).toEqual([40, 77, 40]);

      const source = new DataDirectorySource(tmp.path, index);
      const load = async () => loadVolume((await source.find('1.2.70'))!.instances, { maxVoxels: 1e6 });
      expect((await load()).sliceWindows.map((w) => w?.level)).toEqual([40, 40, 40]);
      const indexed = async () => Promise.all((await source.find('1.2.70'))!.instances.map((i) => (i as FileInstance).knownHeader()));
      expect((await indexed()).every((h) => h !== undefined)).toBe(true);

      // The middle file replaced by one with another window, of the same size, its mtime put back
      // (as `cp -p` or `rsync -a` do): its ctime and inode tell, and the file is read again.
      const st = statSync(files[1]);
      const other = writeSeries(join(tmp.path, 'other'), { uid: '1.2.70', slices: 3, windowCenter: 50, windowWidth: 500 });
      renameSync(other[1], files[1]);
      utimesSync(files[1], T, T);
      expect(statSync(files[1]).size).toBe(st.size);
      expect(statSync(files[1]).mtimeMs).toBe(st.mtimeMs);
      expect((await indexed()).map((h) => h !== undefined)).toEqual([true, false, true]);
      expect((await load()).sliceWindows.map((w) => w?.level)).toEqual([40, 50, 40]);

      // The next update reads that file again (and only that one), and its header is indexed.
      expect(await index.update()).toMatchObject({ changed: 1, unchanged: 2 });
      expect(index.headersOf('1.2.70').get(files[1])?.header.windowCenter).toBe(50);
    } finally {
      index.close();
    }
  });
});

/** The QIDO-RS attributes of a study and series, as elements to write. */
function qidoElements(o: { patient: string; study: string; studyDate: string; seriesNumber: number; sex?: string }): WriteElement[] {
  return [
    { tag: Tags.PatientName, vr: 'PN', value: o.patient },
    { tag: Tags.PatientID, vr: 'LO', value: `ID-${o.patient}` },
    { tag: Tags.PatientBirthDate, vr: 'DA', value: '19700101' },
    { tag: Tags.PatientSex, vr: 'CS', value: o.sex ?? 'O' },
    { tag: Tags.StudyDate, vr: 'DA', value: o.studyDate },
    { tag: Tags.StudyTime, vr: 'TM', value: '120000' },
    { tag: Tags.AccessionNumber, vr: 'SH', value: `A-${o.study}` },
    { tag: Tags.ReferringPhysicianName, vr: 'PN', value: 'Ref^Doctor' },
    { tag: Tags.StudyID, vr: 'SH', value: o.study },
    { tag: Tags.StudyDescription, vr: 'LO', value: `Study ${o.study}` },
    { tag: Tags.SeriesNumber, vr: 'IS', value: o.seriesNumber },
    { tag: Tags.SeriesDate, vr: 'DA', value: o.studyDate },
    { tag: Tags.SeriesTime, vr: 'TM', value: '120500.25' },
  ];
}

/** The record `qidoElements` describes, for a series of `instances` files of 4 x 3 images. */
function expectedRecord(uid: string, o: Parameters<typeof qidoElements>[0], instances: number, frames = instances): SeriesRecord {
  return {
    seriesInstanceUid: uid,
    studyInstanceUid: `${uid}.0`,
    patientName: o.patient,
    patientId: `ID-${o.patient}`,
    patientBirthDate: '19700101',
    patientSex: o.sex ?? 'O',
    studyDate: o.studyDate,
    studyTime: '120000',
    accessionNumber: `A-${o.study}`,
    referringPhysicianName: 'Ref^Doctor',
    studyId: o.study,
    studyDescription: `Study ${o.study}`,
    modality: 'CT',
    seriesNumber: o.seriesNumber,
    seriesDescription: 'Axial',
    seriesDate: o.studyDate,
    seriesTime: '120500.25',
    instances,
    frames,
    rows: 3,
    columns: 4,
  };
}

const writeQido = (dir: string, uid: string, o: Parameters<typeof qidoElements>[0], slices: number, names = (k: number) => `IM${k}`) =>
  writeSeries(dir, { uid, slices, fileName: names, tweak: (_k, s) => ({ ...s, seriesDescription: 'Axial', extra: qidoElements(o) }) });

const byUidOf = (list: SeriesRecord[]): SeriesRecord[] => [...list].sort((a, b) => a.seriesInstanceUid.localeCompare(b.seriesInstanceUid));

describe('SeriesIndex records', () => {
  const A = { patient: 'Doe^Jane', study: 'S1', studyDate: '20240102', seriesNumber: 3, sex: 'F' };
  const B = { patient: 'Roe^Rick', study: 'S2', studyDate: '20250610', seriesNumber: 1 };

  it('gives series and instance records from the headers it keeps', async () => {
    const a = writeQido(join(tmp.path, 'cd', 'a'), '1.2.100', A, 3);
    writeQido(join(tmp.path, 'cd', 'b'), '1.2.200', B, 2);
    mkdirSync(join(tmp.path, 'mf'));
    writeMultiFrame(join(tmp.path, 'mf', 'F1'), {
      uid: '1.2.300',
      columns: 4,
      rows: 3,
      frames: 5,
      layout: 'classic',
      value: () => 0,
      position: (f) => [0, 0, f],
    });
    const index = new SeriesIndex(tmp.path, join(tmp.path, '.idx.sqlite'));
    try {
      await index.update();
      const records = byUidOf(index.seriesRecords());
      expect(records.slice(0, 2)).toEqual([expectedRecord('1.2.100', A, 3), expectedRecord('1.2.200', B, 2)]);
      expect(records[2]).toMatchObject({
        seriesInstanceUid: '1.2.300',
        instances: 1,
        frames: 5,
        patientName: null,
        seriesNumber: null,
        rows: 3,
        columns: 4,
      });
      expect(index.seriesRecord('1.2.100')).toEqual(expectedRecord('1.2.100', A, 3));
      expect(index.seriesRecord('9.9')).toBeNull();

      const sops = await Promise.all(a.map(async (f) => (await readHeader(new FileInstance(f))).sopInstanceUid));
      expect(index.instanceRecords('1.2.100')).toEqual(
        sops.map((sop, k) => ({
          sopInstanceUid: sop,
          sopClassUid: CT_IMAGE_STORAGE,
          seriesInstanceUid: '1.2.100',
          studyInstanceUid: '1.2.100.0',
          instanceNumber: k + 1,
          rows: 3,
          columns: 4,
          bitsAllocated: 16,
          numberOfFrames: 1,
          transferSyntaxUid: TransferSyntax.ExplicitLittle,
        })),
      );
      expect(index.instanceRecords('1.2.300')[0]).toMatchObject({ numberOfFrames: 5, instanceNumber: 1 });
      expect(index.instanceRecords('9.9')).toEqual([]);
      expect(index.fileOfInstance('1.2.100', sops[1]!)).toBe(a[1]);
      expect(index.fileOfInstance('1.2.200', sops[1]!)).toBeNull();
      // GET /series's summaries are the records' (from the series table).
      expect(index.summaries().find((s) => s.seriesUid === '1.2.100')).toEqual({
        seriesUid: '1.2.100',
        studyUid: '1.2.100.0',
        patientName: 'Doe^Jane',
        patientId: 'ID-Doe^Jane',
        studyDate: '2024-01-02',
        studyDescription: 'Study S1',
        seriesDescription: 'Axial',
        modality: 'CT',
        images: 3,
        rows: 3,
        columns: 4,
      });
    } finally {
      index.close();
    }
  });

  it('pages instances in SQL by series, InstanceNumber and SOP UID, filtered, with the total; copies counted once', async () => {
    const files = writeSeries(join(tmp.path, 'p'), {
      uid: '1.2.400',
      slices: 5,
      instanceNumber: (k) => (k === 2 ? undefined : 10 - k),
      fileName: (k) => `IM${k}`,
    });
    writeSeries(join(tmp.path, 'q'), { uid: '1.2.500', slices: 2, fileName: (k) => `IM${k}` });
    copyFileSync(files[0], join(tmp.path, 'p', 'copy-of-IM0')); // the same SOP Instance UID again
    const index = new SeriesIndex(tmp.path, join(tmp.path, '.idx.sqlite'));
    try {
      await index.update();
      const numbers = (r: { records: InstanceRecord[] }) => r.records.map((i) => `${i.seriesInstanceUid}:${i.instanceNumber}`);
      const all = index.instanceRecordsWhere({}, { limit: 100, offset: 0 });
      expect(all.total).toBe(7);
      expect(numbers(all)).toEqual(['1.2.400:6', '1.2.400:7', '1.2.400:9', '1.2.400:10', '1.2.400:null', '1.2.500:1', '1.2.500:2']);
      expect(numbers(index.instanceRecordsWhere({}, { limit: 2, offset: 3 }))).toEqual(['1.2.400:10', '1.2.400:null']);
      expect(index.instanceRecordsWhere({}, { limit: 2, offset: 3 }).total).toBe(7);
      expect(numbers(index.instanceRecordsWhere({ seriesUids: ['1.2.500'] }, { limit: 10, offset: 0 }))).toEqual(['1.2.500:1', '1.2.500:2']);
      const sop = all.records[3].sopInstanceUid;
      expect(numbers(index.instanceRecordsWhere({ sopInstanceUids: [sop, '1.2.3'] }, { limit: 10, offset: 0 }))).toEqual(['1.2.400:10']);
      expect(numbers(index.instanceRecordsWhere({ instanceNumber: 2 }, { limit: 10, offset: 0 }))).toEqual(['1.2.500:2']);
      expect(
        index.instanceRecordsWhere(
          { sopClassUids: [CT_IMAGE_STORAGE], rows: 3, columns: 4, bitsAllocated: 16, numberOfFrames: 1 },
          { limit: 10, offset: 0 },
        ).total,
      ).toBe(7);
      expect(index.instanceRecordsWhere({ rows: 4 }, { limit: 10, offset: 0 }).total).toBe(0);
      // Values are bound, never spliced into the SQL.
      const hostile = index.instanceRecordsWhere(
        { sopInstanceUids: ["'); DROP TABLE files;--"], seriesUids: ["' OR 1=1 --"] },
        { limit: 10, offset: 0 },
      );
      expect(hostile).toEqual({ records: [], total: 0 });
      expect(index.instanceRecords('1.2.400')).toHaveLength(5);
    } finally {
      index.close();
    }
  });

  it('keeps the series table right through updates: files added, changed, removed, a series moved, a file moved to another series', async () => {
    const db = join(tmp.path, '.idx.sqlite');
    const index = new SeriesIndex(tmp.path, db);
    /** What a fresh index of the same tree says: the series table must agree with a full regroup. */
    const fresh = async (): Promise<SeriesRecord[]> => {
      const other = new SeriesIndex(tmp.path, join(tmp.path, `.fresh-${Math.random()}.sqlite`));
      try {
        await other.update();
        return byUidOf(other.seriesRecords());
      } finally {
        other.close();
      }
    };
    const bump = (f: string) => {
      const t = statSync(f).mtimeMs / 1000 + 10;
      utimesSync(f, t, t);
    };
    try {
      const a = writeQido(join(tmp.path, 'a'), '1.2.100', A, 3);
      writeQido(join(tmp.path, 'b'), '1.2.200', B, 2);
      await index.update();
      expect(byUidOf(index.seriesRecords())).toEqual([expectedRecord('1.2.100', A, 3), expectedRecord('1.2.200', B, 2)]);

      // Added: two more files of A.
      writeQido(join(tmp.path, 'a'), '1.2.100', A, 2, (k) => `IM${k + 3}`);
      expect(await index.update()).toMatchObject({ added: 2, series: 2 });
      expect(index.seriesRecord('1.2.100')).toEqual(expectedRecord('1.2.100', A, 5));

      // Changed: A's first file rewritten with another patient name (the record follows its first file).
      const renamed = { ...A, patient: 'Doe^Janet' };
      writeQido(join(tmp.path, 'a'), '1.2.100', renamed, 1);
      bump(a[0]);
      expect(await index.update()).toMatchObject({ changed: 1 });
      expect(index.seriesRecord('1.2.100')).toEqual(expectedRecord('1.2.100', renamed, 5));

      // Removed: A's first file; the next one sums the series up.
      rmSync(a[0]);
      expect(await index.update()).toMatchObject({ removed: 1 });
      expect(index.seriesRecord('1.2.100')).toEqual(expectedRecord('1.2.100', A, 4));
      expect(byUidOf(index.seriesRecords())).toEqual(await fresh());

      // A series moved: B's folder renamed (its files removed, and added under other paths).
      renameSync(join(tmp.path, 'b'), join(tmp.path, 'z-moved'));
      expect(await index.update()).toMatchObject({ removed: 2, added: 2, series: 2 });
      expect(index.seriesRecord('1.2.200')).toEqual(expectedRecord('1.2.200', B, 2));
      expect(index.filesOf('1.2.200').every((f) => f.includes('z-moved'))).toBe(true);

      // A file moved to another series: A's IM1 rewritten as a file of B.
      writeQido(join(tmp.path, 'a'), '1.2.200', B, 2, (k) => (k === 0 ? 'IM1' : 'IM-extra'));
      bump(a[1]);
      expect(await index.update()).toMatchObject({ changed: 1, added: 1 });
      expect(index.seriesRecord('1.2.100')).toEqual(expectedRecord('1.2.100', A, 3));
      expect(index.seriesRecord('1.2.200')).toEqual(expectedRecord('1.2.200', B, 4));
      expect(byUidOf(index.seriesRecords())).toEqual(await fresh());

      // Every file of A gone: its record too.
      rmSync(join(tmp.path, 'a'), { recursive: true });
      expect(await index.update()).toMatchObject({ series: 1 });
      expect(index.seriesRecords().map((r) => r.seriesInstanceUid)).toEqual(['1.2.200']);
      expect(index.seriesRecord('1.2.200')).toEqual(expectedRecord('1.2.200', B, 2));
      expect(byUidOf(index.seriesRecords())).toEqual(await fresh());
    } finally {
      index.close();
    }
  });

  it('lists 10,000 series from the series table alone, which a reopened index rebuilds when it is missing', () => {
    const dbPath = join(tmp.path, 'big.sqlite');
    new SeriesIndex(tmp.path, dbPath).close();
    const db = new Database(dbPath);
    const insert = db.prepare(
      'INSERT INTO files (path, size, mtime_ms, ctime_ms, ino, series_uid, note, header, sop_uid, instance_number, frames) VALUES (?, 1, 0, 0, 0, ?, NULL, ?, ?, ?, ?)',
    );
    db.transaction(() => {
      for (let s = 0; s < 10_000; s++) {
        const uid = `1.2.9.${s}`;
        for (let k = 0; k < 3; k++) {
          const header = {
            transferSyntaxUid: '1.2.840.10008.1.2.1',
            seriesInstanceUid: uid,
            studyInstanceUid: `1.2.9.${s % 100}`,
            sopInstanceUid: `${uid}.${k}`,
            patientName: `P^${s}`,
            seriesNumber: s,
            modality: 'CT',
            rows: 2,
            columns: 2,
            numberOfFrames: k + 1,
            instanceNumber: k,
          };
          insert.run(`d${s}/f${k}`, uid, JSON.stringify(header), `${uid}.${k}`, k, k + 1);
        }
      }
    })();
    // The files were written behind the index's back: the series table is dropped, so that the
    // next opening sums up every series again.
    db.exec('DROP TABLE series');
    db.close();

    const index = new SeriesIndex(tmp.path, dbPath);
    try {
      const records = index.seriesRecords();
      expect(records).toHaveLength(10_000);
      expect(records.find((r) => r.seriesInstanceUid === '1.2.9.4321')).toMatchObject({
        studyInstanceUid: '1.2.9.21',
        patientName: 'P^4321',
        seriesNumber: 4321,
        instances: 3,
        frames: 6,
      });
      // The listing reads the series table only: with every file gone from under it, it is the same.
      const side = new Database(dbPath);
      const plan = (side.prepare('EXPLAIN QUERY PLAN SELECT * FROM series').all() as { detail: string }[]).map((r) => r.detail);
      expect(plan).toEqual(['SCAN series']);
      side.exec('DELETE FROM files');
      side.close();
      expect(index.seriesRecords()).toEqual(records);
      expect(index.instanceRecordsWhere({}, { limit: 10, offset: 0 })).toEqual({ records: [], total: 0 });
    } finally {
      index.close();
    }
  });

  it('pages instances of many series with the limit and offset in SQL', () => {
    const dbPath = join(tmp.path, 'paged.sqlite');
    new SeriesIndex(tmp.path, dbPath).close();
    const db = new Database(dbPath);
    const insert = db.prepare(
      'INSERT INTO files (path, size, mtime_ms, ctime_ms, ino, series_uid, header, sop_uid, instance_number) VALUES (?, 1, 0, 0, 0, ?, ?, ?, ?)',
    );
    db.transaction(() => {
      for (let s = 0; s < 1000; s++)
        for (let k = 0; k < 20; k++)
          insert.run(`s${s}/i${k}`, `1.3.${1000 + s}`, JSON.stringify({ rows: 1, columns: 1, numberOfFrames: 1 }), `1.3.${1000 + s}.${k}`, k);
    })();
    db.exec('DROP TABLE series');
    db.close();
    const index = new SeriesIndex(tmp.path, dbPath);
    try {
      const r = index.instanceRecordsWhere({}, { limit: 3, offset: 20 * 500 + 19 });
      expect(r.total).toBe(20_000);
      expect(r.records.map((i) => i.sopInstanceUid)).toEqual(['1.3.1500.19', '1.3.1501.0', '1.3.1501.1']);
      expect(index.seriesRecords()).toHaveLength(1000);
    } finally {
      index.close();
    }
  });
});

describe('sources give series records', () => {
  const C = { patient: 'Poe^Edgar', study: 'S3', studyDate: '20230303', seriesNumber: 7 };

  it('a data directory: layout folders from their first file, the index for the rest; memory; a composite', async () => {
    writeQido(join(tmp.path, 'data', '1.2.600'), '1.2.600', C, 2);
    writeQido(join(tmp.path, 'data', 'tree', 'x'), '1.2.700', C, 3);
    const index = new SeriesIndex(join(tmp.path, 'data'), join(tmp.path, 'idx.sqlite'));
    try {
      await index.update();
      const source = new DataDirectorySource(join(tmp.path, 'data'), index);
      expect(byUidOf(await source.seriesRecords())).toEqual([expectedRecord('1.2.600', C, 2), expectedRecord('1.2.700', C, 3)]);
      expect((await source.listSeries()).map((s) => [s.seriesUid, s.images, s.studyDate])).toEqual([
        ['1.2.600', 2, '2023-03-03'],
        ['1.2.700', 3, '2023-03-03'],
      ]);

      const memory = new MemorySource();
      for (const f of writeQido(join(tmp.path, 'mem'), '1.2.800', C, 2)) memory.addDicom(f, readFileSync(f));
      memory.add('1.2.800', 'junk', Buffer.from('not DICOM'));
      expect(await memory.seriesRecords()).toEqual([expectedRecord('1.2.800', C, 2)]);

      // A source that lists only summaries is taken at them; the first source's record wins.
      const summariesOnly = {
        find: async () => null,
        listSeries: async () => [
          { ...summaryOfRecord(expectedRecord('1.2.900', C, 4)) },
          summaryOfRecord(expectedRecord('1.2.800', { ...C, patient: 'Other^Name' }, 1)),
        ],
      };
      const composite = new CompositeSource([memory, summariesOnly]);
      const records = byUidOf(await composite.seriesRecords());
      expect(records[0]).toEqual(expectedRecord('1.2.800', C, 2));
      expect(records[1]).toEqual({
        ...expectedRecord('1.2.900', C, 4),
        patientBirthDate: null,
        patientSex: null,
        studyTime: null,
        accessionNumber: null,
        referringPhysicianName: null,
        studyId: null,
        seriesNumber: null,
        seriesDate: null,
        seriesTime: null,
      });
      expect((await composite.listSeries()).map((s) => s.seriesUid).sort()).toEqual(['1.2.800', '1.2.900']);
    } finally {
      index.close();
    }
  });
});
