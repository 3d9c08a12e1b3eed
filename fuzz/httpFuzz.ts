/**
 * HTTP parameter fuzzer: random and adversarial query strings for every action, sent in process
 * (fastify inject) to a server holding a small series. Every answer must be one of the
 * contract's statuses other than 500, JSON {"result":"ng"} when it is an error, and come within
 * a bounded time.
 *
 *   npm run fuzz:http -- [--count N] [--seed X]
 */
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { TempDir, writeSeries } from '../test/fixtures/series.js';
import { rng } from './mutate.js';

export const SERIES = '1.2.840.113619.2.55.3';
const ALLOWED = new Set([200, 204, 400, 401, 403, 404, 405, 406, 413, 422, 503]);
const TIME_LIMIT_MS = 5000;

const ACTIONS: Record<string, string[]> = {
  '/status': [],
  '/metadata': ['series'],
  '/mpr': ['series', 'mode', 'target', 'ww', 'wl'],
  '/oblique': ['series', 'a', 'b', 'c', 'ww', 'wl'],
  '/raw': ['series', 'format'],
  '/volume': ['series'],
  '/requestToken': ['series'],
  // The DICOMweb face: searches, a retrieve, frames and rendered images of the series below.
  '/dicom-web/studies': ['PatientName', 'StudyDate', 'StudyInstanceUID', 'ModalitiesInStudy', 'includefield', 'limit', 'offset', 'fuzzymatching'],
  '/dicom-web/series': ['Modality', 'SeriesInstanceUID', 'SeriesNumber', 'includefield', 'limit', 'offset'],
  [`/dicom-web/studies/${SERIES}.0/series/${SERIES}/instances`]: ['SOPInstanceUID', 'InstanceNumber', 'includefield', 'limit'],
  [`/dicom-web/studies/${SERIES}.0/series/${SERIES}`]: ['accept'],
  [`/dicom-web/studies/${SERIES}.0/series/${SERIES}/rendered`]: ['window', 'viewport', 'quality', 'accept'],
  [`/dicom-web/studies/${SERIES}.0/thumbnail`]: ['viewport', 'accept'],
  [`/dicom-web/studies/${SERIES}.0/metadata`]: ['accept'],
  [`/dicom-web/studies/${SERIES}.0/series/${SERIES}/metadata`]: ['accept', 'includefield'],
};

const GOOD: Record<string, string[]> = {
  series: [SERIES, SERIES, '1.2.3'],
  mode: ['axial', 'coronal', 'sagittal'],
  b: ['axial', 'coronal', 'sagittal'],
  target: ['0', '1', '2', '3'],
  ww: ['400', '1', '0.001', '65535'],
  wl: ['40', '-1000', '0', '3000.5'],
  a: ['0', '0.5', '-1.5707963', '3.14159', '100'],
  c: ['1,1,1', '0,0,0', '5,4,3', '2.5,1.25,0.5'],
  format: ['combined', 'voxels'],
  token: ['abc.def'],
  PatientName: ['Doe*', '*', '?oe^J*', "'; DROP TABLE files;--"],
  StudyDate: ['20240101', '20240101-', '-20241231', '20240101-20241231'],
  StudyInstanceUID: [`${SERIES}.0`, `${SERIES}.0\\1.2.3`, '1.2.3'],
  SeriesInstanceUID: [SERIES, '1.2.3'],
  SOPInstanceUID: ['1.2.3'],
  ModalitiesInStudy: ['CT', 'MR\\CT'],
  Modality: ['CT'],
  SeriesNumber: ['1'],
  InstanceNumber: ['1', '3'],
  includefield: ['all', 'PatientName', '00100010,StudyDescription'],
  limit: ['1', '10', '1000'],
  offset: ['0', '1', '5'],
  fuzzymatching: ['true', 'false'],
  window: ['40,400', '-1000,1500,linear-exact', '0,1,sigmoid'],
  viewport: ['64,64', '10,20', '16,16,0,0,3,2', '8,8,,,-4,-3'],
  quality: ['1', '90', '100'],
  accept: ['image/png', '*/*', 'multipart/related; type="application/dicom"; transfer-syntax=*', 'image/jpeg'],
};

const BAD = [
  '',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e400',
  '-1e400',
  '1e-400',
  '0x10',
  ' 1',
  '1 ',
  '+1',
  '-0',
  '9'.repeat(400),
  '1,2',
  '1,2,3,4',
  ',,',
  '1,,2',
  '%E7%94%BB%E5%83%8F',
  '%00',
  '%zz',
  '..%2F..%2Fetc',
  'AXIAL',
  'axial%20',
  '-1',
  '1.5',
  '1e3',
  '-2147483649',
  '4294967296',
  'x'.repeat(3000),
  '%FF%FE',
  '1.2.3.',
  '01.2',
];

