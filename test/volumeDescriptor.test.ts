/**
 * The partial volume descriptor as clients give it (src/http/volumeDescriptor.ts): from a query
 * string, all three of start, end and delta as integers or none; from a BEGIN_TRANSFER, an object
 * of three integers or nothing. Malformed: a 400 whose message names the rule. (Whether a
 * descriptor fits a series is descriptorSlices', tested through the routes.)
 */
import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { descriptorOf, descriptorParam } from '../src/http/volumeDescriptor.js';

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CircusError);
    expect((e as CircusError).status).toBe(400);
    return (e as CircusError).message;
  }
  throw new Error('expected a 400');
}

describe('descriptorParam (query string)', () => {
  it('gives the three integers, or none when none is given', () => {
    expect(descriptorParam({ start: '3', end: '9', delta: '2' })).toEqual({ start: 3, end: 9, delta: 2 });
    expect(descriptorParam({ start: '9', end: '3', delta: '-3', other: 'x' })).toEqual({ start: 9, end: 3, delta: -3 });
    expect(descriptorParam({})).toBeUndefined();
    expect(descriptorParam({ estimateWindow: 'full' })).toBeUndefined();
  });

  it('refuses a partial descriptor, a non-integer and a repeated parameter, naming what is wrong', () => {
    expect(badRequest(() => descriptorParam({ start: '1', end: '2' }))).toBe(
      'Volume descriptor is invalid: start, end and delta must be given together',
    );
    expect(badRequest(() => descriptorParam({ delta: '1' }))).toBe('Volume descriptor is invalid: start, end and delta must be given together');
    expect(badRequest(() => descriptorParam({ start: '1.5', end: '2', delta: '1' }))).toBe("parameter 'start' must be an integer, got '1.5'");
    expect(badRequest(() => descriptorParam({ start: '1', end: ['2', '3'], delta: '1' }))).toBe("parameter 'end' is given more than once");
    expect(badRequest(() => descriptorParam({ start: '1', end: '2', delta: 'x' }))).toBe(
      "parameter 'delta' must be a finite decimal number, got 'x'",
    );
  });
});

describe('descriptorOf (BEGIN_TRANSFER)', () => {
  it('gives the three integers of an object, or none for undefined and null', () => {
    expect(descriptorOf({ start: 1, end: 99, delta: 1 })).toEqual({ start: 1, end: 99, delta: 1 });
    expect(descriptorOf({ start: 5, end: 1, delta: -2, extra: true })).toEqual({ start: 5, end: 1, delta: -2 });
    expect(descriptorOf(undefined)).toBeUndefined();
    expect(descriptorOf(null)).toBeUndefined();
  });

  it('refuses anything else with one message', () => {
    const message = 'Volume descriptor is invalid: start, end and delta must be integers';
    for (const value of [{ start: 1, end: 2 }, { start: 1, end: 2, delta: 0.5 }, { start: '1', end: 2, delta: 1 }, 3, 'x', [1, 2, 1]]) {
      expect(badRequest(() => descriptorOf(value))).toBe(message);
    }
  });
});
