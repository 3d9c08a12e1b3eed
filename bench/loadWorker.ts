/**
 * The load-generating side of bench/http.ts and bench/orthanc.ts, run by bench/common.ts's
 * inWorker in a child process of its own: it receives one task over IPC (an autocannon run or
 * one timed download), sends back a summary and exits. Not meant to be run by hand.
 */
import { createRequire } from 'node:module';
import { get } from 'node:http';
import { gunzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import type { DownloadSummary, LoadSummary, WorkerTask } from './common.js';

/*
 * autocannon 9 appends every chunk of every response body to a string (its request queue's
 * addBody), decoding the bytes as UTF-8, whether or not anything reads the body. On binary PNGs
 * that costs the load generator CPU in proportion to the body (and more for bytes that are not
 * UTF-8), CPU this 2-core machine takes from the server measured: a cached 54 KiB PNG measured
 * about 1,600 req/s while the server sat 77% idle and a plain node:http client got 24,000. No
 * run here verifies bodies (no expectBody, verifyBody or onResponse), so bodies are dropped;
 * bytes are still counted (addByteCount).
 */
const PipelinedRequestsQueue = createRequire(import.meta.url)('autocannon/lib/pipelinedRequestsQueue.js') as {
  prototype: { addBody(data: unknown): void };
};
PipelinedRequestsQueue.prototype.addBody = () => {};

async function load(task: WorkerTask & { kind: 'autocannon' }): Promise<LoadSummary> {
  let next = 0;
  const result = await autocannon({
    url: task.base,
    connections: task.connections,
    duration: task.seconds,
    headers: task.headers,
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => ({ ...req, path: task.paths[next++ % task.paths.length] }),
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    total: result.requests.total,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMax: result.latency.max,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    bytesPerSecond: result.throughput.average,
    seconds: result.duration,
  };
}

function download(url: string, headers: Record<string, string> = {}): Promise<DownloadSummary> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        bytes += c.length;
      });
      res.on('error', reject);
      res.on('end', () => {
        const ms = performance.now() - t0;
        const encoding = res.headers['content-encoding'] ?? null;
        // Checked after the clock stopped: the body must be a whole gzip stream.
        const inflatedBytes = encoding === 'gzip' ? gunzipSync(Buffer.concat(chunks, bytes)).length : null;
        resolvePromise({ status: res.statusCode ?? 0, ms, bytes, contentEncoding: encoding, inflatedBytes });
      });
    }).on('error', reject);
  });
}

process.once('message', (task: WorkerTask) => {
  const work = task.kind === 'autocannon' ? load(task) : download(task.url, task.headers);
  work.then(
    (answer) => process.send!(answer, () => process.exit(0)),
    (err: unknown) => {
      console.error('load worker:', err);
      process.exit(1);
    },
  );
});
