/**
 * circus-rs /mpr against Orthanc's rendered frames: the same slice, the same window, the same
 * machine, the same load generator.
 *
 *   apt-get install -y orthanc      (Debian's package; this script installs nothing)
 *   npm run bench:orthanc
 *
 * Without Orthanc it says so and exits 0. Otherwise it starts Orthanc as the tests do
 * (test/fixtures/orthanc.ts: a free loopback port, storage and index in a temporary folder, DICOM
 * server off, RemoteAccessAllowed false, no authentication, HTTP compression off), here without
 * plugins. Two signed 512 x 512 x 300 Int16 series are measured in turn: bench/load.ts's (a
 * repeating pattern in a disc, which deflate shrinks far more than CT) and bench/phantom.ts's
 * torso CT with CT-like noise (bench:raw's files, written under .bench-data/raw when missing).
 * Each is uploaded (POST /instances, 300 files), and the instance of the middle slice taken
 * (z = 150, InstanceNumber 151, checked in Orthanc's tags). circus-rs runs in this process on
 * the same series (as bench/http.ts starts it). Both images are fetched once and
 * decoded with fast-png, to check that they are the same slice in the same window: size, pixel
 * format and the mean and largest absolute difference are printed. Then autocannon, in a child
 * process, with 16 connections for 10 s each (after a 3 s warm-up each), against
 *   circus-rs  /mpr?series=UID&mode=axial&target=150&ww=400&wl=L
 *   Orthanc    /instances/{id}/frames/0/rendered?window-center=L&window-width=400  (Accept: image/png)
 * (the parameter names are those of Orthanc's OpenAPI description, `Orthanc --openapi`) twice:
 * rendered every time (each request its own window level L = 40 + i/1000, so circus-rs's image
 * cache never answers), and one URL asked again and again (L = 40: circus-rs answers from its
 * cache of rendered images after the first request). It prints requests/s, latency p50/p99,
 * errors and non-2xx of each and the ratio of requests/s for both.
 * Orthanc is stopped and the temporary folder deleted at the end, on errors and on Ctrl-C.
 * Figures only; nothing is asserted.
 */
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import type { Server } from '../src/server.js';
import { Orthanc, orthancBinary } from '../test/fixtures/orthanc.js';
import { ensureSeries, inWorker, LOAD_ROOT, loadLine, NZ, SERIES_UID, sliceFileName, startServer } from './common.js';
import { PHANTOM_ROOT, PHANTOM_UID, writePhantomSeries } from './phantom.js';

const CONNECTIONS = 16;
const SECONDS = 10;
const WW = 400;
const WL = 40;

if (!orthancBinary()) {
  console.log("Orthanc is missing: install Debian's orthanc (apt-get install -y orthanc) to compare with it. Nothing measured.");
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

async function png(url: string, headers: Record<string, string> = {}): Promise<ReturnType<typeof decode>> {
  const res = await fetch(url, { headers });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200 || res.headers.get('content-type') !== 'image/png') {
    throw new Error(`${url}: ${res.status} ${res.headers.get('content-type')} ${new TextDecoder().decode(body.subarray(0, 200))}`);
  }
  return decode(body);
}

