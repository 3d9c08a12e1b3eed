/**
 * Access tokens: bound to one series, with an expiry, signed with HMAC-SHA256 so that every
 * server sharing the secret accepts them (and a restart does not void them).
 *
 * Form (URL-safe, no padding): base64url(payload) "." base64url(HMAC-SHA256(secret, payload)),
 * payload = version (1 byte, 1) | expiry (uint32 BE, Unix seconds) | nonce (12 random bytes) |
 * series UID (ASCII). Each part must be the canonical base64url spelling of its bytes, so one
 * token has one text. The signature is compared in constant time. The clock is injected.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CircusError } from '../core/errors.js';

const VERSION = 1;
const HEADER = 1 + 4 + 12;

export interface TokenServiceOptions {
  secret: string | Buffer;
  /** Lifetime of a token in seconds. */
  ttlSeconds: number;
  /** Current time in milliseconds. */
  now?: () => number;
}

const unauthorized = (message: string): CircusError => new CircusError('UNAUTHORIZED', message);

/**
 * The bytes of base64url `text` (no padding). Only the canonical spelling is accepted: the
 * decoder ignores the unused low bits of the last character (and a lone trailing character),
 * so several texts give the same bytes; any but the one the bytes encode to throws 401.
 */
function decodeCanonical(text: string): Buffer {
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw unauthorized('the token is malformed');
  return bytes;
}

export class TokenService {
  private readonly secret: Buffer;
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(options: TokenServiceOptions) {
    this.secret = Buffer.isBuffer(options.secret) ? options.secret : Buffer.from(options.secret, 'utf8');
    if (this.secret.length < 16) throw new RangeError('the token secret must be at least 16 bytes long');
    this.ttl = options.ttlSeconds;
    this.now = options.now ?? Date.now;
  }

  private sign(payload: Buffer): Buffer {
    return createHmac('sha256', this.secret).update(payload).digest();
  }

  /** A token for `seriesUid` (already validated) that expires after the configured lifetime. */
  issue(seriesUid: string): { token: string; expiresAt: Date } {
    const expires = Math.floor(this.now() / 1000) + this.ttl;
    const payload = Buffer.alloc(HEADER + seriesUid.length);
    payload[0] = VERSION;
    payload.writeUInt32BE(expires >>> 0, 1);
    randomBytes(12).copy(payload, 5);
    payload.write(seriesUid, HEADER, 'latin1');
    return { token: `${payload.toString('base64url')}.${this.sign(payload).toString('base64url')}`, expiresAt: new Date(expires * 1000) };
  }

  /** Throws 401 unless `token` is a valid, unexpired token for `seriesUid`. */
  verify(token: string, seriesUid: string): void {
    const dot = token.indexOf('.');
    if (dot <= 0 || token.length > 512 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw unauthorized('the token is malformed');
    const payload = decodeCanonical(token.slice(0, dot));
    const signature = decodeCanonical(token.slice(dot + 1));
    const expected = this.sign(payload);
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw unauthorized('the token signature is not valid');
    }
    if (payload.length <= HEADER || payload[0] !== VERSION) throw unauthorized('the token is malformed');
    const expires = payload.readUInt32BE(1);
    if (expires * 1000 <= this.now()) throw unauthorized('the token has expired');
    if (payload.toString('latin1', HEADER) !== seriesUid) throw unauthorized('the token is for another series');
  }
}
