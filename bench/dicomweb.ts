/**
 * The DICOMweb face against Orthanc's DICOMweb plugin, on the same files, in the same run.
 *
 *   apt-get install -y orthanc orthanc-dicomweb wrk      (Debian's packages; nothing is installed here)
 *   npm run bench:dicomweb
 *
 * Without Orthanc, its plugin or wrk it says so and exits 0. The series is bench/load.ts's signed
 * 512 x 512 x 300 Int16 CT (300 files, Explicit VR Little Endian, written under .bench-data/ once).
 * Orthanc starts as the tests start it (test/fixtures/orthanc.ts: a free loopback port, storage
 * in a temporary folder, RemoteAccessAllowed false) and gets the 300 files (POST /instances);
 * circus-rs runs in this process (as bench/http.ts starts it) on the same folder. Both are asked
 * the same DICOMweb paths (/dicom-web/...), each run with wrk (one thread, 16 connections, 10 s,
 * after a 3 s warm-up), circus-rs first, then Orthanc:
 *   - series metadata (application/dicom+json), one URL again and again: circus-rs builds a
 *     series' metadata once per lookup of the series (reused 5 s) and sends the same bytes, so
 *     this is mostly its cached figure; the first request of each (cold: every header read) is
 *     timed on its own beforehand;
 *   - frames/1 of instances cycling over the series (multipart/related application/octet-stream):
 *     read from the file every time by both;
 *   - rendered (image/jpeg, the PS3.18 default) of instances cycling over the series, each request
 *     its own window (`window=C,400,linear` with C = 40 + i/1000), so no cache answers;
 *   - rendered, one URL again and again (circus-rs answers from its image cache);
 *   - thumbnail of instances cycling over the series (cached by circus-rs after the first pass;
 *     300 URLs);
 * then a whole-series retrieve (multipart/related application/dicom, transfer-syntax=*) timed by
 * curl (body to /dev/null: a Node.js client was measured to bound the rate itself), as MB/s of
 * body, once to warm up and three times each. Printed: req/s,
 * latency p50/p99, mean response size, errors and non-2xx, and circus-rs / Orthanc. Figures only;
 * nothing is asserted.
 */
import { execFile } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Server } from '../src/server.js';
import { dicomwebPlugin, Orthanc, orthancBinary } from '../test/fixtures/orthanc.js';
import { ensureSeries, LOAD_ROOT, type LoadSummary, loadLine, NZ, SERIES_UID, sliceFileName, startServer } from './common.js';
import { haveWrk, wrk } from './wrk.js';

const CONNECTIONS = 16;
const SECONDS = 10;

if (!orthancBinary() || !dicomwebPlugin() || !haveWrk()) {
  console.log(
    'bench:dicomweb needs Orthanc, its DICOMweb plugin, wrk and curl: apt-get install -y orthanc orthanc-dicomweb wrk curl. Nothing measured.',
  );
  process.exit(0);
}

let orthanc: Orthanc | null = null;
let server: Server | null = null;

async function cleanup(): Promise<void> {
  await orthanc?.remove();
  orthanc = null;
  await server?.close();
  server = null;
}
process.once('SIGINT', () => {
  void cleanup().finally(() => process.exit(130));
});

async function json(url: string): Promise<Record<string, { Value?: unknown[] }>[]> {
  const res = await fetch(url, { headers: { accept: 'application/dicom+json' } });
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, { Value?: unknown[] }>[];
}

/** One download by curl (a client that costs the server's core little), its body thrown away. */
function curlDownload(url: string, accept: string): Promise<{ status: number; bytes: number; bytesPerSecond: number }> {
  return new Promise((ok, fail) =>
    execFile(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', '-H', `Accept: ${accept}`, url],
      (err, out) => {
        if (err) return fail(err);
        const [status, bytes, speed] = out.trim().split(' ').map(Number);
        ok({ status, bytes, bytesPerSecond: speed });
      },
    ),
  );
}

async function timedOnce(url: string, accept: string): Promise<{ ms: number; bytes: number; status: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { headers: { accept } });
  const body = await res.arrayBuffer();
  return { ms: performance.now() - t0, bytes: body.byteLength, status: res.status };
}

