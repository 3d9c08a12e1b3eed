import { type AddressInfo, connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { CircusError } from '../src/core/errors.js';
import { addressAllowed, addressList } from '../src/config/addresses.js';
import { buildApp } from '../src/http/app.js';
import { createServer, type Server } from '../src/server.js';
import { createCacheRegions } from '../src/services/cacheRegions.js';
import { VolumeService } from '../src/services/volumeService.js';
import { TokenService } from '../src/services/tokens.js';
import { DEFAULT_UID, TempDir, writeSeries } from './fixtures/series.js';

const SECRET = 'a shared secret of enough length';
const OTHER = '1.2.840.5';

function expect401(fn: () => void, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CircusError);
    expect((e as CircusError).status).toBe(401);
    expect((e as CircusError).message).toMatch(message);
    return;
  }
  throw new Error('expected a 401');
}

describe('TokenService', () => {
  it('issues tokens bound to a series that verify until they expire (injected clock)', () => {
    let now = Date.UTC(2026, 0, 1);
    const tokens = new TokenService({ secret: SECRET, ttlSeconds: 60, now: () => now });
    const { token, expiresAt } = tokens.issue(DEFAULT_UID);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(expiresAt.getTime()).toBe(now + 60_000);
    tokens.verify(token, DEFAULT_UID);
    now += 59_000;
    tokens.verify(token, DEFAULT_UID);
    now += 1_000;
    expect401(() => tokens.verify(token, DEFAULT_UID), /expired/);
  });

  it('gives different tokens each time (random nonce)', () => {
    const tokens = new TokenService({ secret: SECRET, ttlSeconds: 60 });
    expect(tokens.issue('1.2').token).not.toBe(tokens.issue('1.2').token);
  });

  it('refuses a token for another series, a tampered one, a malformed one, another secret', () => {
    const tokens = new TokenService({ secret: SECRET, ttlSeconds: 60 });
    const { token } = tokens.issue(DEFAULT_UID);
    expect401(() => tokens.verify(token, OTHER), /another series/);
    // Forge: rewrite the series inside the payload, keep the signature.
    const [payload, signature] = token.split('.');
    const bytes = Buffer.from(payload, 'base64url');
    const forged = Buffer.concat([bytes.subarray(0, 17), Buffer.from(OTHER, 'latin1')]);
    expect401(() => tokens.verify(`${forged.toString('base64url')}.${signature}`, OTHER), /signature is not valid/);
    // Extend the expiry, keep the signature.
    const later = Buffer.from(bytes);
    later.writeUInt32BE(later.readUInt32BE(1) + 3600, 1);
    expect401(() => tokens.verify(`${later.toString('base64url')}.${signature}`, DEFAULT_UID), /signature is not valid/);
    for (const bad of ['', 'abc', 'a.b.c', `${payload}.`, `.${signature}`, `${payload}.${signature}x`, 'x'.repeat(600)]) {
      expect401(() => tokens.verify(bad, DEFAULT_UID), /malformed|signature/);
    }
    const other = new TokenService({ secret: 'another secret, also long enough', ttlSeconds: 60 });
    expect401(() => other.verify(token, DEFAULT_UID), /signature is not valid/);
  });

  it('needs a secret of at least 16 bytes', () => {
    expect(() => new TokenService({ secret: 'short', ttlSeconds: 1 })).toThrow(/at least 16/);
    expect(() => loadConfig({ flags: { tokenSecret: 'short' } })).toThrow(ConfigError);
    expect(() => loadConfig({ flags: { tokenSecret: 'short' } })).toThrow(/tokenSecret .* at least 16 characters, got \(hidden\)/);
  });
});

