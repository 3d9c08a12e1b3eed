import { rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SeriesIndex } from '../src/sources/seriesIndex.js';
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
});
