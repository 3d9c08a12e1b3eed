/**
 * The /ws/volume messages (src/http/ws/protocol.ts), frame by frame: each client message parsed
 * to its fields and nothing else, each malformed frame refused with the close code and reason the
 * policy gives, the server's messages byte for byte, close reasons within 123 bytes.
 */
import { describe, expect, it } from 'vitest';
import {
  CloseCode,
  closeReason,
  MAX_TRANSFER_ID,
  parseFrame,
  parseMessage,
  ProtocolViolation,
  transferError,
  transferImageHeader,
} from '../src/http/ws/protocol.js';

/** A frame of JSON `value` (as text, when a string), the separator, then `payload`. */
const frame = (value: unknown, payload = Buffer.alloc(0)): Buffer =>
  Buffer.concat([Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), Buffer.of(0x0a), payload]);

/** The close code and reason `fn` is refused with. */
function violation(fn: () => unknown): { code: number; reason: string } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolViolation);
    return { code: (e as ProtocolViolation).code, reason: (e as ProtocolViolation).message };
  }
  throw new Error('expected a ProtocolViolation');
}

describe('client messages', () => {
  it('BEGIN_TRANSFER: the series and the descriptor as sent (checked later), other fields left out', () => {
    const d = { start: 1, end: 9, delta: 2 };
    expect(parseMessage(frame({ messageType: 'BEGIN_TRANSFER', transferId: 't1', seriesUid: '1.2.3', partialVolumeDescriptor: d, x: 1 }))).toEqual({
      messageType: 'BEGIN_TRANSFER',
      transferId: 't1',
      seriesUid: '1.2.3',
      partialVolumeDescriptor: d,
    });
    // A seriesUid that is no UID and a malformed descriptor are the transfer's errors (400), not the socket's.
    expect(parseMessage(frame({ messageType: 'BEGIN_TRANSFER', transferId: 't', seriesUid: 'x', partialVolumeDescriptor: 'y' }))).toEqual({
      messageType: 'BEGIN_TRANSFER',
      transferId: 't',
      seriesUid: 'x',
      partialVolumeDescriptor: 'y',
    });
  });

  it('SET_PRIORITY: the target as a list of indices, whether one index or a list was sent', () => {
    expect(parseMessage(frame({ messageType: 'SET_PRIORITY', transferId: 't', target: 5, priority: 3 }))).toEqual({
      messageType: 'SET_PRIORITY',
      transferId: 't',
      target: [5],
      priority: 3,
    });
    expect(parseMessage(frame({ messageType: 'SET_PRIORITY', transferId: 't', target: [2, -1, 7], priority: -0.5 }))).toEqual({
      messageType: 'SET_PRIORITY',
      transferId: 't',
      target: [2, -1, 7],
      priority: -0.5,
    });
    expect(parseMessage(frame({ messageType: 'SET_PRIORITY', transferId: 't', target: [], priority: 1 }))).toMatchObject({ target: [] });
  });

  it('PAUSE, RESUME, ABORT and STOP: the type and the transferId only; a payload after the separator is ignored', () => {
    for (const messageType of ['PAUSE_TRANSFER', 'RESUME_TRANSFER', 'ABORT_TRANSFER', 'STOP_TRANSFER']) {
      expect(parseMessage(frame({ messageType, transferId: 'a b', seriesUid: 'ignored' }, Buffer.from([1, 2, 0x0a])))).toEqual({
        messageType,
        transferId: 'a b',
      });
    }
  });

  it('a transferId of 1 to MAX_TRANSFER_ID characters', () => {
    expect(MAX_TRANSFER_ID).toBe(256);
    const longest = 'x'.repeat(256);
    expect(parseMessage(frame({ messageType: 'ABORT_TRANSFER', transferId: longest })).transferId).toBe(longest);
    for (const transferId of ['', 'x'.repeat(257), 5, null, undefined]) {
      expect(violation(() => parseMessage(frame({ messageType: 'PAUSE_TRANSFER', transferId })))).toEqual({
        code: 1008,
        reason: 'PAUSE_TRANSFER: transferId must be a string of 1 to 256 characters',
      });
    }
  });
});