describe('address lists', () => {
  it('matches CIDR blocks as addresses, IPv4-mapped IPv6 included', () => {
    const list = addressList(['127.0.0.0/8', '::1', '10.1.0.0/16', 'fd00::/8']);
    const yes = ['127.0.0.1', '127.255.0.9', '::ffff:127.0.0.1', '::1', '10.1.200.3', '::ffff:10.1.0.1', 'fd12::5'];
    const no = ['128.0.0.1', '10.2.0.1', '::2', 'fe80::1', '1127.0.0.1', 'localhost', '', undefined];
    for (const a of yes) expect(addressAllowed(list, a), a).toBe(true);
    for (const a of no) expect(addressAllowed(list, a), String(a)).toBe(false);
  });

  it('refuses entries that are not addresses', () => {
    for (const bad of ['127.0.0.0/33', '::1/129', '10.0.0.0/8/8', 'example.com', '127.0.0.0/x']) {
      expect(() => addressList([bad]), bad).toThrow(RangeError);
      expect(() => loadConfig({ flags: { tokenIssuers: bad } }), bad).toThrow(/option tokenIssuers/);
    }
  });
});

describe('authentication mode over HTTP', () => {
  let tmp: TempDir;
  const servers: Server[] = [];
  beforeEach(() => {
    tmp = new TempDir();
    writeSeries(join(tmp.path, DEFAULT_UID));
    writeSeries(join(tmp.path, OTHER), { uid: OTHER });
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    tmp.remove();
  });

  let now = Date.UTC(2026, 5, 1);
  function start(flags: Record<string, unknown> = {}): Server {
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path, auth: true, tokenSecret: SECRET, ...flags }, env: {} }), {
      useIndex: false,
      now: () => now,
    });
    servers.push(s);
    return s;
  }

  const request = (s: Server, url: string, options: { headers?: Record<string, string>; remoteAddress?: string } = {}) =>
    s.app.inject({ method: 'GET', url, headers: options.headers, remoteAddress: options.remoteAddress });

  async function token(s: Server, series = DEFAULT_UID): Promise<string> {
    const res = await request(s, `/requestToken?series=${series}`, { remoteAddress: '127.0.0.1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.result).toBe('ok');
    return body.token as string;
  }

  it('needs a token for metadata, mpr, oblique, raw and volume; 401 names the realm', async () => {
    const s = start();
    for (const url of [
      `/metadata?series=${DEFAULT_UID}`,
      `/mpr?series=${DEFAULT_UID}&mode=axial`,
      `/oblique?series=${DEFAULT_UID}&a=0&b=axial&c=1,1,1`,
      `/raw?series=${DEFAULT_UID}`,
      `/volume?series=${DEFAULT_UID}`,
    ]) {
      const res = await request(s, url);
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="CircusRS"');
      expect(res.json()).toMatchObject({ result: 'ng', message: expect.stringMatching(/token for series .* is required/) });
    }
    // Never for /status and /requestToken.
    expect((await request(s, '/status')).statusCode).toBe(200);
    expect((await request(s, '/status')).json().authorization).toEqual({ enabled: true });
    expect((await request(s, '/status')).body).not.toContain(SECRET);
  });

  it('accepts the token as a Bearer header or a query parameter, for its series only', async () => {
    const s = start();
    const t = await token(s);
    expect((await request(s, `/metadata?series=${DEFAULT_UID}`, { headers: { authorization: `Bearer ${t}` } })).statusCode).toBe(200);
    expect((await request(s, `/mpr?series=${DEFAULT_UID}&mode=axial&token=${t}`)).statusCode).toBe(200);
    const wrong = await request(s, `/metadata?series=${OTHER}&token=${t}`);
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="CircusRS", error="invalid_token"');
    expect(wrong.json().message).toMatch(/another series/);
    const scheme = await request(s, `/metadata?series=${DEFAULT_UID}`, { headers: { authorization: `Basic ${t}` } });
    expect(scheme.statusCode).toBe(401);
    expect(scheme.json().message).toMatch(/Bearer <token>/);
    // A series that does not exist is 401 without a token: nothing is told about it.
    expect((await request(s, '/metadata?series=7.7.7')).statusCode).toBe(401);
    // A malformed series parameter is 400 before any token is asked for.
    const malformed = await request(s, '/metadata?series=1..2');
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().message).toMatch(/parameter 'series' must be a DICOM UID/);
  });

  it('shares tokens between instances with the same secret, not with another secret', async () => {
    const a = start();
    const b = start();
    const c = start({ tokenSecret: 'a different secret for instance c' });
    const t = await token(a);
    expect((await request(b, `/metadata?series=${DEFAULT_UID}&token=${t}`)).statusCode).toBe(200);
    const refused = await request(c, `/metadata?series=${DEFAULT_UID}&token=${t}`);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().message).toMatch(/signature is not valid/);
  });

  it('issues tokens only to allowed addresses (403 with result ng)', async () => {
    const s = start({ tokenIssuers: '10.0.0.0/8' });
    const ok = await request(s, `/requestToken?series=${DEFAULT_UID}`, { remoteAddress: '10.2.3.4' });
    expect(ok.statusCode).toBe(200);
    for (const remoteAddress of ['127.0.0.1', '192.168.1.1', '::1']) {
      const res = await request(s, `/requestToken?series=${DEFAULT_UID}`, { remoteAddress });
      expect(res.statusCode, remoteAddress).toBe(403);
      expect(res.json()).toEqual({ result: 'ng', message: `tokens are not issued to ${remoteAddress}` });
    }
    const v6 = start();
    expect((await request(v6, `/requestToken?series=${DEFAULT_UID}`, { remoteAddress: '::ffff:127.0.0.1' })).statusCode).toBe(200);
    expect((await request(v6, '/requestToken?series=bad', { remoteAddress: '127.0.0.1' })).statusCode).toBe(400);
  });

  it('believes X-Forwarded-For only from trusted proxies', async () => {
    const plain = start({ tokenIssuers: '203.0.113.0/24' });
    const spoofed = await request(plain, `/requestToken?series=${DEFAULT_UID}`, {
      remoteAddress: '198.51.100.7',
      headers: { 'x-forwarded-for': '203.0.113.5' },
    });
    expect(spoofed.statusCode).toBe(403);
    const proxied = start({ tokenIssuers: '203.0.113.0/24', trustProxy: '127.0.0.1' });
    const viaProxy = await request(proxied, `/requestToken?series=${DEFAULT_UID}`, {
      remoteAddress: '127.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.5' },
    });
    expect(viaProxy.statusCode).toBe(200);
    const viaOther = await request(proxied, `/requestToken?series=${DEFAULT_UID}`, {
      remoteAddress: '198.51.100.7',
      headers: { 'x-forwarded-for': '203.0.113.5' },
    });
    expect(viaOther.statusCode).toBe(403);
  });

  it('tokens expire at a fixed time after issue, used or not (ttl from the config, the clock injected)', async () => {
    const s = start({ tokenTtl: 1 });
    const t = await token(s);
    expect((await request(s, `/metadata?series=${DEFAULT_UID}&token=${t}`)).statusCode).toBe(200);
    // Used 600 ms later: still good, and that use does not push the expiry back.
    now += 600;
    expect((await request(s, `/metadata?series=${DEFAULT_UID}&token=${t}`)).statusCode).toBe(200);
    now += 400;
    const res = await request(s, `/metadata?series=${DEFAULT_UID}&token=${t}`);
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toMatch(/expired/);
  });
});

