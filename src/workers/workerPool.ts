/**
 * A pool of worker threads that run tasks of one kind, sized to the machine by default.
 *
 * Policy:
 * - Tasks queue in arrival order and go to the first idle worker; at most `size` run at once.
 * - Workers start on first use (or all at once with `warm`) and stay; an idle worker does not
 *   keep the process alive.
 * - A worker that fails (throws outside a task, exits, runs out of memory) fails only the task
 *   it was running and is replaced on the next task.
 * - A task that runs longer than `taskTimeoutMs` (a decoder looping on a crafted frame) has its
 *   worker terminated and fails with an error saying so; nothing waits for it forever.
 * - After `close`, queued tasks are refused and workers are terminated.
 *
 * The worker module answers with `serveTasks` (below): each message `{ id, task }` gets
 * `{ id, result }` or `{ id, error }`.
 */
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, type Transferable, Worker } from 'node:worker_threads';

interface Job<T, R> {
  id: number;
  task: T;
  transfer: readonly Transferable[];
  resolve: (result: R) => void;
  reject: (err: Error) => void;
}

interface Slot<T, R> {
  worker: Worker;
  job: Job<T, R> | null;
  timer: NodeJS.Timeout | null;
}

type Reply<R> = { id: number; result: R; error?: undefined } | { id: number; error: string; detail?: unknown; result?: undefined };

/** What a task threw in its worker: the message, and the `detail` the error carried, if any. */
export class WorkerTaskError extends Error {
  constructor(
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'WorkerTaskError';
  }
}

export interface PoolStats {
  size: number;
  workers: number;
  busy: number;
  queued: number;
}

/**
 * The URL a worker is started from: the compiled `.js` beside this module, or, when the project
 * runs from its TypeScript sources (tests, benchmarks), the `.ts` file loaded through tsx.
 */
export function workerSource(url: URL): { script: URL | string; evaluate: boolean } {
  if (!url.pathname.endsWith('.ts')) return { script: url, evaluate: false };
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return { script: bootstrap, evaluate: true };
}

export class WorkerPool<T, R> {
  readonly size: number;
  private readonly slots: Slot<T, R>[] = [];
  private readonly queue: Job<T, R>[] = [];
  private nextId = 1;
  private closed = false;

  /**
   * @param url the worker module (a `.ts` URL under the sources, `.js` once built)
   * @param name how failures name the pool ("a rendering worker failed: ...")
   * @param taskTimeoutMs longest a task may run before its worker is terminated (Infinity: no limit)
   */
  constructor(
    private readonly url: URL,
    private readonly name: string,
    size = availableParallelism(),
    private readonly taskTimeoutMs = Number.POSITIVE_INFINITY,
  ) {
    this.size = Math.max(1, size);
  }

