/**
 * Generic async helpers, with no knowledge of DICOM, series or HTTP: bounded concurrency
 * (`mapLimit` over a list, `Limiter` for calls from anywhere), yielding to the event loop
 * (`cooperative`), a time limit on a check (`withinTime`) and reuse of a recent answer
 * (`reuseFor`). Clocks are parameters where a test needs to move them.
 */

/**
 * Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order.
 * After a failure no new item starts, the calls in flight are waited for, then the first
 * failure is thrown: nothing keeps working in the background for a task that has failed.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === null) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
  return out;
}

/**
 * A pause to call between steps of a long stretch of work: it lets the event loop run (one
 * `setImmediate`) when the stretch has lasted more than `budgetMs` since the last yield, and
 * resolves at once otherwise. `now` is the clock, in milliseconds.
 */
export function cooperative(budgetMs = 8, now: () => number = () => performance.now()): () => Promise<void> {
  let since = now();
  return async () => {
    if (now() - since < budgetMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = now();
  };
}

/** At most `limit` calls at once, from anywhere, the others waiting in arrival order. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  /** Runs `fn` once fewer than `limit` calls are running; a call that fails frees its place too. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * `check`, which resolves to why something cannot be done (a sentence) or null when it can,
 * failed with `what` when it takes longer than `timeoutMs` ("<what> did not answer within <n>
 * ms") or throws ("<what>: <message>"). The timer never keeps the process alive.
 */
export async function withinTime(what: string, check: () => Promise<string | null>, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`${what} did not answer within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([check().catch((err: Error) => `${what}: ${err.message}`), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `produce`, with each answer reused by the calls of the next `ms` milliseconds (a promise
 * still under way included), so that calls in quick succession do the work once. An answer
 * that rejects is not reused: the next call produces again. `now` is the clock, in milliseconds.
 */
export function reuseFor<T>(ms: number, produce: () => Promise<T>, now: () => number = () => Date.now()): () => Promise<T> {
  let last: { at: number; answer: Promise<T> } | null = null;
  return () => {
    const at = now();
    if (last && at - last.at < ms) return last.answer;
    const answer = produce();
    const entry = { at, answer };
    last = entry;
    answer.catch(() => {
      if (last === entry) last = null;
    });
    return answer;
  };
}
