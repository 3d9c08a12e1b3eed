import Database from 'better-sqlite3';
import { renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHeader } from '../src/dicom/fileReader.js';
import { loadVolume } from '../src/dicom/volumeLoader.js';
import { DataDirectorySource } from '../src/sources/dataDirectory.js';
import { FileInstance, stampOf } from '../src/sources/fileInstance.js';
import { SCHEMA_VERSION, SeriesIndex } from '../src/sources/seriesIndex.js';
import { TempDir, writeSeries } from './fixtures/series.js';

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
      expect(columns).toEqual(['path', 'size', 'mtime_ms', 'ctime_ms', 'ino', 'series_uid', 'note', 'header', 'sop_uid', 'instance_number']);
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
