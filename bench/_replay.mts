import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../fuzz/harness.js';
import { DecodePool } from '../src/dicom/decodePool.js';
const pool = new DecodePool(1);
process.on('unhandledRejection', (e) => { console.log('UNHANDLED', (e as Error).stack); });
process.on('uncaughtException', (e) => { console.log('UNCAUGHT', (e as Error).stack); });
for (const d of readdirSync('fuzz/crashers')) {
  const dir = join('fuzz/crashers', d);
  const files = readdirSync(dir).filter((f) => f.endsWith('.dcm')).map((f) => join(dir, f));
  const o = await check(dir, files, pool);
  console.log(d, o.kind, o.kind === 'refused' ? o.status : '', o.kind === 'defect' ? o.error.stack : '');
}
await new Promise((r) => setTimeout(r, 1000));
await pool.close();
