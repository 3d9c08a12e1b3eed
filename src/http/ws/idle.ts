/**
 * When a /ws/volume socket is idle, or stalled by its client.
 *
 * Policy: a socket on which nothing happens for wsIdleTimeoutMs (no message from the client, no
 * image written, no load waited for) is closed (1000). One that has not finished writing a
 * message for wsIdleTimeoutMs (its client stopped reading) is cut off, whatever the client still
 * sends: the close frame would queue behind what it does not read. Otherwise the socket is looked
 * at again when the first of the two could next be true.
 */

/** What a socket has been doing, in ms since the epoch. */
export interface SocketActivity {
  now: number;
  /** When the client last sent a message, or the socket last finished writing one. */
  lastActivity: number;
  /** When the socket began writing what it has not finished (or finished the message before); null when it writes nothing. */
  writingSince: number | null;
  /** Whether a transfer waits for the load (the socket is quiet then, not idle). */
  waitingForLoad: boolean;
}

/** What to do with a socket: cut it (stalled), close it (idle), or look again in `ms`. */
export type IdleVerdict = { action: 'cut' } | { action: 'close' } | { action: 'wait'; ms: number };

/** The verdict on a socket with activity `a`, under the idle limit `limit` (wsIdleTimeoutMs). */
export function idleVerdict(limit: number, a: SocketActivity): IdleVerdict {
  const writing = a.writingSince !== null;
  const stalled = a.writingSince !== null ? a.now - a.writingSince : 0;
  if (stalled >= limit) return { action: 'cut' };
  const idle = a.now - a.lastActivity;
  if (idle >= limit && !writing && !a.waitingForLoad) return { action: 'close' };
  return { action: 'wait', ms: Math.min(idle >= limit ? limit : limit - idle, writing ? limit - stalled : limit) };
}
