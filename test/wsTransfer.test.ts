/**
 * The states of a /ws/volume transfer (src/http/ws/transfer.ts): every state and event against
 * the table of the policy, the images held only while streaming, and the SET_PRIORITY messages
 * kept until the queue is made. (How the socket drives them is test/volumeSocket.test.ts'.)
 */
import { describe, expect, it } from 'vitest';
import type { SeriesImages } from '../src/services/seriesImages.js';
import { ImageQueue } from '../src/services/imageQueue.js';
import { isEnded, nextState, priorityEntries, Transfer, type TransferEvent, type TransferState } from '../src/http/ws/transfer.js';

const STATES: TransferState[] = ['opening', 'streaming', 'paused', 'done', 'aborted', 'failed'];
const EVENTS: TransferEvent[] = ['opened', 'pause', 'resume', 'finish', 'abort', 'fail'];

/** The policy's table, written out: the state after each event, per state (in EVENTS order). */
const EXPECTED: Record<TransferState, TransferState[]> = {
  opening: ['streaming', 'paused', 'opening', 'opening', 'aborted', 'failed'],
  streaming: ['streaming', 'paused', 'streaming', 'done', 'aborted', 'failed'],
  paused: ['paused', 'paused', 'opening', 'paused', 'aborted', 'failed'],
  done: ['done', 'done', 'done', 'done', 'done', 'done'],
  aborted: ['aborted', 'aborted', 'aborted', 'aborted', 'aborted', 'aborted'],
  failed: ['failed', 'failed', 'failed', 'failed', 'failed', 'failed'],
};

/** Stands for a series' images (a transfer only holds them). */
const images = { count: 3 } as unknown as SeriesImages;

describe('transfer states', () => {
  it('every state and event moves as the table says', () => {
    for (const state of STATES) expect(EVENTS.map((event) => nextState(state, event))).toEqual(EXPECTED[state]);
  });

  it('done, aborted and failed are the ended states', () => {
    expect(STATES.filter(isEnded)).toEqual(['done', 'aborted', 'failed']);
  });

  it('a transfer begins opening, streams once opened and holds its images only while streaming', () => {
    const t = new Transfer('t1', 0, '1.2.3', undefined);
    expect([t.state, t.images, t.ended]).toEqual(['opening', null, false]);
    t.opened(images);
    expect([t.state, t.images]).toEqual(['streaming', images]);
    t.resume();
    expect([t.state, t.images]).toEqual(['streaming', images]);
    t.pause();
    expect([t.state, t.images]).toEqual(['paused', null]);
    t.resume();
    expect([t.state, t.images]).toEqual(['opening', null]);
    t.opened(images);
    t.end('finish');
    expect([t.state, t.images, t.ended]).toEqual(['done', null, true]);
  });

  it('a transfer paused while opening lets the images of that open go, and takes those of the next', () => {
    const t = new Transfer('t1', 0, '1.2.3', { start: 1, end: 3, delta: 1 });
    t.pause();
    t.opened(images);
    expect([t.state, t.images]).toEqual(['paused', null]);
    t.resume();
    t.opened(images);
    expect([t.state, t.images]).toEqual(['streaming', images]);
  });

  it('an ended transfer stays ended and takes no images', () => {
    for (const event of ['finish', 'abort', 'fail'] as const) {
      const t = new Transfer('t', 0, '1.2.3', undefined);
      t.opened(images);
      t.end(event);
      const ended = t.state;
      expect(ended).toBe({ finish: 'done', abort: 'aborted', fail: 'failed' }[event]);
      t.resume();
      t.opened(images);
      t.pause();
      t.end('abort');
      expect([t.state, t.images]).toEqual([ended, null]);
    }
    // A transfer still opening cannot finish: it has sent nothing.
    const opening = new Transfer('t', 0, '1.2.3', undefined);
    opening.end('finish');
    expect(opening.state).toBe('opening');
  });
});

describe('SET_PRIORITY kept before the queue is made', () => {
  it('counts a target of n indices as n entries, an empty one as 1', () => {
    expect([priorityEntries([4, 5, 6]), priorityEntries([2]), priorityEntries([])]).toEqual([3, 1, 1]);
  });

  it('applies the kept messages in the order they came, and forgets them when dropped', () => {
    const t = new Transfer('t', 0, '1.2.3', undefined);
    expect(t.keepPriority([3, 1], 5)).toBe(2);
    expect(t.keepPriority([1], 9)).toBe(1);
    expect(t.keepPriority([], 2)).toBe(1);
    const queue = new ImageQueue(4);
    t.applyPriorities(queue);
    // Image 1 was raised last (9), then image 3 (5), then the never-set images by index.
    const order: number[] = [];
    for (let k = queue.peek(); k >= 0; k = queue.peek()) {
      order.push(k);
      queue.take(k);
    }
    expect(order).toEqual([1, 3, 0, 2]);
    expect(t.dropPriorities()).toBe(4);
    expect(t.dropPriorities()).toBe(0);
    const fresh = new ImageQueue(4);
    t.applyPriorities(fresh);
    expect(fresh.peek()).toBe(0);
  });
});
