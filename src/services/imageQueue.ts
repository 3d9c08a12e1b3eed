/**
 * The order in which the images of one WebSocket transfer are sent.
 *
 * Policy:
 * - The unsent image with the highest priority goes next. Every image starts at priority 0.
 * - Among equal priorities, the image whose priority was set most recently goes first; among the
 *   images of one setting, the one listed first; among images never set, the lowest index.
 * - Setting a priority replaces the image's earlier one (it may lower it). Indices outside the
 *   transfer, and images already sent, are ignored.
 *
 * A binary heap with lazy deletion: a setting pushes an entry per image and leaves the old ones
 * to be skipped when they come up, and the heap is rebuilt when stale entries outnumber the
 * live ones; images never set are not in the heap at all (a cursor walks them in index order).
 * `peek` and `take` cost O(log n) amortised.
 */

interface Entry {
  readonly index: number;
  readonly priority: number;
  /** When the priority was set (larger: more recent; the first of a list gets the largest). */
  readonly stamp: number;
}

/** Whether `a` goes before `b`. */
const before = (a: Entry, b: Entry): boolean =>
  a.priority !== b.priority ? a.priority > b.priority : a.stamp !== b.stamp ? a.stamp > b.stamp : a.index < b.index;

export class ImageQueue {
  private readonly priority: Float64Array;
  /** 0: never set. */
  private readonly stamp: Float64Array;
  private readonly sent: Uint8Array;
  private heap: Entry[] = [];
  private clock = 0;
  /** The lowest index that may still be unsent and never set. */
  private cursor = 0;
  private left: number;

  constructor(readonly count: number) {
    this.priority = new Float64Array(count);
    this.stamp = new Float64Array(count);
    this.sent = new Uint8Array(count);
    this.left = count;
  }

  /** Images not sent yet. */
  get remaining(): number {
    return this.left;
  }

  /** Whether image `k` is in the transfer and not sent yet. */
  has(k: number): boolean {
    return Number.isInteger(k) && k >= 0 && k < this.count && this.sent[k] === 0;
  }

  /** The image that goes next; -1 when every image has been sent. */
  peek(): number {
    if (this.left === 0) return -1;
    while (this.heap.length > 0 && !this.live(this.heap[0])) this.pop();
    while (this.cursor < this.count && (this.sent[this.cursor] === 1 || this.stamp[this.cursor] !== 0)) this.cursor++;
    const top = this.heap[0];
    if (this.cursor >= this.count) return top.index;
    if (!top) return this.cursor;
    return before(top, { index: this.cursor, priority: 0, stamp: 0 }) ? top.index : this.cursor;
  }

  /** Marks image `k` sent (it never comes up again). */
  take(k: number): void {
    if (!this.has(k)) return;
    this.sent[k] = 1;
    this.left--;
    if (this.left === 0) this.heap = [];
  }

  /**
   * Gives `indices` the priority `priority` (a finite number), the first listed most recent.
   * Returns how many images it applied to.
   */
  setPriority(indices: readonly number[], priority: number): number {
    const seen = new Set<number>();
    // The list is stamped from its end, so that its first entry gets the latest stamp.
    for (let i = indices.length - 1; i >= 0; i--) {
      const k = indices[i];
      if (!this.has(k)) continue;
      seen.add(k);
      this.clock++;
      this.priority[k] = priority;
      this.stamp[k] = this.clock;
      this.push({ index: k, priority, stamp: this.clock });
    }
    if (this.heap.length > 2 * this.left + 64) this.rebuild();
    return seen.size;
  }

  private live(e: Entry): boolean {
    return this.sent[e.index] === 0 && this.stamp[e.index] === e.stamp;
  }

  private rebuild(): void {
    const entries = this.heap.filter((e) => this.live(e));
    this.heap = [];
    for (const e of entries) this.push(e);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < h.length && before(h[l], h[best])) best = l;
      if (r < h.length && before(h[r], h[best])) best = r;
      if (best === i) return;
      [h[i], h[best]] = [h[best], h[i]];
      i = best;
    }
  }
}
