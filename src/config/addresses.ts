/**
 * Lists of client addresses as CIDR blocks (`127.0.0.0/8`, `::1`, `fd00::/8`), matched as
 * addresses with node:net's BlockList (IPv4-mapped IPv6 addresses such as ::ffff:127.0.0.1
 * match their IPv4 blocks), never as text.
 */
import { BlockList, isIP } from 'node:net';

/** Parses entries; throws RangeError naming the first bad one. */
export function addressList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [address, prefixText, extra] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) throw new RangeError(`'${entry}' is not an address or CIDR block`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefixText === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) throw new RangeError(`'${entry}' has a bad prefix length`);
    list.addSubnet(address, prefix, type);
  }
  return list;
}

export function addressAllowed(list: BlockList, address: string | undefined): boolean {
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
