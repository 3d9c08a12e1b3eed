/**
 * The generic async helpers (src/util/async.ts): bounds that hold, order kept, failures that stop
 * the work, yielding to the event loop, time limits and reuse of recent answers. Clocks are
 * injected or faked: nothing here waits on real time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cooperative, Limiter, mapLimit, reuseFor, withinTime } from '../src/util/async.js';

/** A promise settled from outside. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every settled promise's callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('mapLimit', () => {
  it('keeps at most `limit` calls in flight and gives the results in input order, whatever order they end in', async () => {
    const gates = Array.from({ length: 7 }, () => deferred<void>());
    let inFlight = 0;
    let most = 0;
    const started: number[] = [];
    const done = mapLimit([10, 11, 12, 13, 14, 15, 16], 3, async (item, index) => {
      started.push(index);
      inFlight++;
      most = Math.max(most, inFlight);
      await gates[index].promise;
      inFlight--;
      return item * 2;
    });
    await settle();
    expect(started).toEqual([0, 1, 2]);
    // The last started ends first: the next item takes its place, and only one.
    gates[2].resolve();
    await settle();
    expect(started).toEqual([0, 1, 2, 3]);
    for (const i of [6, 5, 4, 3, 1, 0]) gates[i].resolve();
    expect(await done).toEqual([20, 22, 24, 26, 28, 30, 32]);
    expect(most).toBe(3);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('runs every item at once when the limit is above their number, and answers [] for no items', async () => {
    let inFlight = 0;
    let most = 0;
    const gate = deferred();
    const done = mapLimit(['a', 'b'], 10, async (item) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await gate.promise;
      return item.toUpperCase();
    });
    await settle();
    expect(most).toBe(2);
    gate.resolve();
    expect(await done).toEqual(['A', 'B']);
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });

  it('after a failure starts nothing new, waits for the calls in flight, then throws the first failure', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<void>());
    const started: number[] = [];
    const ended: number[] = [];
    let outcome: unknown = 'pending';
    const done = mapLimit([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      await gates[i].promise;
      ended.push(i);
      if (i === 0 || i === 1) throw new Error(`item ${i} is bad`);
      return i;
    }).then(
      (v) => {
        outcome = v;
      },
      (e: Error) => {
        outcome = e.message;
      },
    );
    await settle();
    gates[0].resolve();
    await settle();
    // Item 1 is still running: nothing is thrown yet, and no item starts after the failure.
    expect(outcome).toBe('pending');
    expect(started).toEqual([0, 1]);
    gates[1].resolve();
    await done;
    expect(outcome).toBe('item 0 is bad');
    expect(ended).toEqual([0, 1]);
    expect(started).toEqual([0, 1]);
  });
});

describe('Limiter', () => {
  it('runs at most `limit` calls at once, the others in arrival order, and hands back each result', async () => {
    const limiter = new Limiter(2);
    const gates = Array.from({ length: 5 }, () => deferred<void>());
    const started: number[] = [];
    let inFlight = 0;
    let most = 0;
    const calls = gates.map((gate, i) =>
      limiter.run(async () => {
        started.push(i);
        inFlight++;
        most = Math.max(most, inFlight);
        await gate.promise;
        inFlight--;
        return `call ${i}`;
      }),
    );
    await settle();
    expect(started).toEqual([0, 1]);
    gates[1].resolve();
    await settle();
    expect(started).toEqual([0, 1, 2]);
    gates[0].resolve();
    await settle();
    expect(started).toEqual([0, 1, 2, 3]);
    for (const g of gates) g.resolve();
    expect(await Promise.all(calls)).toEqual(['call 0', 'call 1', 'call 2', 'call 3', 'call 4']);
    expect(most).toBe(2);
  });

  it('frees the place of a call that fails, which rejects with its own error', async () => {
    const limiter = new Limiter(1);
    const failing = limiter.run(async () => {
      throw new Error('the PACS is down');
    });
    const next = limiter.run(async () => 'next');
    await expect(failing).rejects.toThrow('the PACS is down');
    expect(await next).toBe('next');
    // The place is free again: a call after both runs at once.
    let ran = false;
    await limiter.run(async () => {
      ran = true;
    });
    expect(ran).toBe(true);
  });
});

describe('cooperative', () => {
  it('yields to the event loop only once its budget of time is spent, then counts afresh', async () => {
    let clock = 1000;
    const pause = cooperative(8, () => clock);
    const order: string[] = [];
    // Within the budget: the pause resolves before an immediate scheduled before it runs.
    setImmediate(() => order.push('immediate 1'));
    clock += 7;
    await pause();
    order.push('pause 1');
    await settle();
    expect(order).toEqual(['pause 1', 'immediate 1']);
    // The budget spent: the pause lets the immediate scheduled before it run first.
    setImmediate(() => order.push('immediate 2'));
    clock += 1;
    await pause();
    order.push('pause 2');
    expect(order).toEqual(['pause 1', 'immediate 1', 'immediate 2', 'pause 2']);
    // The stretch counts from the yield: 7 ms later it does not yield again.
    setImmediate(() => order.push('immediate 3'));
    clock += 7;
    await pause();
    order.push('pause 3');
    await settle();
    expect(order.slice(4)).toEqual(['pause 3', 'immediate 3']);
  });
});

describe('withinTime', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers the check's own answer when it comes in time", async () => {
    expect(await withinTime('the index', async () => null, 1000)).toBeNull();
    expect(await withinTime('the index', async () => 'the index is being rebuilt', 1000)).toBe('the index is being rebuilt');
  });

  it('names what failed with its message when the check throws', async () => {
    const why = await withinTime(
      'data directory /srv/dicom',
      async () => {
        throw new Error('EACCES: permission denied');
      },
      1000,
    );
    expect(why).toBe('data directory /srv/dicom: EACCES: permission denied');
  });

  it('fails a check that takes longer than its limit, saying how long it was given, and keeps no timer', async () => {
    vi.useFakeTimers();
    const never = deferred<string | null>();
    let why: string | null | undefined;
    const done = withinTime('the series source', () => never.promise, 2000).then((w) => {
      why = w;
    });
    await vi.advanceTimersByTimeAsync(1999);
    expect(why).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await done;
    expect(why).toBe('the series source did not answer within 2000 ms');
    expect(vi.getTimerCount()).toBe(0);
    // A check that answers in time leaves no timer behind either.
    await withinTime('the index', async () => null, 2000);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('reuseFor', () => {
  it('reuses an answer for `ms` milliseconds, a call under way included, then produces again', async () => {
    let clock = 0;
    let produced = 0;
    const gate = deferred<void>();
    const list = reuseFor(
      2000,
      async () => {
        produced++;
        await gate.promise;
        return [`listing ${produced}`];
      },
      () => clock,
    );
    const first = list();
    clock = 1999;
    const second = list();
    expect(second).toBe(first);
    gate.resolve();
    expect(await second).toEqual(['listing 1']);
    expect(produced).toBe(1);
    clock = 2000;
    expect(await list()).toEqual(['listing 2']);
    clock = 3999;
    expect(await list()).toEqual(['listing 2']);
    expect(produced).toBe(2);
  });

  it('does not reuse an answer that rejected: the next call produces again', async () => {
    let produced = 0;
    const list = reuseFor(
      2000,
      async () => {
        produced++;
        if (produced === 1) throw new Error('the PACS is down');
        return 'listed';
      },
      () => 0,
    );
    await expect(list()).rejects.toThrow('the PACS is down');
    expect(await list()).toBe('listed');
    expect(await list()).toBe('listed');
    expect(produced).toBe(2);
  });
});
