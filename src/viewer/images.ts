/**
 * Images in the browser: a least-recently-used cache of decoded images keyed by their API URL,
 * under a byte budget; requests shared by URL (a pane and the prefetcher asking for the same
 * image make one request), each aborted when nobody wants it any more; and a prefetcher that
 * fetches, a few at a time, the images the panes are likely to show next.
 */
import { type Api, isAbort, type LoadedImage } from './api.js';
import { LruCache } from './lru.js';

interface Pending {
  controller: AbortController;
  owners: Set<object>;
  promise: Promise<LoadedImage>;
}

export interface StoreStats {
  /** Images fetched and decoded. */
  fetched: number;
  /** Requests aborted because nobody wanted their image any more. */
  aborted: number;
  /** Requests that failed (an error status, the network). */
  failed: number;
  /** Recent time from asking for an image to having it decoded, in ms (moving average). */
  latencyMs: number;
}

export class ImageStore {
  private readonly cache: LruCache<LoadedImage>;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(image: LoadedImage) => void>();
  readonly stats: StoreStats = { fetched: 0, aborted: 0, failed: 0, latencyMs: 50 };

  constructor(
    private readonly api: Api,
    budgetBytes: number,
  ) {
    this.cache = new LruCache<LoadedImage>(
      budgetBytes,
      (image) => image.bytes,
      (image) => image.bitmap.close(),
    );
  }

  /** The image of a URL when it is in the cache (now its most recent entry). */
  cached(url: string): LoadedImage | undefined {
    return this.cache.get(url);
  }

  has(url: string): boolean {
    return this.cache.has(url);
  }

  isPending(url: string): boolean {
    return this.pending.has(url);
  }

  /** Requests under way that `owner` wants. */
  pendingFor(owner: object): number {
    let n = 0;
    for (const p of this.pending.values()) if (p.owners.has(owner)) n++;
    return n;
  }

  get cacheEntries(): number {
    return this.cache.size;
  }

  /** Calls `listener` with every image that comes into the cache (a prefetched one a pane waits for, say). */
  onLoaded(listener: (image: LoadedImage) => void): void {
    this.listeners.add(listener);
  }

  /**
   * The image of a URL, from the cache, from a request under way, or from a new request; `owner`
   * wants it until it calls `release`. Rejects with the request's error (an AbortError when
   * every owner released it first).
   */
  request(url: string, owner: object): Promise<LoadedImage> {
    const hit = this.cache.get(url);
    if (hit) return Promise.resolve(hit);
    let entry = this.pending.get(url);
    if (!entry) {
      const controller = new AbortController();
      const started = performance.now();
      const created: Pending = { controller, owners: new Set(), promise: Promise.resolve(null as unknown as LoadedImage) };
      created.promise = this.api.image(url, controller.signal).then(
        (image) => {
          if (this.pending.get(url) === created) this.pending.delete(url);
          this.cache.set(url, image);
          this.stats.fetched++;
          this.stats.latencyMs = 0.7 * this.stats.latencyMs + 0.3 * (performance.now() - started);
          for (const listener of this.listeners) listener(image);
          return image;
        },
        (err: unknown) => {
          if (this.pending.get(url) === created) this.pending.delete(url);
          if (!isAbort(err)) this.stats.failed++;
          throw err;
        },
      );
      created.promise.catch(() => {});
      this.pending.set(url, created);
      entry = created;
    }
    entry.owners.add(owner);
    return entry.promise;
  }

  /** `owner` no longer wants the image of `url`; a request nobody wants is aborted. */
  release(url: string, owner: object): void {
    const entry = this.pending.get(url);
    if (!entry?.owners.delete(owner) || entry.owners.size > 0) return;
    this.pending.delete(url);
    entry.controller.abort();
    this.stats.aborted++;
  }
}

/**
 * Fetches, a few at a time, the images panes will likely want next. Each pane states its wishes
 * (most likely first) and the images still worth having that are under way (ahead of a pane
 * scrolling faster than images come, the near ones are not asked for but are let finish),
 * replacing what it said before; the lists are served in turn, and a prefetch that neither list
 * of any pane names any more is released (aborted unless a pane wants it too).
 */
export class Prefetcher {
  private readonly wishes = new Map<string, { fetch: string[]; keep: string[] }>();
  private readonly inFlight = new Set<string>();
  /** URLs that failed: not asked again (their pane shows the error when it gets there). */
  private readonly failed = new Set<string>();
  prefetched = 0;
  /** Requests under way at once. */
  concurrency: number;

  constructor(
    private readonly store: ImageStore,
    concurrency = 2,
  ) {
    this.concurrency = concurrency;
  }

  want(key: string, fetch: string[], keep: string[] = []): void {
    this.wishes.set(key, { fetch, keep });
    const wanted = new Set(this.order());
    for (const w of this.wishes.values()) for (const url of w.keep) wanted.add(url);
    for (const url of [...this.inFlight]) {
      if (!wanted.has(url)) {
        this.inFlight.delete(url);
        this.store.release(url, this);
      }
    }
    this.pump();
  }

  /** The wish lists merged in turn: first wishes of every pane, then second ones, and so on. */
  private order(): string[] {
    const lists = [...this.wishes.values()].map((w) => w.fetch);
    const out: string[] = [];
    const seen = new Set<string>();
    const longest = Math.max(0, ...lists.map((l) => l.length));
    for (let i = 0; i < longest; i++) {
      for (const list of lists) {
        const url = list[i];
        if (url !== undefined && !seen.has(url)) {
          seen.add(url);
          out.push(url);
        }
      }
    }
    return out;
  }

  private pump(): void {
    for (const url of this.order()) {
      if (this.inFlight.size >= this.concurrency) return;
      if (this.inFlight.has(url) || this.failed.has(url) || this.store.has(url) || this.store.isPending(url)) continue;
      this.inFlight.add(url);
      this.store.request(url, this).then(
        () => {
          this.prefetched++;
          this.settle(url);
        },
        (err: unknown) => {
          if (!isAbort(err)) this.failed.add(url);
          this.settle(url);
        },
      );
    }
  }

  private settle(url: string): void {
    if (this.inFlight.delete(url)) this.pump();
  }
}
