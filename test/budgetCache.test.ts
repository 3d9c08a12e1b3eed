import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { BudgetCache, type CacheRegion } from '../src/services/budgetCache.js';

const value = (bytes: number) => async (reserve: (b: number) => Promise<void>) => {
  await reserve(bytes);
  return { value: `v${bytes}`, bytes };
};

/** A cache with one region that may evict anything, as volumes do. */
function single(
  budget: number,
  waitMs?: number,
  onEvict?: (region: string, key: string) => void,
): { cache: BudgetCache; region: CacheRegion<string> } {
  const cache = new BudgetCache(budget, waitMs, onEvict);
  return { cache, region: cache.region<string>('values', { evictsOthers: true }) };
}

describe('BudgetCache', () => {
  it('evicts least recently used values to stay within its budget', async () => {
    const evicted: string[] = [];
    const { cache, region } = single(100, 1000, (r, k) => evicted.push(`${r}/${k}`));
    await region.get('a', value(40));
    await region.get('b', value(40));
    await region.get('a', value(40)); // a is now the most recent
    await region.get('c', value(40));
    expect(evicted).toEqual(['values/b']);
    expect(cache.stats()).toMatchObject({ count: 2, usedBytes: 80, hits: 1, misses: 3, evictions: 1, reservedBytes: 0 });
    expect(region.stats()).toEqual({ count: 2, bytes: 80, hits: 1, misses: 3, evictions: 1 });
  });

  it('refuses with 413 what exceeds the whole budget, and caches no failure', async () => {
    const { cache, region } = single(100);
    const err = await region.get('x', value(101)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CircusError);
    expect((err as CircusError).status).toBe(413);
    expect(cache.stats()).toMatchObject({ count: 0, usedBytes: 0, reservedBytes: 0, loading: 0 });
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error('disk');
    };
    await expect(region.get('y', failing)).rejects.toThrow('disk');
    await expect(region.get('y', failing)).rejects.toThrow('disk');
    expect(calls).toBe(2);
  });

  it('shares one load between concurrent requests', async () => {
    const { region } = single(100);
    let calls = 0;
    const slow = async (reserve: (b: number) => Promise<void>) => {
      calls++;
      await reserve(10);
      await new Promise((r) => setTimeout(r, 20));
      return { value: 'slow', bytes: 10 };
    };
    const results = await Promise.all([region.get('k', slow), region.get('k', slow), region.get('k', slow)]);
    expect(results).toEqual(['slow', 'slow', 'slow']);
    expect(calls).toBe(1);
  });

  it('makes a load wait for others holding the room, and answers 503 after the wait limit', async () => {
    const { cache, region } = single(100, 50);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const blocking = async (reserve: (b: number) => Promise<void>) => {
      await reserve(80);
      await held;
      return { value: 'first', bytes: 80 };
    };
    const first = region.get('first', blocking);
    await new Promise((r) => setTimeout(r, 5));
    const started = Date.now();
    const err = await region.get('second', value(80)).catch((e: unknown) => e);
    expect((err as CircusError).status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // Within the limit, the second load proceeds once the first ends (evicting it).
    const second = region.get('second', value(80));
    setTimeout(release, 10);
    expect(await first).toBe('first');
    expect(await second).toBe('v80');
    expect(cache.stats()).toMatchObject({ count: 1, usedBytes: 80, reservedBytes: 0 });
  });
});

describe('cache regions', () => {
  it('a region that does not evict others takes only free room or its own room', async () => {
    const cache = new BudgetCache(100);
    const volumes = cache.region<string>('volumes', { evictsOthers: true });
    const streams = cache.region<string>('streams', { evictsOthers: true });
    const images = cache.region<string>('images', { evictsOthers: false });
    await volumes.get('a', value(60));
    expect(images.put('1', 'png', 30)).toBe(true);
    // Room only by evicting the other image.
    expect(images.put('2', 'png', 30)).toBe(true);
    expect(images.peek('1')).toBeUndefined();
    expect(images.put('3', 'png', 50)).toBe(false);
    expect(images.peek('2')).toBe('png'); // a put that cannot succeed evicts nothing
    expect(volumes.peek('a')).toBe('v60');
    // Keys are per region: the same key in two regions is two values.
    expect(streams.put('a', 'gz', 10)).toBe(true);
    expect(streams.peek('a')).toBe('gz');
    expect(volumes.peek('a')).toBe('v60');
    // A region that evicts others takes the least recently used of any region.
    expect(streams.put('b', 'gz', 30)).toBe(true); // image 2 goes
    expect(images.peek('2')).toBeUndefined();
    expect(streams.peek('a')).toBe('gz');
    expect(volumes.peek('a')).toBe('v60');
    // Recency now: stream b, stream a, volume a.
    expect(streams.put('c', 'gz', 40)).toBe(true);
    expect(streams.peek('b')).toBeUndefined();
    expect(streams.peek('a')).toBeUndefined();
    expect(volumes.peek('a')).toBe('v60');
    expect(cache.stats()).toMatchObject({ usedBytes: 100, count: 2 });
    expect(cache.stats().regions).toEqual({
      volumes: { count: 1, bytes: 60, hits: 4, misses: 1, evictions: 0 },
      streams: { count: 1, bytes: 40, hits: 2, misses: 2, evictions: 2 },
      images: { count: 0, bytes: 0, hits: 1, misses: 2, evictions: 2 },
    });
  });

  it('a region that does not evict others loads only into free room or its own room', async () => {
    const cache = new BudgetCache(100);
    const volumes = cache.region<string>('volumes', { evictsOthers: true });
    const images = cache.region<string>('images', { evictsOthers: false });
    await volumes.get('a', value(80));
    const err = await images.get('x', value(50)).catch((e: unknown) => e);
    expect((err as CircusError).status).toBe(503);
    expect(volumes.peek('a')).toBe('v80');
    expect(await images.get('y', value(20))).toBe('v20');
    expect(cache.stats()).toMatchObject({ usedBytes: 100, reservedBytes: 0 });
  });

  it("delete frees a value's bytes in its region only, and names are unique", async () => {
    const cache = new BudgetCache(100);
    const a = cache.region<string>('a', { evictsOthers: true });
    const b = cache.region<string>('b', { evictsOthers: true });
    await a.get('k', value(30));
    await b.get('k', value(20));
    a.delete('k');
    expect(a.stats()).toMatchObject({ count: 0, bytes: 0 });
    expect(b.stats()).toMatchObject({ count: 1, bytes: 20 });
    expect(cache.stats().usedBytes).toBe(20);
    expect(() => cache.region('a', { evictsOthers: false })).toThrow(/exists already/);
  });
});