describe('malformed frames', () => {
  it('1007 for frames that are not JSON + 0x0A', () => {
    expect(violation(() => parseMessage(Buffer.from('{"messageType":"ABORT_TRANSFER","transferId":"t"}')))).toEqual({
      code: CloseCode.INVALID_PAYLOAD,
      reason: 'a message is JSON followed by the byte 0x0A',
    });
    expect(violation(() => parseMessage(Buffer.concat([Buffer.from('{"a":"'), Buffer.of(0xff, 0xfe), Buffer.from('"}\n')])))).toEqual({
      code: 1007,
      reason: 'the JSON part is not UTF-8',
    });
    expect(violation(() => parseMessage(frame('{messageType: 1}')))).toEqual({ code: 1007, reason: 'the JSON part is not valid JSON' });
    for (const text of ['[1]', 'null', '"BEGIN_TRANSFER"', '3']) {
      expect(violation(() => parseMessage(frame(text)))).toEqual({ code: 1007, reason: 'the JSON part is not an object' });
    }
  });

  it('1008 for messages that are not known, with the type shown (cut at 40 characters)', () => {
    expect(violation(() => parseMessage(frame({ transferId: 't' })))).toEqual({ code: 1008, reason: 'unknown messageType (missing)' });
    expect(violation(() => parseMessage(frame({ messageType: 7, transferId: 't' })))).toEqual({
      code: 1008,
      reason: 'unknown messageType (missing)',
    });
    expect(violation(() => parseMessage(frame({ messageType: 'TRANSFER_IMAGE', transferId: 't' })))).toEqual({
      code: 1008,
      reason: 'unknown messageType ("TRANSFER_IMAGE")',
    });
    expect(violation(() => parseMessage(frame({ messageType: 'begin_transfer', transferId: 't' })))).toMatchObject({ code: 1008 });
    expect(violation(() => parseMessage(frame({ messageType: 'A'.repeat(50) })))).toEqual({
      code: 1008,
      reason: `unknown messageType ("${'A'.repeat(40)}")`,
    });
  });

  it('1008 for BEGIN_TRANSFER without a string seriesUid, and SET_PRIORITY without an integer target or a finite priority', () => {
    expect(violation(() => parseMessage(frame({ messageType: 'BEGIN_TRANSFER', transferId: 't', seriesUid: 1 })))).toEqual({
      code: 1008,
      reason: 'BEGIN_TRANSFER: seriesUid must be a string',
    });
    for (const target of [1.5, '1', [1, '2'], [null], undefined, { 0: 1 }]) {
      expect(violation(() => parseMessage(frame({ messageType: 'SET_PRIORITY', transferId: 't', target, priority: 1 })))).toEqual({
        code: 1008,
        reason: 'SET_PRIORITY: target must be an image index or an array of them',
      });
    }
    // JSON has no Infinity: 1e400 parses as one.
    const priorities = ['"1"', 'null', '1e400', '-1e400'].map((p) => `,"priority":${p}`);
    for (const priority of [...priorities, '']) {
      const text = `{"messageType":"SET_PRIORITY","transferId":"t","target":1${priority}}`;
      expect(violation(() => parseMessage(frame(text)))).toEqual({ code: 1008, reason: 'SET_PRIORITY: priority must be a finite number' });
    }
    // The target is checked first.
    expect(violation(() => parseMessage(frame({ messageType: 'SET_PRIORITY', transferId: 't', target: 'x', priority: 'y' })))).toMatchObject({
      reason: 'SET_PRIORITY: target must be an image index or an array of them',
    });
  });

  it('frames as ws hands them over: 1003 for text, fragments joined, ArrayBuffers read', () => {
    const bytes = frame({ messageType: 'ABORT_TRANSFER', transferId: 't9' });
    expect(violation(() => parseFrame(bytes, false))).toEqual({
      code: CloseCode.UNSUPPORTED_DATA,
      reason: 'text frames are not accepted: send binary frames (JSON, 0x0A, payload)',
    });
    const expected = { messageType: 'ABORT_TRANSFER', transferId: 't9' };
    expect(parseFrame(bytes, true)).toEqual(expected);
    expect(parseFrame([bytes.subarray(0, 10), bytes.subarray(10)], true)).toEqual(expected);
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    expect(parseFrame(copy, true)).toEqual(expected);
  });
});

describe('server messages', () => {
  it('TRANSFER_IMAGE and TRANSFER_ERROR: JSON in this key order, then 0x0A', () => {
    expect(transferImageHeader('t1', 4).toString('latin1')).toBe('{"messageType":"TRANSFER_IMAGE","transferId":"t1","imageIndex":4}\n');
    expect(transferError('t"2', 404, 'no series 1.2').toString('utf8')).toBe(
      '{"messageType":"TRANSFER_ERROR","transferId":"t\\"2","status":404,"message":"no series 1.2"}\n',
    );
  });

  it('close codes are RFC 6455 numbers', () => {
    expect(CloseCode).toEqual({
      NORMAL: 1000,
      GOING_AWAY: 1001,
      UNSUPPORTED_DATA: 1003,
      INVALID_PAYLOAD: 1007,
      POLICY_VIOLATION: 1008,
      MESSAGE_TOO_BIG: 1009,
      INTERNAL_ERROR: 1011,
    });
  });

  it('close reasons: as they are up to 123 bytes, else cut to the longest prefix that fits', () => {
    expect(closeReason('idle for 30 s')).toBe('idle for 30 s');
    expect(closeReason('a'.repeat(123))).toBe('a'.repeat(123));
    expect(closeReason('a'.repeat(200))).toBe('a'.repeat(123));
    // 2 bytes a character: 61 characters (122 bytes) fit, 62 do not.
    expect(closeReason('é'.repeat(100))).toBe('é'.repeat(61));
    expect(closeReason(`${'a'.repeat(122)}é`)).toBe('a'.repeat(122));
  });
});
