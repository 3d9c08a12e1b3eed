import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { BudgetCache } from '../src/services/budgetCache.js';

const value = (bytes: number) => async (reserve: (b: number) => Promise<void>) => {
  await reserve(bytes);
  return { value: `v${bytes}`, bytes };
};

describe('BudgetCache', () => {
  it('evicts least recently used values to stay within its budget', async () => {
    const evicted: string[] = [];
    const cache = new BudgetCache<string>(100, 1000, (k) => evicted.push(k));
    await cache.get('a', value(40));
    await cache.get('b', value(40));
    await cache.get('a', value(40)); // a is now the most recent
    await cache.get('c', value(40));
    expect(evicted).toEqual(['b']);
    expect(cache.stats()).toMatchObject({ count: 2, usedBytes: 80, hits: 1, misses: 3, evictions: 1, reservedBytes: 0 });
  });

  it('refuses with 413 what exceeds the whole budget, and caches no failure', async () => {
    const cache = new BudgetCache<string>(100);
    const err = await cache.get('x', value(101)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(413);
    expect(cache.stats()).toMatchObject({ count: 0, usedBytes: 0, reservedBytes: 0, loading: 0 });
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error('disk');
    };
    await expect(cache.get('y', failing)).rejects.toThrow('disk');
    await expect(cache.get('y', failing)).rejects.toThrow('disk');
    expect(calls).toBe(2);
  });

  it('shares one load between concurrent requests', async () => {
    const cache = new BudgetCache<string>(100);
    let calls = 0;
    const slow = async (reserve: (b: number) => Promise<void>) => {
      calls++;
      await reserve(10);
      await new Promise((r) => setTimeout(r, 20));
      return { value: 'slow', bytes: 10 };
    };
    const results = await Promise.all([cache.get('k', slow), cache.get('k', slow), cache.get('k', slow)]);
    expect(results).toEqual(['slow', 'slow', 'slow']);
    expect(calls).toBe(1);
  });

  it('makes a load wait for others holding the room, and answers 503 after the wait limit', async () => {
    const cache = new BudgetCache<string>(100, 50);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const blocking = async (reserve: (b: number) => Promise<void>) => {
      await reserve(80);
      await held;
      return { value: 'first', bytes: 80 };
    };
    const first = cache.get('first', blocking);
    await new Promise((r) => setTimeout(r, 5));
    const started = Date.now();
    const err = await cache.get('second', value(80)).catch((e: unknown) => e);
    expect((err as CircusError).status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // Within the limit, the second load proceeds once the first ends (evicting it).
    const second = cache.get('second', value(80));
    setTimeout(release, 10);
    expect(await first).toBe('first');
    expect(await second).toBe('v80');
    expect(cache.stats()).toMatchObject({ count: 1, usedBytes: 80, reservedBytes: 0 });
  });
});

describe('BudgetCache.put', () => {
  it('evicts only what the caller allows, and refuses when that is not enough', async () => {
    const cache = new BudgetCache<string>(100);
    await cache.get('volume:a', value(60));
    expect(cache.put('img:1', 'png', 30, (k) => k.startsWith('img:'))).toBe(true);
    // Room only by evicting the other image.
    expect(cache.put('img:2', 'png', 30, (k) => k.startsWith('img:'))).toBe(true);
    expect(cache.peek('img:1')).toBeUndefined();
    expect(cache.put('img:3', 'png', 50, (k) => k.startsWith('img:'))).toBe(false);
    expect(cache.peek('img:2')).toBe('png'); // a put that cannot succeed evicts nothing
    expect(cache.peek('volume:a')).toBe('v60');
    // Without a filter anything may go.
    expect(cache.put('raw:a', 'gz', 70)).toBe(true);
    expect(cache.peek('volume:a')).toBeUndefined();
    expect(cache.stats()).toMatchObject({ usedBytes: 70, count: 1 });
  });
});