try {
  const dir = ensureSeries();
  orthanc = await Orthanc.start();
  console.log(
    `Orthanc ${orthanc.version} with its DICOMweb plugin at ${orthanc.base}; load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores`,
  );
  const t0 = performance.now();
  await orthanc.upload(Array.from({ length: NZ }, (_, k) => join(dir, sliceFileName(k))));
  console.log(`  uploaded ${NZ} instances in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const started = await startServer(LOAD_ROOT);
  server = started.server;
  const ours = `${started.base}/dicom-web`;
  const theirs = orthanc.dicomweb;
  console.log(`circus-rs at ${started.base}; wrk, 1 thread, ${CONNECTIONS} connections, ${SECONDS} s per run`);

  // The study and the instances, from circus-rs's QIDO (and checked against Orthanc's).
  const [seriesAnswer] = await json(`${ours}/series?SeriesInstanceUID=${SERIES_UID}`);
  const study = String(seriesAnswer['0020000D'].Value?.[0]);
  const instances = (await json(`${ours}/studies/${study}/series/${SERIES_UID}/instances`)).map((i) => String(i['00080018'].Value?.[0]));
  const theirInstances = (await json(`${theirs}/studies/${study}/series/${SERIES_UID}/instances`)).map((i) => String(i['00080018'].Value?.[0]));
  if (instances.length !== NZ || theirInstances.length !== NZ)
    throw new Error(`instances: circus-rs ${instances.length}, Orthanc ${theirInstances.length}`);
  const series = `/dicom-web/studies/${study}/series/${SERIES_UID}`;
  const instance = (i: number) => `${series}/instances/${instances[i % NZ]}`;

  // Cold series metadata: every header read (circus-rs: its first lookup of the series).
  for (const [name, root] of [
    ['circus-rs', ours],
    ['Orthanc', theirs],
  ] as const) {
    const first = await timedOnce(`${root}/studies/${study}/series/${SERIES_UID}/metadata`, 'application/dicom+json');
    console.log(
      `  first series metadata, ${name.padEnd(9)} ${first.ms.toFixed(0).padStart(6)} ms, ${(first.bytes / 1024).toFixed(0)} KiB, status ${first.status}`,
    );
  }

  const base = (root: string) => root.replace(/\/dicom-web$/, '');
  const runs: { label: string; paths: string[]; accept: string }[] = [
    { label: 'series metadata (circus-rs: built once, cached)', paths: [`${series}/metadata`], accept: 'application/dicom+json' },
    {
      label: 'frames/1, 300 instances cycled',
      paths: Array.from({ length: NZ }, (_, i) => `${instance(i)}/frames/1`),
      accept: 'multipart/related; type="application/octet-stream"',
    },
    {
      label: 'rendered JPEG, rendered every time',
      paths: Array.from({ length: 30000 }, (_, i) => `${instance((i * 7) % NZ)}/rendered?window=${40 + i / 1000},400,linear`),
      accept: 'image/jpeg',
    },
    { label: 'rendered JPEG, one URL (circus-rs: cached)', paths: [`${instance(150)}/rendered`], accept: 'image/jpeg' },
    {
      label: 'thumbnail, 300 instances (circus-rs: cached)',
      paths: Array.from({ length: NZ }, (_, i) => `${instance(i)}/thumbnail`),
      accept: 'image/jpeg',
    },
  ];
  for (const run of runs) {
    console.log(`${run.label}:`);
    const results: LoadSummary[] = [];
    for (const [name, root] of [
      ['circus-rs', ours],
      ['Orthanc', theirs],
    ] as const) {
      const headers = { Accept: run.accept };
      await wrk(base(root), run.paths, CONNECTIONS, 3, headers);
      const r = await wrk(base(root), run.paths, CONNECTIONS, SECONDS, headers);
      console.log(loadLine(name, r));
      results.push(r);
    }
    const failed = results.findIndex((r) => r.non2xx > r.total / 2 || r.errors > r.total / 2);
    if (failed >= 0) console.log(`  ${failed === 0 ? 'circus-rs' : 'Orthanc'} answered mostly errors: no ratio`);
    else console.log(`  circus-rs / Orthanc requests per second: ${(results[0].requestsPerSecond / results[1].requestsPerSecond).toFixed(2)}x`);
  }

  console.log('whole-series retrieve (300 instances as stored, multipart/related application/dicom), timed by curl, body to /dev/null:');
  const rates: number[][] = [[], []];
  for (let round = 0; round < 4; round++) {
    for (const [k, root] of [ours, theirs].entries()) {
      const d = await curlDownload(`${base(root)}${series}`, 'multipart/related; type="application/dicom"; transfer-syntax=*');
      if (d.status !== 200) throw new Error(`retrieve from ${root}: ${d.status}`);
      // The first round warms both (circus-rs: the series' first lookup), and is not counted.
      if (round === 0) continue;
      rates[k].push(d.bytesPerSecond / 1e6);
      console.log(`  ${k === 0 ? 'circus-rs' : 'Orthanc  '} ${(d.bytes / 1e6).toFixed(1)} MB at ${(d.bytesPerSecond / 1e6).toFixed(0)} MB/s`);
    }
  }
  const best = rates.map((r) => Math.max(...r));
  console.log(`  best of three: circus-rs ${best[0].toFixed(0)} MB/s, Orthanc ${best[1].toFixed(0)} MB/s, ${(best[0] / best[1]).toFixed(2)}x`);
} finally {
  await cleanup();
}