describe('access declared per route', () => {
  const tmp = new TempDir();

  it('every registered route declares its access; each series route refuses a request without a token', async () => {
    writeSeries(join(tmp.path, DEFAULT_UID));
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path, auth: true, tokenSecret: SECRET }, env: {} }), { useIndex: false });
    try {
      // Routes as fastify registers them, seen from outside the access control.
      const seen: string[] = [];
      s.app.addHook('onRoute', (r) => {
        for (const m of Array.isArray(r.method) ? r.method : [r.method]) seen.push(`${m} ${r.url}`);
      });
      await s.app.ready();
      const declared = s.app.routeAccess.map((r) => `${r.method} ${r.url}`);
      for (const route of seen) expect(declared).toContain(route);
      const series = s.app.routeAccess.filter((r) => r.access === 'series');
      const publicRoutes = s.app.routeAccess.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url}`);
      expect(publicRoutes.sort()).toEqual([
        'GET /',
        'GET /health/live',
        'GET /health/ready',
        'GET /metrics',
        'GET /requestToken',
        'GET /series',
        'GET /status',
        'GET /token',
        'GET /viewer/:file',
        'HEAD /',
        'HEAD /health/live',
        'HEAD /health/ready',
        'HEAD /metrics',
        'HEAD /requestToken',
        'HEAD /series',
        'HEAD /status',
        'HEAD /token',
        'HEAD /viewer/:file',
        'OPTIONS *',
      ]);
      expect(series.map((r) => r.url)).toEqual(expect.arrayContaining(['/metadata', '/mpr', '/oblique', '/raw', '/volume']));
      const issued = (await s.app.inject({ url: `/requestToken?series=${DEFAULT_UID}`, remoteAddress: '127.0.0.1' })).json().token as string;
      for (const route of series) {
        // DICOMweb paths name the series as :series, beside a study and an instance UID.
        const path = route.url
          .replace(/:(sid|series)\b/g, DEFAULT_UID)
          .replace(/:(study|instance)\b/g, '1.2.3')
          .replace(/:frames\b/g, '1');
        const url = `${path}?series=${DEFAULT_UID}`;
        const method = route.method as 'GET' | 'HEAD';
        const refused = await s.app.inject({ method, url });
        expect(refused.statusCode, `${method} ${url}`).toBe(401);
        expect(refused.headers['www-authenticate'], `${method} ${url}`).toBe('Bearer realm="CircusRS"');
        // With the token the access check lets it through (whatever the route then says of its parameters).
        const allowed = await s.app.inject({ method, url: `${url}&token=${issued}` });
        expect(allowed.statusCode, `${method} ${url} with a token`).not.toBe(401);
      }
      // Study-level DICOMweb resources list patient data: 403 in authentication mode without allowListing.
      const listing = s.app.routeAccess.filter((r) => r.access === 'listing');
      expect(listing.map((r) => r.url)).toEqual(expect.arrayContaining(['/dicom-web/studies/:study', '/dicom-web/studies/:study/thumbnail']));
      for (const route of listing) {
        const refused = await s.app.inject({ method: route.method as 'GET' | 'HEAD', url: route.url.replace(/:study\b/g, '1.2.3') });
        expect(refused.statusCode, `${route.method} ${route.url}`).toBe(403);
      }
    } finally {
      await s.close();
      tmp.remove();
    }
  });

  it('authentication mode without a token service refuses to build', () => {
    const cache = createCacheRegions(1 << 20);
    const volumes = new VolumeService({ find: async () => null }, cache.volumes, {
      maxVoxels: 1,
      readLimits: { maxInflatedBytes: 1 },
      concurrency: 1,
      log: () => {},
    });
    expect(() => buildApp({ config: { ...loadConfig({ env: {} }), auth: true }, volumes, cache, version: 'test' })).toThrow(/needs a token service/);
  });

  it('a route without a declaration stops the server from starting', async () => {
    const t = new TempDir();
    const s = createServer(loadConfig({ flags: { dataDir: t.path }, env: {} }), { useIndex: false });
    s.app.register(async (app) => {
      app.get('/forgotten', async () => ({ secret: true }));
    });
    await expect(s.app.ready()).rejects.toThrow(/route GET \/forgotten declares no access/);
    await s.close().catch(() => {});
    t.remove();
  });
});

describe('the random token secret warning', () => {
  it('is logged when authentication is on without a secret, and only then', async () => {
    const tmp = new TempDir();
    const warnings = async (flags: Record<string, unknown>): Promise<string[]> => {
      const lines: string[] = [];
      const s = createServer(loadConfig({ flags: { dataDir: tmp.path, ...flags }, env: {} }), {
        useIndex: false,
        logger: { level: 'warn', stream: { write: (line: string) => lines.push(line) } },
      });
      await s.app.ready();
      await s.close();
      return lines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => /tokenSecret/.test(m));
    };
    try {
      expect(await warnings({ auth: true })).toEqual([
        'no tokenSecret is set: a random one is used, so tokens die with this process and other instances do not accept them',
      ]);
      expect(await warnings({ auth: false })).toEqual([]);
      expect(await warnings({ auth: true, tokenSecret: SECRET })).toEqual([]);
    } finally {
      tmp.remove();
    }
  });
});

describe('HTTP hardening', () => {
  it('answers requests the HTTP parser refuses with the contract body, and honours maxUrlLength above 16 KiB', async () => {
    const tmp = new TempDir();
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path, maxUrlLength: 30_000 }, env: {} }), { useIndex: false });
    try {
      await s.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = s.app.server.address() as AddressInfo;
      const raw = (text: string): Promise<string> =>
        new Promise((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => socket.end(text));
          let out = '';
          socket.on('data', (d) => (out += d.toString('latin1')));
          socket.on('close', () => resolve(out));
          socket.on('error', reject);
        });
      // 20,000 characters: more than Node's default 16 KiB of headers, less than maxUrlLength.
      const long = await fetch(`http://127.0.0.1:${port}/metadata?series=1.2.3&x=${'a'.repeat(20_000)}`);
      expect(long.status).toBe(404);
      expect(await long.json()).toEqual({ result: 'ng', message: 'series 1.2.3 is not found' });
      const over = await fetch(`http://127.0.0.1:${port}/metadata?series=1.2.3&x=${'a'.repeat(31_000)}`);
      expect(over.status).toBe(400);
      expect(((await over.json()) as { message: string }).message).toMatch(/longer than 30000 characters/);
      // Headers past what the parser takes: 400 with the contract body and CORS, not fastify's 431.
      const huge = await raw(`GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(60_000)}\r\n\r\n`);
      expect(huge).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(huge).toMatch(/\r\nAccess-Control-Allow-Origin: \*\r\n/);
      expect(JSON.parse(huge.slice(huge.indexOf('\r\n\r\n') + 4))).toEqual({
        result: 'ng',
        message: 'bad request: the request line and headers are too long',
      });
      // Garbage after a request whose answer is still being sent closes the connection; it never
      // splices an error into the middle of that answer.
      const noisy = '1.2.3.77';
      writeSeries(join(tmp.path, noisy), {
        uid: noisy,
        columns: 256,
        rows: 256,
        slices: 40,
        value: (x, y, k) => ((x * 7919 + y * 104729 + k * 1299709) % 2003) - 1000,
      });
      const spliced = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(`GET /raw?series=${noisy}&format=voxels HTTP/1.1\r\nHost: x\r\n\r\n`));
        let out = '';
        socket.once('data', (d) => {
          out += d.toString('latin1');
          socket.pause(); // the rest of the answer waits in the server
          socket.write('NOT HTTP AT ALL\r\n\r\n');
          setTimeout(() => socket.resume(), 200);
          socket.on('data', (more) => (out += more.toString('latin1')));
        });
        socket.on('close', () => resolve(out));
        socket.on('error', reject);
      });
      expect(spliced).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(spliced).not.toMatch(/400 Bad Request|"result":"ng"/);
      const garbage = await raw('NOT HTTP AT ALL\r\n\r\n');
      expect(garbage).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4)).result).toBe('ng');
    } finally {
      await s.close();
      tmp.remove();
    }
  });

  it('refuses over-long URLs with 400 and answers 503 once shutting down', async () => {
    const tmp = new TempDir();
    const s = createServer(loadConfig({ flags: { dataDir: tmp.path, maxUrlLength: 300 }, env: {} }), { useIndex: false });
    const res = await s.app.inject({ url: `/metadata?series=1.2&x=${'a'.repeat(400)}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/longer than 300 characters/);
    const closing = s.close();
    const late = await s.app.inject({ url: '/status' });
    expect(late.statusCode).toBe(503);
    expect(late.json()).toEqual({ result: 'ng', message: 'the server is shutting down' });
    await closing;
    tmp.remove();
  });
});
