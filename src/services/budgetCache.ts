/**
 * A cache of large values (volumes, compressed volume streams, rendered images) under one byte
 * budget, in typed regions that share it.
 *
 * Policy:
 * - Every value is held with its size in bytes; the sum of the sizes of values held, plus the
 *   bytes reserved by loads under way, never exceeds the budget.
 * - Values live in regions (`region(name, policy)`): each region has its own value type, keys
 *   and counters (entries, bytes, hits, misses, evictions), and an eviction policy: a region
 *   that `evictsOthers` makes room by evicting the least recently used values of any region;
 *   one that does not (rendered images) takes only free room or its own values' room, so a
 *   cheap value never pushes out a dear one. Recency is one order across all regions.
 * - A load reserves its bytes (through the `reserve` callback it is given) before it allocates
 *   them; reserving evicts least recently used values until the bytes fit. A load that needs
 *   more than the whole budget is refused with 413. One that cannot fit because other loads
 *   hold the room waits for them to finish (their values then become evictable), and is
 *   refused with 503 only when that takes longer than `waitMs`.
 * - One load per key at a time: concurrent requests for a key share the same promise.
 * - Failures are not cached: the next request tries again.
 * - Values are never mutated by the cache; evicting only drops the cache's reference (a request
 *   still using the value keeps it alive until it finishes).
 */
import { CircusError, tooLarge } from '../core/errors.js';

export interface Loaded<V> {
  value: V;
  bytes: number;
}

/** Loads a value; awaits `reserve(totalBytes)` before allocating (again when the need grows). */
export type Loader<V> = (reserve: (bytes: number) => Promise<void>) => Promise<Loaded<V>>;

interface Entry {
  region: CacheRegion<unknown>;
  value: unknown;
  bytes: number;
}

export interface RegionStats {
  count: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

export interface CacheStats {
  count: number;
  usedBytes: number;
  reservedBytes: number;
  budgetBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  loading: number;
  regions: Record<string, RegionStats>;
}

export interface RegionPolicy {
  /** Whether values of this region may evict values of other regions to make room. */
  evictsOthers: boolean;
}

/** One region of a BudgetCache: values of one type under their own keys and counters. */
export class CacheRegion<V> {
  /** @internal counters kept by the owning cache */
  readonly counts = { count: 0, bytes: 0, hits: 0, misses: 0, evictions: 0 };

  /** @internal made by BudgetCache.region */
  constructor(
    private readonly owner: BudgetCache,
    readonly name: string,
    readonly policy: RegionPolicy,
  ) {}

  /** The cached value, or undefined; counts as a use for the LRU order, and as a hit or a miss. */
  peek(key: string): V | undefined {
    const value = this.owner.lookup(this, key) as V | undefined;
    if (value === undefined) this.counts.misses++;
    else this.counts.hits++;
    return value;
  }

  /** The value, from the cache, from a load under way, or loaded now by `load`. */
  get(key: string, load: Loader<V>): Promise<V> {
    return this.owner.load(this as CacheRegion<unknown>, key, load) as Promise<V>;
  }

  /**
   * Stores a value made outside `get` (a compressed stream, a rendered image) if room can be
   * made for it now without waiting, as the region's policy allows; returns whether it was stored.
   */
  put(key: string, value: V, bytes: number): boolean {
    return this.owner.store(this as CacheRegion<unknown>, key, value, bytes);
  }

  delete(key: string): void {
    this.owner.remove(this as CacheRegion<unknown>, key);
  }

  stats(): RegionStats {
    return { ...this.counts };
  }
}

export class BudgetCache {
  /** Every region's entries in one recency order, keyed by region name and key. */
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<unknown>>();
  private readonly reservations = new Map<string, number>();
  private readonly regions = new Map<string, CacheRegion<unknown>>();
  private used = 0;
  private reserved = 0;

  constructor(
    readonly budgetBytes: number,
    private readonly waitMs = 30_000,
    private readonly onEvict: (region: string, key: string, bytes: number) => void = () => {},
  ) {}

  /** Creates a region; names are unique. */
  region<V>(name: string, policy: RegionPolicy): CacheRegion<V> {
    if (this.regions.has(name)) throw new RangeError(`cache region ${name} exists already`);
    const region = new CacheRegion<V>(this, name, policy);
    this.regions.set(name, region as CacheRegion<unknown>);
    return region;
  }

  private static id(region: CacheRegion<unknown>, key: string): string {
    return `${region.name}\u0000${key}`;
  }

  /** @internal */
  lookup(region: CacheRegion<unknown>, key: string): unknown {
    const id = BudgetCache.id(region, key);
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    this.entries.set(id, e);
    return e.value;
  }

