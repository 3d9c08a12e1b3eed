/**
 * Replicas behind nginx, for real: three `circus-rs serve` processes on loopback (the CLI, as a
 * user runs it) sharing a token secret and a data directory, each with its own header index
 * and instance name, and Debian's nginx running deploy/nginx.conf (that very file, its two
 * placeholders filled in) in front of them. Checked:
 * - every request for a series, whatever its route and API, answers from one replica
 *   (X-Circus-Instance), and only that replica has the series' volume in its cache;
 * - a token issued by one replica is accepted by every replica, directly and through nginx;
 * - WebSocket /ws/volume goes through nginx (upgrade and transfer), routed by its `?series=` hint;
 * - one replica killed (SIGKILL) in the middle of a load test through nginx: zero failed
 *   requests, its series answer from one other replica each; the survivors' /metrics count
 *   exactly the requests the client saw them answer. Figures are printed.
 * nginx is required: without it the suite fails and says how to install it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer as netServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseExposition, sampleValue } from './fixtures/prometheus.js';
import { inCi } from './conformance/pydicomEnv.js';
import { TempDir, writeSeries } from './fixtures/series.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const CLI = join(ROOT, 'src/cli.ts');
const TEMPLATE = join(ROOT, 'deploy/nginx.conf');
const SECRET = 'the secret every replica of the cluster shares';
const NAMES = ['r1', 'r2', 'r3'];
const SERIES = Array.from({ length: 9 }, (_, i) => `1.2.826.0.1.3680043.10.1453.950.${i + 1}`);
const NX = 64;
const NY = 64;
const NZ = 30;
/** How long the load test runs, and when in it a replica is killed. */
const LOAD_MS = 8000;
const KILL_AT_MS = 3000;
const CONCURRENCY = 8;

/** Debian's nginx, or one on the PATH. */
function findNginx(): string | null {
  for (const path of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (existsSync(path)) return path;
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return which.status === 0 && which.stdout.trim() !== '' ? which.stdout.trim() : null;
}

interface Replica {
  name: string;
  port: number;
  child: ChildProcess;
  stderr: string[];
}

interface Answer {
  status: number;
  instance: string | undefined;
  body: Buffer;
}

const agent = new Agent({ keepAlive: true });

function get(port: number, path: string, headers: Record<string, string> = {}, via: Agent = agent): Promise<Answer> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: via }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolvePromise({
          status: res.statusCode ?? 0,
          instance: res.headers['x-circus-instance'] as string | undefined,
          body: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A port free on 127.0.0.1 now. */
function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = netServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolvePromise(port));
    });
  });
}

/** Environment of the replicas: the test's, without options that would override the flags' intent. */
function replicaEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CIRCUS_RS_')) env[k] = v;
  return env;
}

