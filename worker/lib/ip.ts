/**
 * IP addresses as bytes: one parser for a request's source address (`CF-Connecting-IP`) and a
 * webhook URL's host, CIDR blocks to test them against, and the key a per-source budget uses.
 * Working on bytes rather than text means every spelling of an address (leading zeros, upper
 * case, `::` anywhere, an IPv4 tail, a zone id) is one address.
 */

export interface IpAddress {
  version: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** A block of addresses: the first address and the prefix length in bits. */
export interface Cidr extends IpAddress {
  bits: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEXTET = /^[0-9a-f]{1,4}$/;

/** Dotted-quad IPv4, four decimal octets without leading zeros (no octal or hex spellings). */
function parseV4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) {
    return null;
  }
  const bytes = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    const n = Number(part);
    if (!OCTET.test(part) || n > 255) {
      return null;
    }
    bytes[i] = n;
  }
  return bytes;
}

/** IPv6 in any RFC 4291 text form (`::`, an IPv4 tail), any case, brackets and zone id removed. */
function parseV6(text: string): Uint8Array | null {
  let s = text.toLowerCase();
  if (s.startsWith("[") && s.endsWith("]")) {
    s = s.slice(1, -1);
  }
  const zone = s.indexOf("%");
  if (zone >= 0) {
    s = s.slice(0, zone);
  }
  const halves = s.split("::");
  if (halves.length > 2) {
    return null;
  }
  const groups = (half: string | undefined): number[] | null => {
    if (!half) {
      return [];
    }
    const out: number[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseV4(part);
        if (!v4) {
          return null;
        }
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else if (HEXTET.test(part)) {
        out.push(Number.parseInt(part, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (!(head && tail)) {
    return null;
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) {
    return null;
  }
  const all = [...head, ...Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [i, g] of all.entries()) {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  }
  return bytes;
}

/**
 * An IPv4 or IPv6 address in text, or null when it is neither.
 *
 * @example parseIp("[2001:DB8::1%eth0]") → { version: 6, bytes: Uint8Array(16) [32, 1, 13, 184, 0, …, 1] }
 */
export function parseIp(text: string): IpAddress | null {
  if (text.includes(":")) {
    const bytes = parseV6(text);
    return bytes ? { version: 6, bytes } : null;
  }
  const bytes = parseV4(text);
  return bytes ? { version: 4, bytes } : null;
}

/**
 * A CIDR block; throws on a malformed one or one with host bits set (tables of blocks are
 * constants, so a typo fails when the module loads, not silently at match time).
 *
 * @example parseCidr("192.0.2.0/24") → { version: 4, bytes: [192, 0, 2, 0], bits: 24 }
 */
export function parseCidr(text: string): Cidr {
  const [address = "", length = "", ...rest] = text.split("/");
  const ip = parseIp(address);
  const bits = Number(length);
  if (!ip || rest.length > 0 || !/^\d{1,3}$/.test(length) || bits > ip.bytes.length * 8) {
    throw new Error(`not a CIDR block: ${text}`);
  }
  const first = masked(ip.bytes, bits);
  if (ip.bytes.some((b, i) => b !== first[i])) {
    throw new Error(`host bits set in CIDR block: ${text}`);
  }
  return { ...ip, bits };
}

/** `bytes` with everything after the first `bits` bits cleared. */
function masked(bytes: Uint8Array, bits: number): Uint8Array {
  return bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, bits - 8 * i));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/** Whether `ip` lies in `cidr` (never across versions). */
export function inCidr(ip: IpAddress, cidr: Cidr): boolean {
  if (ip.version !== cidr.version) {
    return false;
  }
  const a = masked(ip.bytes, cidr.bits);
  const b = masked(cidr.bytes, cidr.bits);
  return a.every((byte, i) => byte === b[i]);
}

/** The last address of a block, for tests walking a table of blocks. */
export function lastOf(cidr: Cidr): Uint8Array {
  return cidr.bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, cidr.bits - 8 * i));
    return b | (0xff >> keep);
  });
}

const V4_MAPPED = parseCidr("::ffff:0:0/96");

/** The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for, else the address. */
export function unmapped(ip: IpAddress): IpAddress {
  return inCidr(ip, V4_MAPPED) ? { version: 4, bytes: ip.bytes.slice(12) } : ip;
}

/** An address in text: IPv4 dotted, IPv6 as eight lower-case hextets without leading zeros. */
export function formatIp(ip: IpAddress): string {
  if (ip.version === 4) {
    return ip.bytes.join(".");
  }
  const hextets: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    hextets.push((((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0)).toString(16));
  }
  return hextets.join(":");
}

/** Longest source text kept as a budget key when it is not an address at all. */
const MAX_SOURCE_KEY = 64;

/**
 * The key a per-source budget counts under. An IPv4 address (IPv4-mapped IPv6 included) is
 * itself; an IPv6 address is its /64, since one host is routinely handed a whole /64 and can
 * send from any address in it. Anything else (no address: a local run) is its own text, cut.
 *
 * @example sourceKey("2001:DB8:0:1::ab%eth0") → "2001:db8:0:1::/64"
 * @example sourceKey("::ffff:198.51.100.7") → "198.51.100.7"
 */
export function sourceKey(source: string): string {
  const parsed = parseIp(source);
  if (!parsed) {
    return source.slice(0, MAX_SOURCE_KEY);
  }
  const ip = unmapped(parsed);
  if (ip.version === 4) {
    return formatIp(ip);
  }
  return `${formatIp({ version: 6, bytes: masked(ip.bytes, 64) })
    .split(":")
    .slice(0, 4)
    .join(":")}::/64`;
}
