/**
 * Cold load of a series from a DICOMweb PACS against the same files in a folder, in one run.
 *
 *   apt-get install -y orthanc orthanc-dicomweb   (Debian's packages; this script installs nothing)
 *   npm run bench:pacs
 *
 * The series is bench:load's signed 512 x 512 x 300 Int16 one (bench/common.ts; written under
 * .bench-data/load when missing). Debian's Orthanc with its DICOMweb plugin is started on a free
 * loopback port with a configuration of its own (test/fixtures/orthanc.ts: storage in a temporary
 * folder, no authentication, HTTP compression off) and the 300 files uploaded (POST /instances).
 * Both the folder's files and Orthanc's storage are read once beforehand, so both come from the
 * page cache. Then, in this process, rounds of fresh servers composed as the CLI composes them
 * (createServer; default loadConcurrency 8, dicomwebConcurrency 8), each timing one cold request:
 * - folder: `--data-dir` on the series' folder;
 * - PACS: an empty data directory and `--dicomweb-url` on Orthanc;
 * - PACS, instance cache filled: the same with `--instance-cache-dir` on a folder a previous
 *   load filled (every instance read from it; Orthanc is asked for the series' instance list);
 * for the whole load (`/metadata`, which needs every slice) and, on other fresh servers, the
 * first image (`/mpr` axial, middle slice, with a window). Medians of ROUNDS (and ranges) are
 * printed, with MB/s of voxels (157 MB) and of DICOM bytes over the wire.
 * Then what the choices rest on, measured on the same Orthanc: retrieving the 300 instances
 * alone (no loading) one request an instance at 1, 4, 8 and 16 requests at once, against the
 * whole series in one multipart stream (what the server does for a series none of whose
 * instances is cached); and the time of WADO-RS metadata of the series, and whether it tells
 * the transfer syntax (a header taken from metadata would need it, and the pixel data offset,
 * which DICOM JSON never holds).
 * Figures only; nothing is asserted. Orthanc is stopped and its folder deleted at the end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { createServer, type Server } from '../src/server.js';
import { type DicomwebInstance, DicomwebSource } from '../src/sources/dicomweb.js';
import { Orthanc, orthancBinary } from '../test/fixtures/orthanc.js';
import { ensureSeries, median, NX, NY, NZ, SERIES_UID } from './common.js';

const ROUNDS = 5;
const VOXEL_MB = (NX * NY * NZ * 2) / 1e6;

if (!orthancBinary()) {
  console.log("Orthanc is missing: install Debian's orthanc and orthanc-dicomweb to measure. Nothing measured.");
  process.exit(0);
}

const tmp = mkdtempSync(join(tmpdir(), 'circus-rs-bench-pacs-'));
let orthanc: Orthanc | null = null;

process.once('SIGINT', () => {
  void (orthanc?.remove() ?? Promise.resolve()).finally(() => {
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
});

function server(flags: Record<string, unknown>): Server {
  const config = loadConfig({ flags: { cacheBytes: '4G', logLevel: 'silent', ...flags }, env: {} });
  return createServer(config, { useIndex: false, warmWorkers: true });
}

/** One cold request on a fresh server; its time in ms, and the DICOM bytes it retrieved from the PACS. */
async function cold(flags: Record<string, unknown>, url: string): Promise<{ ms: number; wire: number }> {
  const s = server(flags);
  try {
    // The workers started at start-up are not part of a cold load.
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    const res = await s.app.inject({ url });
    const ms = performance.now() - t0;
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body.slice(0, 300)}`);
    return { ms, wire: s.dicomweb?.stats().retrievedBytes ?? 0 };
  } finally {
    await s.close();
  }
}

const range = (xs: number[]): string => `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
const line = (k: string, v: string): void => console.log(`  ${k.padEnd(44)} ${v}`);

try {
  const dir = ensureSeries();
  orthanc = await Orthanc.start();
  const t0 = performance.now();
  await orthanc.upload(
    readdirSync(dir)
      .sort()
      .map((f) => join(dir, f)),
  );
  console.log(
    `Orthanc ${orthanc.version} at ${orthanc.base}: uploaded ${NZ} instances in ${((performance.now() - t0) / 1000).toFixed(1)} s;` +
      ` load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores`,
  );
  execFileSync('sh', ['-c', 'cat "$0"/* > /dev/null; find "$1" -type f -exec cat {} + > /dev/null', dir, orthanc.dir]);

  const empty = join(tmp, 'empty');
  const cacheDir = join(tmp, 'instance-cache');
  const folder = { dataDir: join(dir, '..') };
  const pacs = { dataDir: empty, dicomwebUrl: orthanc.dicomweb };
  const cached = { ...pacs, instanceCacheDir: cacheDir, instanceCacheBytes: '1G' };
  const whole = `/metadata?series=${SERIES_UID}`;
  const first = `/mpr?series=${SERIES_UID}&mode=axial&target=${NZ >> 1}&ww=400&wl=40`;

  // Fill the instance cache once (not timed), so its rounds read every instance from it.
  await cold(cached, whole);
  const times = { folder: [] as number[], pacs: [] as number[], cached: [] as number[], folderFirst: [] as number[], pacsFirst: [] as number[] };
  let wire = 0;
  for (let round = 0; round < ROUNDS; round++) {
    times.folder.push((await cold(folder, whole)).ms);
    const p = await cold(pacs, whole);
    times.pacs.push(p.ms);
    wire = p.wire;
    times.cached.push((await cold(cached, whole)).ms);
    times.folderFirst.push((await cold(folder, first)).ms);
    times.pacsFirst.push((await cold(pacs, first)).ms);
  }
  console.log(
    `cold load of ${NX}x${NY}x${NZ} Int16 (${VOXEL_MB.toFixed(0)} MB of voxels, ${(wire / 1e6).toFixed(0)} MB of DICOM), median of ${ROUNDS}:`,
  );
  const mbs = (ms: number[], mb: number): string => `${(mb / (median(ms) / 1000)).toFixed(0)} MB/s`;
  line('folder, /metadata (whole series)', `${range(times.folder)}   ${mbs(times.folder, VOXEL_MB)} of voxels`);
  line(
    'PACS (DICOMweb), /metadata (whole series)',
    `${range(times.pacs)}   ${mbs(times.pacs, VOXEL_MB)} of voxels, ${mbs(times.pacs, wire / 1e6)} of DICOM`,
  );
  line('PACS, instance cache filled, /metadata', `${range(times.cached)}   ${mbs(times.cached, VOXEL_MB)} of voxels`);
  line('PACS / folder', `${(median(times.pacs) / median(times.folder)).toFixed(2)}x`);
  line('folder, first image (/mpr middle slice)', range(times.folderFirst));
  line('PACS, first image (/mpr middle slice)', range(times.pacsFirst));

  // What the design rests on: retrieval alone, per instance at several concurrencies, and in one stream.
  console.log(`retrieving the ${NZ} instances alone (no loading), median of 3:`);
  const study = await new DicomwebSource({ url: orthanc.dicomweb, timeoutMs: 30_000, concurrency: 1 }).studyOf(SERIES_UID);
  for (const concurrency of [1, 4, 8, 16, 0]) {
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 3; i++) {
      const source = new DicomwebSource({ url: orthanc.dicomweb, timeoutMs: 30_000, concurrency: Math.max(1, concurrency) });
      const found = (await source.find(SERIES_UID))!;
      const instances = found.instances as DicomwebInstance[];
      const s = performance.now();
      // 0: as the server retrieves a cold series, in one stream; else one request an instance.
      await Promise.all(instances.map((inst) => (concurrency === 0 ? inst.bytes() : source.retrieveInstance(inst))));
      ms.push(performance.now() - s);
      bytes = source.stats().retrievedBytes;
    }
    const label = concurrency === 0 ? 'whole series in one stream' : `per instance, ${concurrency} at once`;
    line(label, `${range(ms)}   ${mbs(ms, bytes / 1e6)}`);
  }
  {
    const ms: number[] = [];
    let json: Record<string, unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      const s = performance.now();
      const res = await fetch(`${orthanc.dicomweb}/studies/${study}/series/${SERIES_UID}/metadata`, {
        headers: { Accept: 'application/dicom+json' },
      });
      json = (await res.json()) as Record<string, unknown>[];
      ms.push(performance.now() - s);
    }
    const withSyntax = json.filter((o) => '00020010' in o).length;
    line(
      `WADO-RS metadata of the series (${json.length} objects)`,
      `${range(ms)}; transfer syntax (0002,0010) in ${withSyntax} of them; pixel data offset in none (DICOM JSON has no such thing)`,
    );
  }
  console.log(`load average at the end ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores`);
} finally {
  await orthanc?.remove();
  rmSync(tmp, { recursive: true, force: true });
}
