/**
 * The client address (src/http/clientAddress.ts), as its policy says: the peer, or behind trusted
 * proxies the first untrusted hop of X-Forwarded-For from the right, the leftmost when all are
 * trusted. Each case is checked against the address worked out by hand and against fastify's own
 * request.ip, given the same trust as a function (as the app gives it) and given the list itself
 * (fastify's own parsing of it): the HTTP routes and the WebSocket upgrades see one address.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { clientAddresses } from '../src/http/clientAddress.js';

/** The addresses ours and fastify's give for a request from `peer` with X-Forwarded-For `forwarded`. */
async function addressesOf(trustProxy: string[], peer: string, forwarded?: string): Promise<{ ours: string; fastify: string; fastifyList: string }> {
  const addresses = clientAddresses(trustProxy);
  const headers = forwarded === undefined ? {} : { 'x-forwarded-for': forwarded };
  const ipOf = async (app: FastifyInstance, ours: boolean): Promise<string> => {
    app.get('/', async (request) => (ours ? addresses.of(request.raw) : request.ip));
    try {
      return (await app.inject({ url: '/', remoteAddress: peer, headers })).body;
    } finally {
      await app.close();
    }
  };
  const trusting = trustProxy.length > 0;
  return {
    ours: await ipOf(Fastify(), true),
    fastify: await ipOf(Fastify({ trustProxy: trusting ? (address: string) => addresses.trusts(address) : false }), false),
    fastifyList: await ipOf(Fastify({ trustProxy: trusting ? trustProxy : false }), false),
  };
}

const cases: { name: string; trust: string[]; peer: string; forwarded?: string; client: string }[] = [
  {
    name: 'no trusted proxies: the peer, whatever the header says',
    trust: [],
    peer: '203.0.113.9',
    forwarded: '198.51.100.1',
    client: '203.0.113.9',
  },
  { name: 'a trusted peer without the header: the peer', trust: ['127.0.0.1'], peer: '127.0.0.1', client: '127.0.0.1' },
  { name: 'a trusted peer: the hop it added', trust: ['127.0.0.1'], peer: '127.0.0.1', forwarded: '203.0.113.5', client: '203.0.113.5' },
  { name: 'an untrusted peer: the peer', trust: ['127.0.0.1'], peer: '198.51.100.7', forwarded: '203.0.113.5', client: '198.51.100.7' },
  {
    name: 'a chain of trusted proxies: the first untrusted hop from the right, not what the client wrote left of it',
    trust: ['127.0.0.1', '10.0.0.0/8'],
    peer: '127.0.0.1',
    forwarded: '192.0.2.66, 203.0.113.5, 10.1.2.3',
    client: '203.0.113.5',
  },
  {
    name: 'every hop trusted: the leftmost',
    trust: ['127.0.0.1', '10.0.0.0/8'],
    peer: '127.0.0.1',
    forwarded: '10.0.0.2, 10.1.2.3',
    client: '10.0.0.2',
  },
  {
    name: 'spaces and empty hops',
    trust: ['127.0.0.1', '10.0.0.0/8'],
    peer: '127.0.0.1',
    forwarded: ' 203.0.113.5 ,, 10.1.2.3 ',
    client: '203.0.113.5',
  },
  {
    name: 'an IPv4-mapped peer matches its IPv4 block',
    trust: ['127.0.0.0/8'],
    peer: '::ffff:127.0.0.1',
    forwarded: '203.0.113.5',
    client: '203.0.113.5',
  },
  { name: 'IPv6 proxies and clients', trust: ['fd00::/8'], peer: 'fd00::1', forwarded: '2001:db8::5, fd00::2', client: '2001:db8::5' },
  { name: 'a hop that is not an address is untrusted', trust: ['127.0.0.1'], peer: '127.0.0.1', forwarded: 'unknown', client: 'unknown' },
];

describe('the client address', () => {
  for (const c of cases) {
    it(c.name, async () => {
      expect(await addressesOf(c.trust, c.peer, c.forwarded)).toEqual({ ours: c.client, fastify: c.client, fastifyList: c.client });
    });
  }

  it('trusts only the listed proxies', () => {
    const addresses = clientAddresses(['127.0.0.1', '10.0.0.0/8']);
    expect(['127.0.0.1', '10.255.0.1', '::ffff:10.0.0.1'].map((a) => addresses.trusts(a))).toEqual([true, true, true]);
    expect(['127.0.0.2', '11.0.0.1', '::1', 'not an address'].map((a) => addresses.trusts(a))).toEqual([false, false, false, false]);
    expect(clientAddresses([]).trusts('127.0.0.1')).toBe(false);
  });
});
