import { describe, expect, it } from 'vitest';
import { CircusError } from '../src/core/errors.js';
import { TokenService } from '../src/services/tokens.js';

const SECRET = 'a shared secret of enough length';
/** 9 characters: the payload is 17 + 9 = 26 bytes, so its last base64url character has 2 unused bits. */
const UID = '1.2.840.5';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The other spellings of `part` that decode to the same bytes (last character changed). */
function otherSpellings(part: string): string[] {
  const bytes = Buffer.from(part, 'base64url');
  const prefix = part.slice(0, -1);
  return [...ALPHABET].filter((c) => c !== part.at(-1) && Buffer.from(prefix + c, 'base64url').equals(bytes)).map((c) => prefix + c);
}

function expectMalformed(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CircusError);
    expect((e as CircusError).status).toBe(401);
    expect((e as CircusError).message).toBe('the token is malformed');
    return;
  }
  throw new Error('expected a 401');
}

describe('TokenService token spelling', () => {
  const tokens = new TokenService({ secret: SECRET, ttlSeconds: 60, now: () => Date.UTC(2026, 0, 1) });

  it('refuses another spelling of the signature that decodes to the same bytes', () => {
    const { token } = tokens.issue(UID);
    const [payload, signature] = token.split('.');
    // 32 bytes in 43 characters: 2 unused bits, so 3 other spellings.
    const others = otherSpellings(signature);
    expect(others).toHaveLength(3);
    for (const other of others) expectMalformed(() => tokens.verify(`${payload}.${other}`, UID));
    tokens.verify(token, UID);
  });

  it('refuses another spelling of the payload that decodes to the same bytes', () => {
    const { token } = tokens.issue(UID);
    const [payload, signature] = token.split('.');
    expect(Buffer.from(payload, 'base64url')).toHaveLength(26);
    const others = otherSpellings(payload);
    expect(others).toHaveLength(3);
    for (const other of others) expectMalformed(() => tokens.verify(`${other}.${signature}`, UID));
    tokens.verify(token, UID);
  });

  it('has no other spelling when the payload fills its last character', () => {
    const uid = '1.2.840.10008.51'; // 17 + 16 = 33 bytes: 44 characters, no unused bits
    const { token } = tokens.issue(uid);
    const [payload] = token.split('.');
    expect(payload).toHaveLength(44);
    expect(otherSpellings(payload)).toEqual([]);
    tokens.verify(token, uid);
  });
});
