/**
 * A least-recently-used map under a budget (of bytes, or of anything `cost` counts): setting an
 * entry past the budget evicts the least recently used ones (the newest stays even when it alone
 * is over), each handed to `evicted`. No DOM here.
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  private used = 0;

  constructor(
    private readonly budget: number,
    private readonly cost: (v: V) => number,
    private readonly evicted: (v: V) => void = () => {},
  ) {}

  /** The value, now the most recently used; undefined when absent. */
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Whether the key is held, without touching its place. */
  has(key: string): boolean {
    return this.map.has(key);
  }

  set(key: string, v: V): void {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.used -= this.cost(old);
      if (old !== v) this.evicted(old);
    }
    this.map.set(key, v);
    this.used += this.cost(v);
    // The newest entry stays even when it alone is over the budget.
    while (this.used > this.budget && this.map.size > 1) {
      const [oldestKey, oldest] = this.map.entries().next().value as [string, V];
      this.map.delete(oldestKey);
      this.used -= this.cost(oldest);
      this.evicted(oldest);
    }
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.used;
  }
}
