import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadVolume } from '../src/dicom/volumeLoader.js';
const dir = '/work/main/.bench-data/load/1.2.826.0.1.3680043.10.1453.300.2';
const files = readdirSync(dir).map((f) => join(dir, f));
for (let i = 0; i < 3; i++) {
  const t = performance.now();
  await loadVolume(files, { maxVoxels: 1e9 });
  console.log('load', (performance.now() - t).toFixed(1));
}
