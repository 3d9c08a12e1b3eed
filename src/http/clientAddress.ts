/**
 * The address a request comes from, for every decision that depends on it (token issuers, the
 * sockets an address may open), HTTP requests and WebSocket upgrades alike.
 *
 * Policy: the peer's address, unless the peer is a trusted proxy (trustProxy, CIDR blocks); then
 * the hops of X-Forwarded-For are read from the right (the one the trusted peer added first) and
 * the first that is not a trusted proxy is the client. When every hop is trusted, the leftmost is
 * the client. fastify is given the same trust (trustProxy as a function), so its request.ip
 * agrees.
 */
import type { IncomingMessage } from 'node:http';
import { addressAllowed, addressList } from '../config/addresses.js';

/** The client addresses of requests, under one trustProxy list. */
export interface ClientAddresses {
  /** Whether `address` is a trusted proxy's (false for every address when trustProxy is empty). */
  trusts(address: string): boolean;
  /** The client address of a request (an HTTP request's or an upgrade's IncomingMessage). */
  of(req: IncomingMessage): string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The client address of a request (see src/http/clientAddress.ts). */
    clientAddress(req: IncomingMessage): string;
  }
}

/** Client addresses behind the proxies of `trustProxy` (addresses and CIDR blocks; throws RangeError on a bad entry). */
export function clientAddresses(trustProxy: readonly string[]): ClientAddresses {
  const trusted = trustProxy.length > 0 ? addressList(trustProxy) : null;
  const trusts = (address: string): boolean => trusted !== null && addressAllowed(trusted, address);
  return {
    trusts,
    of(req) {
      const peer = req.socket.remoteAddress ?? 'unknown';
      if (!trusts(peer)) return peer;
      const header = req.headers['x-forwarded-for'];
      const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      for (let i = hops.length - 1; i >= 0; i--) if (!trusts(hops[i])) return hops[i];
      return hops[0] ?? peer;
    },
  };
}
