/**
 * The order in which the slices of a volume are read or decoded while it loads.
 *
 * Policy:
 * - Slices a request waits for come first, the most recent request first: a viewer that
 *   scrolls asks for the slice it shows now, and the slices it asked for before follow right
 *   after (none is dropped: every slice is loaded in the end).
 * - The other slices go outwards from the slice asked for last, nearest first (z, z + 1, z - 1,
 *   z + 2, ...), and before any request from the middle slice (the one /mpr shows by default):
 *   a viewer scrolls from where it is, so the neighbours of the slice it shows are the next
 *   ones it needs. Loading in file order would instead make a viewer that opens in the middle
 *   wait for half the series before its neighbours arrive.
 * - A slice is handed out once. A request that is withdrawn (its client went away) no longer
 *   puts its slice first.
 *
 * Pure bookkeeping: no I/O, no timers. Asking for the next slice costs amortised O(1), plus one
 * pass over the slices for each request that moves the focus.
 */
export class SliceQueue {
  private readonly taken: Uint8Array;
  /** Slices asked for, most recent last (a slice may appear once per request). */
  private readonly requested: number[] = [];
  private focus: number;
  /** Next candidates above (from `focus`) and below (`focus - 1`) the focus. */
  private up: number;
  private down: number;

  /**
   * @param count slices of the volume (z = 0 .. count - 1)
   * @param skip slices this queue never hands out (loaded by another queue)
   */
  constructor(
    readonly count: number,
    skip: (z: number) => boolean = () => false,
  ) {
    this.taken = new Uint8Array(count);
    for (let z = 0; z < count; z++) if (skip(z)) this.taken[z] = 1;
    this.focus = Math.floor(count / 2);
    this.up = this.focus;
    this.down = this.focus - 1;
  }

  /** Whether slice `z` has been handed out (or was never this queue's). */
  isTaken(z: number): boolean {
    return this.taken[z] === 1;
  }

  /** Marks slice `z` handed out (a slice loaded together with the one `next` gave). */
  take(z: number): void {
    this.taken[z] = 1;
  }

  /** A request waits for slice `z`: it goes first, and the rest now go outwards from it. */
  request(z: number): void {
    if (!this.taken[z]) this.requested.push(z);
    this.focus = z;
    this.up = z;
    this.down = z - 1;
  }

  /** One request for slice `z` is withdrawn; the slice keeps its place only if other requests wait for it. */
  withdraw(z: number): void {
    const i = this.requested.lastIndexOf(z);
    if (i >= 0) this.requested.splice(i, 1);
  }

  /** The next slice to load, now handed out; -1 when every slice has been. */
  next(): number {
    while (this.requested.length > 0) {
      const z = this.requested.pop()!;
      if (!this.taken[z]) {
        this.taken[z] = 1;
        return z;
      }
    }
    const n = this.count;
    while (this.up < n && this.taken[this.up]) this.up++;
    while (this.down >= 0 && this.taken[this.down]) this.down--;
    if (this.up >= n && this.down < 0) return -1;
    const z = this.down < 0 || (this.up < n && this.up - this.focus <= this.focus - this.down) ? this.up++ : this.down--;
    this.taken[z] = 1;
    return z;
  }
}