  /** @internal */
  async load(region: CacheRegion<unknown>, key: string, load: Loader<unknown>): Promise<unknown> {
    const cached = this.lookup(region, key);
    if (cached !== undefined) {
      region.counts.hits++;
      return cached;
    }
    const id = BudgetCache.id(region, key);
    const pending = this.loading.get(id);
    if (pending) {
      region.counts.hits++;
      return pending;
    }
    region.counts.misses++;
    const promise = this.runLoad(region, id, load);
    this.loading.set(id, promise);
    try {
      return await promise;
    } finally {
      this.loading.delete(id);
    }
  }

  private async runLoad(region: CacheRegion<unknown>, id: string, load: Loader<unknown>): Promise<unknown> {
    try {
      const only = region.policy.evictsOthers ? undefined : region;
      const { value, bytes } = await load((b) => this.reserve(id, b, only));
      this.setReservation(id, 0);
      this.makeRoom(bytes, id, only);
      this.add(region, id, value, bytes);
      return value;
    } finally {
      this.setReservation(id, 0);
    }
  }

  private add(region: CacheRegion<unknown>, id: string, value: unknown, bytes: number): void {
    this.entries.set(id, { region, value, bytes });
    this.used += bytes;
    region.counts.count++;
    region.counts.bytes += bytes;
  }

  private drop(id: string, e: Entry): void {
    this.entries.delete(id);
    this.used -= e.bytes;
    e.region.counts.count--;
    e.region.counts.bytes -= e.bytes;
  }

  private setReservation(id: string, bytes: number): void {
    this.reserved += bytes - (this.reservations.get(id) ?? 0);
    if (bytes > 0) this.reservations.set(id, bytes);
    else this.reservations.delete(id);
  }

  /** Reserves `bytes` for the load `id`, evicting (from region `only` when given) or waiting for other loads. */
  private async reserve(id: string, bytes: number, only?: CacheRegion<unknown>): Promise<void> {
    if (bytes > this.budgetBytes) {
      throw tooLarge(`the data needs ${bytes} bytes, more than the cache budget cacheBytes (${this.budgetBytes})`);
    }
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const more = bytes - (this.reservations.get(id) ?? 0);
      const others = [...this.loading].filter(([k]) => k !== id && (this.reservations.get(k) ?? 0) > 0).map(([, p]) => p);
      const left = deadline - Date.now();
      if (others.length === 0 || left <= 0) {
        this.makeRoom(more, id, only);
        break;
      }
      if (this.tryMakeRoom(more, id, only)) break;
      // Other loads hold the room: wait until one of them ends, then try again.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ...others.map((p) =>
          p.then(
            () => {},
            () => {},
          ),
        ),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, left))),
      ]);
      clearTimeout(timer);
    }
    this.setReservation(id, bytes);
  }

  private tryMakeRoom(bytes: number, forId: string, only?: CacheRegion<unknown>): boolean {
    try {
      this.makeRoom(bytes, forId, only);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Evicts least recently used entries (of region `only` when given, of any region otherwise)
   * until `bytes` more fit; throws 503 when they cannot.
   */
  private makeRoom(bytes: number, forId: string, only?: CacheRegion<unknown>): void {
    for (const [id, e] of this.entries) {
      if (this.used + this.reserved + bytes <= this.budgetBytes) break;
      if (id === forId || (only && e.region !== only)) continue;
      this.drop(id, e);
      e.region.counts.evictions++;
      this.onEvict(e.region.name, id.slice(e.region.name.length + 1), e.bytes);
    }
    if (this.used + this.reserved + bytes > this.budgetBytes) {
      throw new CircusError('UNAVAILABLE', 'the cache cannot make room now: other series are loading; try again shortly');
    }
  }

  /** @internal */
  store(region: CacheRegion<unknown>, key: string, value: unknown, bytes: number): boolean {
    const id = BudgetCache.id(region, key);
    if (bytes > this.budgetBytes || this.loading.has(id)) return false;
    this.remove(region, key);
    const only = region.policy.evictsOthers ? undefined : region;
    if (only && this.used + this.reserved + bytes > this.budgetBytes) {
      // Evict nothing when even every allowed eviction would not make room.
      if (this.used + this.reserved + bytes - only.counts.bytes > this.budgetBytes) return false;
    }
    if (!this.tryMakeRoom(bytes, id, only)) return false;
    this.add(region, id, value, bytes);
    return true;
  }

  /** @internal */
  remove(region: CacheRegion<unknown>, key: string): void {
    const id = BudgetCache.id(region, key);
    const e = this.entries.get(id);
    if (e) this.drop(id, e);
  }

  stats(): CacheStats {
    const regions: Record<string, RegionStats> = {};
    let hits = 0;
    let misses = 0;
    let evictions = 0;
    for (const r of this.regions.values()) {
      regions[r.name] = r.stats();
      hits += r.counts.hits;
      misses += r.counts.misses;
      evictions += r.counts.evictions;
    }
    return {
      count: this.entries.size,
      usedBytes: this.used,
      reservedBytes: this.reserved,
      budgetBytes: this.budgetBytes,
      hits,
      misses,
      evictions,
      loading: this.loading.size,
      regions,
    };
  }
}
