/**
 * A cache of large values (volumes, compressed volume streams) under one byte budget.
 *
 * Policy:
 * - Every value is held with its size in bytes; the sum of the sizes of values held, plus the
 *   bytes reserved by loads under way, never exceeds the budget.
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

interface Entry<V> {
  value: V;
  bytes: number;
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
}

export class BudgetCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly loading = new Map<string, Promise<V>>();
  private readonly reservations = new Map<string, number>();
  private used = 0;
  private reserved = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(
    readonly budgetBytes: number,
    private readonly waitMs = 30_000,
    private readonly onEvict: (key: string, bytes: number) => void = () => {},
  ) {}

  /** The cached value, or undefined; counts as a use for the LRU order. */
  peek(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  async get(key: string, load: Loader<V>): Promise<V> {
    const cached = this.peek(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    const pending = this.loading.get(key);
    if (pending) {
      this.hits++;
      return pending;
    }
    this.misses++;
    const promise = this.runLoad(key, load);
    this.loading.set(key, promise);
    try {
      return await promise;
    } finally {
      this.loading.delete(key);
    }
  }

  private async runLoad(key: string, load: Loader<V>): Promise<V> {
    try {
      const { value, bytes } = await load((b) => this.reserve(key, b));
      this.setReservation(key, 0);
      this.makeRoom(bytes, key);
      this.entries.set(key, { value, bytes });
      this.used += bytes;
      return value;
    } finally {
      this.setReservation(key, 0);
    }
  }

  private setReservation(key: string, bytes: number): void {
    this.reserved += bytes - (this.reservations.get(key) ?? 0);
    if (bytes > 0) this.reservations.set(key, bytes);
    else this.reservations.delete(key);
  }

  private async reserve(key: string, bytes: number): Promise<void> {
    if (bytes > this.budgetBytes) {
      throw tooLarge(`the data needs ${bytes} bytes, more than the cache budget cacheBytes (${this.budgetBytes})`);
    }
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const more = bytes - (this.reservations.get(key) ?? 0);
      const others = [...this.loading].filter(([k]) => k !== key && (this.reservations.get(k) ?? 0) > 0).map(([, p]) => p);
      const left = deadline - Date.now();
      if (others.length === 0 || left <= 0) {
        this.makeRoom(more, key);
        break;
      }
      if (this.tryMakeRoom(more, key)) break;
      // Other loads hold the room: wait until one of them ends, then try again.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ...others.map((p) => p.then(() => {}, () => {})),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, left))),
      ]);
      clearTimeout(timer);
    }
    this.setReservation(key, bytes);
  }

  private tryMakeRoom(bytes: number, forKey: string, evictable?: (key: string) => boolean): boolean {
    try {
      this.makeRoom(bytes, forKey, evictable);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Evicts least recently used entries (those `evictable` allows, all by default) until `bytes`
   * more fit; throws 503 when they cannot.
   */
  private makeRoom(bytes: number, forKey: string, evictable?: (key: string) => boolean): void {
    for (const [k, e] of this.entries) {
      if (this.used + this.reserved + bytes <= this.budgetBytes) break;
      if (k === forKey || (evictable && !evictable(k))) continue;
      this.entries.delete(k);
      this.used -= e.bytes;
      this.evictions++;
      this.onEvict(k, e.bytes);
    }
    if (this.used + this.reserved + bytes > this.budgetBytes) {
      throw new CircusError('UNAVAILABLE', 'the cache cannot make room now: other series are loading; try again shortly');
    }
  }

  /**
   * Stores a value made outside `get` (a compressed stream, a rendered image) if room can be
   * made for it now without waiting, evicting only entries `evictable` allows (all by default);
   * returns whether it was stored.
   */
  put(key: string, value: V, bytes: number, evictable?: (key: string) => boolean): boolean {
    if (bytes > this.budgetBytes || this.loading.has(key)) return false;
    this.delete(key);
    if (evictable && this.used + this.reserved + bytes > this.budgetBytes) {
      // Evict nothing when even every allowed eviction would not make room.
      let freeable = 0;
      for (const [k, e] of this.entries) if (evictable(k)) freeable += e.bytes;
      if (this.used + this.reserved + bytes - freeable > this.budgetBytes) return false;
    }
    if (!this.tryMakeRoom(bytes, key, evictable)) return false;
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    return true;
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.used -= e.bytes;
  }

  /** Count and bytes of the values whose keys start with `prefix`. */
  held(prefix: string): { count: number; bytes: number } {
    let count = 0;
    let bytes = 0;
    for (const [k, e] of this.entries) {
      if (!k.startsWith(prefix)) continue;
      count++;
      bytes += e.bytes;
    }
    return { count, bytes };
  }

  stats(): CacheStats {
    return {
      count: this.entries.size,
      usedBytes: this.used,
      reservedBytes: this.reserved,
      budgetBytes: this.budgetBytes,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      loading: this.loading.size,
    };
  }
}
