/**
 * Idle and stalled /ws/volume sockets (src/http/ws/idle.ts): the verdict for a socket's activity
 * under a limit, at given instants (no clock: every time is a number given here).
 */
import { describe, expect, it } from 'vitest';
import { idleVerdict, type SocketActivity } from '../src/http/ws/idle.js';

const LIMIT = 30_000;
const quiet: SocketActivity = { now: 100_000, lastActivity: 100_000, writingSince: null, waitingForLoad: false };

describe('idle verdict', () => {
  it('a socket with activity within the limit is looked at again when the limit since then is up', () => {
    expect(idleVerdict(LIMIT, quiet)).toEqual({ action: 'wait', ms: 30_000 });
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 100_000 - 29_000 })).toEqual({ action: 'wait', ms: 1_000 });
  });

  it('closes a socket with nothing happening for the limit', () => {
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 100_000 - 30_000 })).toEqual({ action: 'close' });
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 0 })).toEqual({ action: 'close' });
  });

  it('does not close a quiet socket whose transfer waits for the load: it looks again a whole limit later', () => {
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 0, waitingForLoad: true })).toEqual({ action: 'wait', ms: 30_000 });
  });

  it('does not close a socket that is writing, and cuts one that has not finished a message for the limit', () => {
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 0, writingSince: 100_000 - 10_000 })).toEqual({ action: 'wait', ms: 20_000 });
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 100_000 - 5_000, writingSince: 100_000 - 25_000 })).toEqual({ action: 'wait', ms: 5_000 });
    expect(idleVerdict(LIMIT, { ...quiet, writingSince: 100_000 - 30_000 })).toEqual({ action: 'cut' });
    // However recent the client's last message: the stall counts.
    expect(idleVerdict(LIMIT, { ...quiet, lastActivity: 100_000, writingSince: 0, waitingForLoad: true })).toEqual({ action: 'cut' });
  });
});