  /** Runs `task` on a worker; `transfer` lists buffers moved to it rather than copied. */
  run(task: T, transfer: readonly Transferable[] = []): Promise<R> {
    if (this.closed) return Promise.reject(new Error(`the ${this.name} pool is closed`));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, transfer, resolve, reject });
      this.pump();
    });
  }

  stats(): PoolStats {
    return { size: this.size, workers: this.slots.length, busy: this.slots.filter((s) => s.job).length, queued: this.queue.length };
  }

  private spawn(): Slot<T, R> {
    const { script, evaluate } = workerSource(this.url);
    const worker = new Worker(script, { eval: evaluate });
    worker.unref();
    const slot: Slot<T, R> = { worker, job: null, timer: null };
    worker.on('message', (reply: Reply<R>) => {
      const job = slot.job;
      if (!job || job.id !== reply.id) return;
      slot.job = null;
      this.clearTimer(slot);
      if (reply.error !== undefined) job.reject(new WorkerTaskError(reply.error, reply.detail));
      else job.resolve(reply.result as R);
      this.pump();
    });
    const fail = (err: Error): void => {
      const index = this.slots.indexOf(slot);
      if (index < 0) return;
      this.slots.splice(index, 1);
      this.clearTimer(slot);
      const job = slot.job;
      slot.job = null;
      job?.reject(new Error(`a ${this.name} worker failed: ${err.message}`));
      this.pump();
    };

    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        try {
          slot = this.spawn();
        } catch (err) {
          // No thread can be started now (resources exhausted): the task fails, the process goes on.
          this.queue.shift()!.reject(new Error(`no ${this.name} worker could be started: ${(err as Error).message}`));
          continue;
        }
      }
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      if (Number.isFinite(this.taskTimeoutMs)) {
        const target = slot;
        slot.timer = setTimeout(() => this.stopLate(target), this.taskTimeoutMs);
      }
      try {
        slot.worker.postMessage({ id: job.id, task: job.task }, job.transfer);
      } catch (err) {
        // A task that cannot be sent (not cloneable) fails alone; the worker stays free.
        slot.job = null;
        this.clearTimer(slot);
        job.reject(new Error(`a ${this.name} task could not be sent to its worker: ${(err as Error).message}`));
      }
    }
    for (const s of this.slots) if (s.job === null) s.worker.unref();
  }

  private clearTimer(slot: Slot<T, R>): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
  }

  /** A task past its time: its worker is terminated (it may be stuck in a loop) and replaced later. */
  private stopLate(slot: Slot<T, R>): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    this.slots.splice(index, 1);
    slot.timer = null;
    const job = slot.job;
    slot.job = null;
    // The task fails once its worker has stopped, so nothing writes into its buffers afterwards.
    const stopped = slot.worker.terminate().catch(() => {});
    void stopped.then(() => job?.reject(new Error(`a ${this.name} task ran longer than ${this.taskTimeoutMs} ms and was stopped`)));
    this.pump();
  }

  /** Starts every worker now and waits until each has run `task` (loading its modules). */
  async warm(task: T): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, () => this.run(task)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error(`the ${this.name} pool is closed`));
    const slots = this.slots.splice(0);
    for (const s of slots) {
      this.clearTimer(s);
      s.job?.reject(new Error(`the ${this.name} pool is closed`));
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

/**
 * A result of bytes moved to the caller, not copied: the bytes themselves when they own their
 * whole buffer, else a copy that does (a small Buffer is a slice of Node's shared pool, which
 * may not be moved, and moving a slice would move its neighbours too).
 */
export function movedBytes(bytes: Uint8Array): { result: Uint8Array; transfer: ArrayBuffer[] } {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
  return { result: own, transfer: [own.buffer as ArrayBuffer] };
}

/**
 * The worker side: answers each task with `handle`'s result (its buffers listed in `transfer`
 * are moved, not copied) or with the message of what it threw (and its `detail` property, which
 * must be cloneable; the pool rejects with a WorkerTaskError carrying both).
 */
export function serveTasks<T, R>(
  handle: (task: T) => Promise<{ result: R; transfer?: Transferable[] }> | { result: R; transfer?: Transferable[] },
): void {
  const port = parentPort;
  if (!port) throw new Error('serveTasks runs in a worker thread');
  const collect = idleCollector();
  port.on('message', async ({ id, task }: { id: number; task: T }) => {
    collect.busy();
    try {
      const { result, transfer } = await handle(task);
      port.postMessage({ id, result } satisfies Reply<R>, transfer ?? []);
    } catch (err) {
      const detail = (err as { detail?: unknown } | null)?.detail;
      port.postMessage({ id, error: err instanceof Error ? err.message : String(err), detail } satisfies Reply<R>);
    } finally {
      collect.idle();
    }
  });
}

/** How long a worker waits without tasks before it collects its garbage. */
const IDLE_COLLECT_MS = 1000;

/**
 * Collects a worker's garbage once it has been idle for a moment. Tasks hand workers references
 * to volumes in shared memory; a volume's memory is freed only when every thread holding one
 * has dropped it, and an idle thread allocates nothing, so it would never collect: a volume the
 * cache evicted (or a load that failed) would stay in memory, outside the budget, for as long as
 * the workers idle. V8's gc() is reached through its flag, which is set for the process here.
 */
function idleCollector(): { busy: () => void; idle: () => void } {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let running = 0;
  let timer: NodeJS.Timeout | null = null;
  return {
    busy() {
      running++;
      if (timer) clearTimeout(timer);
      timer = null;
    },
    idle() {
      running--;
      if (running > 0) return;
      timer = setTimeout(() => {
        timer = null;
        gc();
      }, IDLE_COLLECT_MS);
      timer.unref();
    },
  };
}