/** Both servers on one series: `dir` holds its files CT0000.dcm ... (slice k has InstanceNumber k + 1). */
async function compare(label: string, root: string, uid: string): Promise<void> {
  const dir = join(root, uid);
  const obase = orthanc!.base;
  console.log(`${label}:`);
  const t0 = performance.now();
  const ids = await orthanc!.upload(Array.from({ length: NZ }, (_, k) => join(dir, sliceFileName(k))));
  console.log(`  uploaded ${NZ} instances in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const k = Math.floor(NZ / 2); // what /mpr axial shows by default, and the slice asked for below
  const id = ids[k];
  const tags = (await (await fetch(`${obase}/instances/${id}/simplified-tags`)).json()) as Record<string, string>;
  if (Number(tags.InstanceNumber) !== k + 1 || tags.SeriesInstanceUID !== uid) {
    throw new Error(`instance ${id} is InstanceNumber ${tags.InstanceNumber}, SOPInstanceUID ${tags.SOPInstanceUID}: not slice ${k}`);
  }
  console.log(`  middle slice z=${k}: Orthanc instance ${id} (InstanceNumber ${tags.InstanceNumber}, ${tags.SOPInstanceUID})`);

  const started = await startServer(root);
  server = started.server;
  const cbase = started.base;
  const meta = await fetch(`${cbase}/metadata?series=${uid}`);
  if (meta.status !== 200) throw new Error(`/metadata: ${meta.status} ${await meta.text()}`);
  console.log(`circus-rs at ${cbase}, volume loaded`);

  const ourPath = `/mpr?series=${uid}&mode=axial&target=${k}&ww=${WW}&wl=${WL}`;
  const theirPath = `/instances/${id}/frames/0/rendered?window-center=${WL}&window-width=${WW}`;
  const accept = { Accept: 'image/png' };

  // Same slice, same window?
  const ours = await png(cbase + ourPath);
  const theirs = await png(obase + theirPath, accept);
  const describe = (p: ReturnType<typeof decode>): string => `${p.width}x${p.height}, ${p.channels} channel(s) of ${p.depth} bits`;
  console.log(`  circus-rs PNG ${describe(ours)}; Orthanc PNG ${describe(theirs)}`);
  if (ours.width !== theirs.width || ours.height !== theirs.height || ours.channels !== theirs.channels || ours.depth !== theirs.depth) {
    console.log('  the images differ in size or format: no pixel comparison');
  } else {
    let sum = 0;
    let signed = 0;
    let max = 0;
    let over1 = 0;
    for (let i = 0; i < ours.data.length; i++) {
      const d = Math.abs(ours.data[i] - theirs.data[i]);
      sum += d;
      signed += ours.data[i] - theirs.data[i];
      if (d > max) max = d;
      if (d > 1) over1++;
    }
    console.log(
      `  pixel difference: mean absolute ${(sum / ours.data.length).toFixed(3)} (circus-rs - Orthanc on average ${(signed / ours.data.length).toFixed(3)}),` +
        ` largest ${max}, ${over1} of ${ours.data.length} pixels differ by more than 1` +
        ` (${sum === 0 ? 'identical' : max <= 1 ? 'rounding only: same slice, same window' : 'NOT the same image'})`,
    );
  }

  // Every request its own window level: nothing can come from a cache of rendered images.
  const fresh = 30000;
  const ourFresh = Array.from({ length: fresh }, (_, i) => `/mpr?series=${uid}&mode=axial&target=${k}&ww=${WW}&wl=${WL + i / 1000}`);
  const theirFresh = Array.from({ length: fresh }, (_, i) => `/instances/${id}/frames/0/rendered?window-center=${WL + i / 1000}&window-width=${WW}`);
  // Warm both (JIT, Orthanc's storage cache), then measure.
  await inWorker({ kind: 'autocannon', base: cbase, paths: ourFresh, connections: CONNECTIONS, seconds: 3 });
  await inWorker({ kind: 'autocannon', base: obase, paths: theirFresh, connections: CONNECTIONS, seconds: 3, headers: accept });
  for (const [label, ours, theirs] of [
    ['rendered every time (each request its own window level)', ourFresh, theirFresh],
    [`one URL again and again (window ${WW}/${WL}; circus-rs answers from its image cache)`, [ourPath], [theirPath]],
  ] as const) {
    console.log(`autocannon, ${CONNECTIONS} connections, ${SECONDS} s, slice z=${k}, ${label}:`);
    const us = await inWorker({ kind: 'autocannon', base: cbase, paths: [...ours], connections: CONNECTIONS, seconds: SECONDS });
    console.log(loadLine('circus-rs /mpr axial', us));
    const them = await inWorker({ kind: 'autocannon', base: obase, paths: [...theirs], connections: CONNECTIONS, seconds: SECONDS, headers: accept });
    console.log(loadLine('Orthanc /instances/{id}/frames/0/rendered', them));
    console.log(`  circus-rs / Orthanc requests per second: ${(us.requestsPerSecond / them.requestsPerSecond).toFixed(2)}x`);
  }
  await server.close();
  server = null;
}

try {
  orthanc = await Orthanc.start({ dicomweb: false });
  console.log(
    `Orthanc ${orthanc.version} at ${orthanc.base} (storage in ${orthanc.dir}); load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores`,
  );
  ensureSeries();
  await compare(`bench:load's series (a repeating pattern in a disc: compresses far better than CT)`, LOAD_ROOT, SERIES_UID);
  if (!(existsSync(join(PHANTOM_ROOT, PHANTOM_UID)) && readdirSync(join(PHANTOM_ROOT, PHANTOM_UID)).length === NZ)) {
    console.log(`writing the phantom series under ${PHANTOM_ROOT} (once; later runs reuse it)`);
    writePhantomSeries(join(PHANTOM_ROOT, PHANTOM_UID), PHANTOM_UID, 'raw benchmark phantom');
  }
  await compare(`bench/phantom.ts's torso CT (tissues with CT-like noise, as bench:raw uses)`, PHANTOM_ROOT, PHANTOM_UID);
} finally {
  await cleanup();
}