export interface HttpProblem {
  url: string;
  status: number;
  why: string;
}

function randomUrl(r: () => number): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)];
  const paths = Object.keys(ACTIONS);
  let path = pick(paths);
  const odd = r();
  if (odd < 0.05) path = pick(['/Mpr', '/mpr/', '//mpr', '/mpr%00', '/nothing', '/', '/status/x', '/metadata;x']);
  else if (odd < 0.1) {
    // Paths below an instance, its UID and the rest made up.
    const instance = pick(['1.2.3', `${SERIES}.1`, '1.2.x', '9'.repeat(70), '']);
    const rest = pick([
      'metadata',
      'bulkdata/7FE00010',
      'bulkdata/00091010/0/0',
      'bulkdata/zz',
      'bulkdata/%2e%2e/%2e%2e',
      'frames/1,0,-1',
      'frames/99999999999',
      'rendered',
    ]);
    path = `/dicom-web/studies/${SERIES}.0/series/${SERIES}/instances/${instance}/${rest}`;
  }
  const names = ACTIONS[path] ?? ['series'];
  const parts: string[] = [];
  for (const name of [...names, ...(r() < 0.2 ? ['token', 'zzz'] : [])]) {
    const roll = r();
    if (roll < 0.1) continue; // missing
    const value = roll < 0.6 ? pick(GOOD[name] ?? ['1']) : pick(BAD);
    parts.push(`${name}=${value}`);
    if (r() < 0.05) parts.push(`${name}=${pick(GOOD[name] ?? ['1'])}`); // repeated
  }
  if (r() < 0.05) parts.push('&&&=&');
  return parts.length ? `${path}?${parts.join('&')}` : path;
}

export async function startFuzzServers(tmp: TempDir): Promise<Server[]> {
  writeSeries(join(tmp.path, SERIES), { uid: SERIES, columns: 6, rows: 5, slices: 4, windowCenter: 40, windowWidth: 400 });
  const base = { dataDir: tmp.path, maxImageSide: 64, logLevel: 'silent' };
  return [
    createServer(loadConfig({ flags: base, env: {} }), { useIndex: false }),
    createServer(loadConfig({ flags: { ...base, auth: true, tokenSecret: 'fuzzing secret, long enough' }, env: {} }), { useIndex: false }),
  ];
}

/** Sends `count` random requests to each server; returns the problems found. */
export async function fuzzHttp(
  servers: Server[],
  count: number,
  seed: number,
): Promise<{ problems: HttpProblem[]; statuses: Record<number, number> }> {
  const r = rng(seed);
  const problems: HttpProblem[] = [];
  const statuses: Record<number, number> = {};
  for (let i = 0; i < count; i++) {
    const url = randomUrl(r);
    for (const s of servers) {
      const t0 = performance.now();
      let res: Awaited<ReturnType<typeof s.app.inject>>;
      try {
        res = await s.app.inject({ method: r() < 0.03 ? 'POST' : 'GET', url, remoteAddress: r() < 0.5 ? '127.0.0.1' : '10.9.8.7' });
      } catch (err) {
        problems.push({ url, status: -1, why: `inject threw: ${(err as Error).message}` });
        continue;
      }
      const ms = performance.now() - t0;
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (!ALLOWED.has(res.statusCode)) problems.push({ url, status: res.statusCode, why: `status ${res.statusCode}: ${res.body.slice(0, 200)}` });
      else if (res.statusCode >= 400) {
        let body: { result?: string; status?: string; message?: string } = {};
        try {
          body = res.json();
        } catch {
          /* checked below */
        }
        // The 2016 routes answer {result: "ng"}, the current API's and DICOMweb's {status: "ng"}.
        if ((body.result ?? body.status) !== 'ng' || typeof body.message !== 'string')
          problems.push({ url, status: res.statusCode, why: `error body is not {result|status:"ng",message}: ${res.body.slice(0, 200)}` });
      }
      if (ms > TIME_LIMIT_MS) problems.push({ url, status: res.statusCode, why: `took ${ms.toFixed(0)} ms` });
    }
  }
  return { problems, statuses };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const tmp = new TempDir('circus-httpfuzz-');
  const servers = await startFuzzServers(tmp);
  const t0 = performance.now();
  const count = arg('count', 5000);
  const { problems, statuses } = await fuzzHttp(servers, count, arg('seed', 1));
  await Promise.all(servers.map((s) => s.close()));
  tmp.remove();
  console.log(`HTTP fuzzer: ${count} URLs x ${servers.length} servers in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`  statuses ${JSON.stringify(statuses)}`);
  if (problems.length) {
    for (const p of problems.slice(0, 30)) console.log(`  ${p.url}: ${p.why}`);
    process.exit(1);
  }
  console.log('no problems');
}
