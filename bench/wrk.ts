/**
 * wrk (Debian's `wrk`), the load generator that decodes no bodies: a run against a list of
 * paths, cycled one a request, with fixed request headers, parsed into a LoadSummary. wrk runs
 * one thread (the server under test has the other core) and `connections` connections.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadSummary } from './common.js';

export const WRK = '/usr/bin/wrk';

/** Whether wrk is installed (apt-get install -y wrk). */
export function haveWrk(): boolean {
  try {
    execFileSync(WRK, ['--version'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    // wrk --version exits 1 after printing its version.
    return (e as { status?: number }).status === 1;
  }
}

const lua = (value: string): string => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** Seconds or milliseconds or microseconds as wrk prints them, in ms. */
function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60000;
}

function bytes(text: string): number {
  const m = /^([\d.]+)([KMG]?)B$/.exec(text);
  if (!m) return Number.NaN;
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as '' | 'K' | 'M' | 'G'];
}

export async function wrk(
  base: string,
  paths: readonly string[],
  connections: number,
  seconds: number,
  headers: Record<string, string> = {},
): Promise<LoadSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'circus-rs-wrk-'));
  try {
    const script = join(dir, 'paths.lua');
    writeFileSync(
      script,
      [
        `local paths = {${paths.map(lua).join(',\n')}}`,
        ...Object.entries(headers).map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`),
        'local i = 0',
        'request = function()',
        '  i = i + 1',
        '  return wrk.format("GET", paths[(i % #paths) + 1])',
        'end',
      ].join('\n'),
    );
    const out = await new Promise<string>((ok, fail) =>
      execFile(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, base], { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
        err ? fail(new Error(`wrk: ${err.message} ${stderr}`)) : ok(stdout),
      ),
    );
    const find = (re: RegExp): string | undefined => re.exec(out)?.[1];
    const total = Number(find(/(\d+) requests in/) ?? 0);
    const duration = ms(find(/requests in ([\d.]+\w+),/) ?? '');
    const errors = (find(/Socket errors: (.*)/) ?? '')
      .split(',')
      .map((p) => Number(p.trim().split(' ')[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    return {
      requestsPerSecond: Number(find(/Requests\/sec:\s+([\d.]+)/) ?? 0),
      total,
      latencyP50: ms(find(/\s50%\s+(\S+)/) ?? ''),
      latencyP99: ms(find(/\s99%\s+(\S+)/) ?? ''),
      latencyMax: ms(find(/Latency\s+\S+\s+\S+\s+(\S+)/) ?? ''),
      errors,
      timeouts: Number(find(/timeout (\d+)/) ?? 0),
      non2xx: Number(find(/Non-2xx or 3xx responses: (\d+)/) ?? 0),
      bytesPerSecond: bytes(find(/Transfer\/sec:\s+(\S+)/) ?? ''),
      seconds: duration / 1000,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