function startReplica(name: string, dataDir: string, dir: string): Promise<Replica> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'serve',
      ...['--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0'],
      ...['--index-path', join(dir, `${name}-index.sqlite`), '--instance-name', name],
      ...['--auth', '--token-secret', SECRET, '--token-issuers', '127.0.0.1', '--trust-proxy', '127.0.0.1'],
      ...['--decode-workers', '1', '--render-workers', '1', '--cache-bytes', '64M', '--log-level', 'warn', '--log-format', 'json'],
    ],
    { cwd: ROOT, env: replicaEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr: string[] = [];
  child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`replica ${name} did not start in 60 s: ${stderr.join('')}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /serving .* at http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePromise({ name, port: Number(m[1]), child, stderr });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`replica ${name} exited with ${code} before listening: ${stderr.join('')}`));
    });
  });
}

/** deploy/nginx.conf with its placeholders filled in, as docs/deployment.md says to. */
function renderTemplate(listen: string, upstreams: string[]): string {
  const template = readFileSync(TEMPLATE, 'utf8');
  expect(template).toContain('{{LISTEN}}');
  expect(template).toContain('{{UPSTREAMS}}');
  // On one line, as the sed command of the template's header makes it (the placeholders are named in comments too).
  const rendered = template.replaceAll('{{LISTEN}}', listen).replaceAll('{{UPSTREAMS}}', upstreams.join(' '));
  expect(rendered).not.toMatch(/\{\{\w+\}\}/);
  return rendered;
}

/** nginx's main configuration: every path inside `dir`, loopback only, the rendered template included. */
function mainConfig(dir: string, site: string): string {
  const asRoot = process.getuid?.() === 0;
  return [
    // As root, workers would switch to `nobody`, who cannot use the temporary folders below.
    ...(asRoot ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log notice;`,
    'events { worker_connections 1024; }',
    'http {',
    // Which replicas each request went to (several when it was retried), and their statuses.
    '  log_format upstreams \'$msec $request_time "$upstream_addr" "$upstream_status" $status\';',
    `  access_log ${dir}/access.log upstreams;`,
    `  client_body_temp_path ${dir}/client_body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    `  include ${site};`,
    '}',
    '',
  ].join('\n');
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

const nginxPath = findNginx();
// Without nginx the suite is skipped with a message; in CI (where .ci/run installs it) it fails.
if (!nginxPath && !inCi)
  console.warn('cluster tests skipped: nginx is not installed (apt-get install nginx; the suite fails instead when CI is set)');

(nginxPath || inCi ? describe : describe.skip)('replicas behind nginx (deploy/nginx.conf)', () => {
  const tmp = new TempDir('circus-rs-cluster-');
  const dataDir = join(tmp.path, 'data');
  let replicas: Replica[] = [];
  let nginx: ChildProcess | null = null;
  let nginxOut = '';
  let proxyPort = 0;
  /** The replica each series answered from through nginx. */
  const replicaOf = new Map<string, string>();
  /** A token for each series, issued through nginx. */
  const tokenOf = new Map<string, string>();
  /** Successful /mpr responses the client saw from each replica, through nginx or directly. */
  const mprSeen = new Map<string, number>();
  const seen = (a: Answer, path: string): Answer => {
    if (a.status === 200 && path.startsWith('/mpr?') && a.instance) mprSeen.set(a.instance, (mprSeen.get(a.instance) ?? 0) + 1);
    return a;
  };
  const viaNginx = async (path: string, headers: Record<string, string> = {}, via?: Agent) => seen(await get(proxyPort, path, headers, via), path);
  const replica = (name: string): Replica => replicas.find((r) => r.name === name)!;

  beforeAll(async () => {
    if (!nginxPath) {
      throw new Error(
        "nginx is not installed: this test runs Debian's nginx in front of three replicas. Install it with `apt-get install nginx` (.ci/run does).",
      );
    }
    const t0 = performance.now();
    for (const uid of SERIES)
      writeSeries(join(dataDir, uid), { uid, columns: NX, rows: NY, slices: NZ, value: (x, y, k) => (x * 3 + y * 5 + k * 7) % 900 });
    replicas = await Promise.all(NAMES.map((name) => startReplica(name, dataDir, tmp.path)));
    proxyPort = await freePort();
    const site = join(tmp.path, 'circus-rs.conf');
    writeFileSync(
      site,
      renderTemplate(
        `127.0.0.1:${proxyPort}`,
        // fail_timeout shorter than the guide's 10 s: nginx tries the killed replica again every
        // second of the load test, so connections refused are retried too, not only those cut.
        replicas.map((r) => `server 127.0.0.1:${r.port} max_fails=2 fail_timeout=1s;`),
      ),
    );
    const conf = join(tmp.path, 'nginx.conf');
    writeFileSync(conf, mainConfig(tmp.path, site));
    nginx = spawn(nginxPath, ['-p', `${tmp.path}/`, '-e', join(tmp.path, 'error.log'), '-c', conf, '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    nginx.stdout!.on('data', (c: Buffer) => (nginxOut += c.toString()));
    nginx.stderr!.on('data', (c: Buffer) => (nginxOut += c.toString()));
    const nginxExit = exited(nginx).then(() => {
      const log = existsSync(join(tmp.path, 'error.log')) ? readFileSync(join(tmp.path, 'error.log'), 'utf8') : '';
      throw new Error(`nginx exited: ${nginxOut} ${log}`);
    });
    nginxExit.catch(() => {});
    await Promise.race([waitFor('nginx answering', async () => (await get(proxyPort, '/health/live')).status === 200), nginxExit]);
    console.log(
      `cluster: replicas ${replicas.map((r) => `${r.name}=127.0.0.1:${r.port}`).join(', ')}, nginx on 127.0.0.1:${proxyPort}, up in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  });

  afterAll(async () => {
    agent.destroy();
    nginx?.kill('SIGTERM');
    for (const r of replicas) r.child.kill('SIGTERM');
    await Promise.all([...(nginx ? [exited(nginx)] : []), ...replicas.map((r) => exited(r.child))]);
    tmp.remove();
  });

  it('answers every request for a series from one replica, whatever the route, and only that replica caches it', async () => {
    for (const uid of SERIES) {
      const issued = await viaNginx(`/requestToken?series=${uid}`);
      expect(issued.status, issued.body.toString()).toBe(200);
      const token = (JSON.parse(issued.body.toString()) as { token: string }).token;
      tokenOf.set(uid, token);
      const bearer = { Authorization: `Bearer ${token}` };
      const answers = [
        issued,
        await viaNginx(`/metadata?series=${uid}`, bearer),
        ...(await Promise.all([0, 7, 19].map((z) => viaNginx(`/mpr?series=${uid}&mode=axial&target=${z}&token=${token}`)))),
        await viaNginx(`/oblique?series=${uid}&a=0.3&b=axial&c=32,32,15&token=${token}`),
        await viaNginx(`/series/${uid}/metadata`, bearer),
        await viaNginx(`/series/${uid}/volume?token=${token}`),
        await viaNginx(`/token?series=${uid}`),
      ];
      for (const a of answers) expect(a.status, a.body.toString().slice(0, 200)).toBe(200);
      const instances = new Set(answers.map((a) => a.instance));
      expect([...instances], uid).toHaveLength(1);
      const name = answers[0].instance!;
      expect(NAMES).toContain(name);
      replicaOf.set(uid, name);
    }
    // The series are spread: with nine series on three replicas, more than one replica serves.
    const spread = NAMES.map((name) => [name, SERIES.filter((uid) => replicaOf.get(uid) === name).length] as const);
    console.log(`series per replica: ${spread.map(([n, c]) => `${n} ${c}`).join(', ')}`);
    expect(spread.filter(([, c]) => c > 0).length).toBeGreaterThan(1);
    // Each replica's cache holds exactly the volumes of its own series.
    for (const [name, count] of spread) {
      const status = JSON.parse((await get(replica(name).port, '/status')).body.toString()) as { cache: { regions: { volumes: { count: number } } } };
      expect(status.cache.regions.volumes.count, name).toBe(count);
    }
  });

  it('accepts a token issued by one replica on every replica, directly and through nginx', async () => {
    const uid = SERIES[0];
    const issuer = replicaOf.get(uid)!;
    const token = tokenOf.get(uid)!;
    for (const r of replicas) {
      const a = await get(r.port, `/metadata?series=${uid}`, { Authorization: `Bearer ${token}` });
      expect(a.status, `token of ${issuer} on ${r.name}`).toBe(200);
      expect(a.instance).toBe(r.name);
      // A token for another series is refused everywhere.
      expect((await get(r.port, `/metadata?series=${SERIES[1]}`, { Authorization: `Bearer ${token}` })).status).toBe(401);
    }
    // Tokens asked of each replica directly, used through nginx, where the series' own replica answers.
    for (const r of replicas) {
      const issued = await get(r.port, `/requestToken?series=${uid}`);
      expect(issued.instance).toBe(r.name);
      const own = (JSON.parse(issued.body.toString()) as { token: string }).token;
      const a = await viaNginx(`/mpr?series=${uid}&mode=coronal&token=${own}`);
      expect(a.status, `token of ${r.name} through nginx`).toBe(200);
      expect(a.instance).toBe(issuer);
    }
  });

  it('carries WebSocket /ws/volume, routed by its ?series= hint', async () => {
    const uid = SERIES[1];
    const token = tokenOf.get(uid)!;
    const transfer = (url: string): Promise<{ instance: string | undefined; images: number }> =>
      new Promise((resolvePromise, reject) => {
        const ws = new WebSocket(url);
        let instance: string | undefined;
        let images = 0;
        const timer = setTimeout(() => reject(new Error(`no complete transfer over ${url}`)), 15_000);
        ws.once('upgrade', (res) => (instance = res.headers['x-circus-instance'] as string | undefined));
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
        ws.once('error', reject);
        ws.once('open', () => ws.send(Buffer.from(`${JSON.stringify({ messageType: 'BEGIN_TRANSFER', transferId: 'x', seriesUid: uid })}\n`)));
        ws.on('message', (data: Buffer) => {
          const header = JSON.parse(data.subarray(0, data.indexOf(0x0a)).toString()) as { messageType: string };
          if (header.messageType !== 'TRANSFER_IMAGE') {
            reject(new Error(`unexpected message ${JSON.stringify(header)}`));
            return;
          }
          const bytes = data.length - data.indexOf(0x0a) - 1;
          if (bytes !== NX * NY * 2) {
            reject(new Error(`an image of ${bytes} bytes, not ${NX * NY * 2}`));
            return;
          }
          if (++images === NZ) {
            clearTimeout(timer);
            ws.close();
            resolvePromise({ instance, images });
          }
        });
      });
    const hinted = await transfer(`ws://127.0.0.1:${proxyPort}/ws/volume?series=${uid}&token=${token}`);
    expect(hinted).toEqual({ instance: replicaOf.get(uid), images: NZ });
    // Without the hint a replica is chosen by the URL; it serves the transfer all the same.
    const unhinted = await transfer(`ws://127.0.0.1:${proxyPort}/ws/volume?token=${token}`);
    expect(unhinted.images).toBe(NZ);
    expect(NAMES).toContain(unhinted.instance);
  });

  it('loses no request when a replica is killed in the middle of a load test', async () => {
    // The victim: the replica with the most series.
    const count = (name: string) => SERIES.filter((uid) => replicaOf.get(uid) === name).length;
    const victim = [...NAMES].sort((a, b) => count(b) - count(a))[0];
    const victimSeries = SERIES.filter((uid) => replicaOf.get(uid) === victim);
    interface Result {
      start: number;
      ms: number;
      status: number;
      instance: string | undefined;
      uid: string;
      error?: string;
    }
    const results: Result[] = [];
    const begin = performance.now();
    const until = begin + LOAD_MS;
    let killedAt = Number.POSITIVE_INFINITY;

    const client = async (id: number): Promise<void> => {
      const own = new Agent({ keepAlive: true, maxSockets: 1 });
      let r = id * 7919 + 17;
      const rand = (): number => {
        r = (r * 1103515245 + 12345) & 0x7fffffff;
        return r / 0x7fffffff;
      };
      while (performance.now() < until) {
        const uid = SERIES[Math.floor(rand() * SERIES.length)];
        const token = tokenOf.get(uid)!;
        const z = Math.floor(rand() * NZ);
        const path =
          rand() < 0.85
            ? `/mpr?series=${uid}&mode=axial&target=${z}&ww=400&wl=${(z * 13) % 200}&token=${token}`
            : `/series/${uid}/metadata?token=${token}`;
        const start = performance.now();
        try {
          const a = await viaNginx(path, {}, own);
          results.push({ start: start - begin, ms: performance.now() - start, status: a.status, instance: a.instance, uid });
        } catch (err) {
          results.push({ start: start - begin, ms: performance.now() - start, status: 0, instance: undefined, uid, error: (err as Error).message });
        }
      }
      own.destroy();
    };
    const killer = (async () => {
      await new Promise((r) => setTimeout(r, KILL_AT_MS));
      killedAt = performance.now() - begin;
      replica(victim).child.kill('SIGKILL');
      await exited(replica(victim).child);
    })();
    await Promise.all([...Array.from({ length: CONCURRENCY }, (_, i) => client(i)), killer]);

    const failures = results.filter((x) => x.error !== undefined);
    const non2xx = results.filter((x) => x.error === undefined && (x.status < 200 || x.status > 299));
    const latencies = results.map((x) => x.ms).sort((a, b) => a - b);
    const around = results.filter((x) => x.start >= killedAt - 1000 && x.start <= killedAt + 2000);
    const pause = Math.max(0, ...around.map((x) => x.ms));
    // When each series of the victim first answered from another replica, after the kill.
    const moved = victimSeries.map((uid) => {
      const after = results
        .filter((x) => x.uid === uid && x.start + x.ms > killedAt && x.instance !== victim)
        .sort((a, b) => a.start + a.ms - (b.start + b.ms));
      return after.length > 0 ? after[0].start + after[0].ms - killedAt : Number.NaN;
    });
    // nginx's own account: requests it passed to more than one replica, and why (its error log).
    const access = readFileSync(join(tmp.path, 'access.log'), 'utf8').split('\n');
    const retried = access
      .map((line) => /^\S+ (\S+) "([^"]*)" "([^"]*)" (\d+)$/.exec(line))
      .filter((m): m is RegExpExecArray => m?.[2].includes(',') === true)
      .map((m) => ({ seconds: Number(m[1]), upstreams: m[2], statuses: m[3], status: Number(m[4]) }));
    const reasons = new Map<string, number>();
    for (const m of readFileSync(join(tmp.path, 'error.log'), 'utf8').matchAll(/\[error\] \d+#\d+: \*\d+ (.+?)(?: \(\d+: [^)]*\))? while/g)) {
      reasons.set(m[1], (reasons.get(m[1]) ?? 0) + 1);
    }
    const perReplica = (from: number, to: number) =>
      NAMES.map((n) => `${n} ${results.filter((x) => x.instance === n && x.start >= from && x.start < to).length}`).join(', ');
    const seconds = LOAD_MS / 1000;
    console.log(
      [
        `load test through nginx: ${CONCURRENCY} clients for ${seconds} s, replica ${victim} (${victimSeries.length} of ${SERIES.length} series) killed (SIGKILL) at ${(killedAt / 1000).toFixed(2)} s`,
        `  requests ${results.length} (${(results.length / seconds).toFixed(0)}/s), failed ${failures.length}, non-2xx ${non2xx.length}`,
        `  latency p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms, max ${percentile(latencies, 1).toFixed(1)} ms`,
        `  failover pause: longest request started within 1 s before to 2 s after the kill ${pause.toFixed(1)} ms; the victim's series answered from another replica ${moved.map((m) => `${m.toFixed(1)} ms`).join(', ')} after the kill`,
        `  nginx: ${retried.length} requests retried on another replica (all answered ${[...new Set(retried.map((r) => r.status))].join(', ') || '-'}, the slowest in ${(Math.max(0, ...retried.map((r) => r.seconds)) * 1000).toFixed(0)} ms); errors logged: ${[...reasons].map(([why, n]) => `${n} × ${why}`).join('; ') || 'none'}`,
        `  answered before the kill: ${perReplica(0, killedAt)}; after: ${perReplica(killedAt, LOAD_MS + 60_000)}`,
      ].join('\n'),
    );
    expect(failures.slice(0, 5)).toEqual([]);
    // The retries were nginx's: the victim's connections failed and the next replica answered.
    expect(retried.length).toBeGreaterThan(0);
    for (const r of retried) expect(r.status).toBe(200);
    expect(reasons.get('connect() failed')).toBeGreaterThan(0);
    expect(non2xx.slice(0, 5)).toEqual([]);
    expect(results.length).toBeGreaterThan(100);
    // The kill happened under load, and the victim's series moved.
    expect(results.some((x) => x.start > killedAt + 1000)).toBe(true);
    for (const [i, uid] of victimSeries.entries()) expect(moved[i], uid).toBeGreaterThanOrEqual(0);
    // Nothing answered from the victim once it was dead, and each of its series moved to one replica.
    expect(results.filter((x) => x.instance === victim && x.start > killedAt + 100)).toEqual([]);
    for (const uid of victimSeries) {
      const later = new Set(results.filter((x) => x.uid === uid && x.start > killedAt + 100).map((x) => x.instance));
      expect(later.size, uid).toBeLessThanOrEqual(1);
    }
    // The other series never moved.
    for (const uid of SERIES.filter((u) => !victimSeries.includes(u))) {
      expect(new Set(results.filter((x) => x.uid === uid).map((x) => x.instance)), uid).toEqual(new Set([replicaOf.get(uid)]));
    }
    // The survivors' own metrics count exactly the /mpr answers the client got from them.
    for (const name of NAMES.filter((n) => n !== victim)) {
      const families = parseExposition((await get(replica(name).port, '/metrics')).body.toString());
      expect(sampleValue(families, 'circus_rs_http_requests_total', { route: '/mpr', method: 'GET', status: '200' }), name).toBe(
        mprSeen.get(name) ?? 0,
      );
      const ready = await get(replica(name).port, '/health/ready');
      expect(ready.status, name).toBe(200);
    }
  });
});
