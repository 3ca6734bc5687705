// Address helpers shared by validation, decide() and the iptables rendering.
import ipaddr from 'ipaddr.js';
import type { Endpoint, Family } from './types.js';

export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** Parses an IP; IPv4-mapped IPv6 stays IPv6 so families never silently change. */
export function parseIp(text: string): Address | null {
  if (!ipaddr.isValid(text)) return null;
  // ipaddr.isValid accepts shorthand like "10.1" (classful); we only take full forms.
  if (!text.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(text)) return null;
  return ipaddr.parse(text);
}

export function familyOf(addr: Address): Family {
  return addr.kind() === 'ipv4' ? 4 : 6;
}

export function ipFamily(text: string): Family | null {
  const a = parseIp(text);
  return a ? familyOf(a) : null;
}

/** Canonical text form: IPv6 compressed, IPv4 dotted. */
export function canonicalIp(text: string): string | null {
  const a = parseIp(text);
  return a ? a.toString() : null;
}

export interface Cidr {
  address: Address;
  prefix: number;
}

/** Parses `A/N` (or a bare address as a host route) and returns it canonical, host bits cleared. */
export function parseCidr(text: string): { cidr: Cidr; text: string } | null {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addrText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const address = parseIp(addrText);
  if (!address) return null;
  const max = familyOf(address) === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  const network = networkAddress(address, prefix);
  return { cidr: { address: network, prefix }, text: `${network.toString()}/${prefix}` };
}

function networkAddress(address: Address, prefix: number): Address {
  const bytes = address.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return ipaddr.fromByteArray(bytes) as Address;
}

export function cidrContains(cidrText: string, ipText: string): boolean {
  const parsed = parseCidr(cidrText);
  const ip = parseIp(ipText);
  if (!parsed || !ip || ip.kind() !== parsed.cidr.address.kind()) return false;
  return (ip as ipaddr.IPv4).match(parsed.cidr.address as ipaddr.IPv4, parsed.cidr.prefix);
}

/** LOOP in the spec: 127.0.0.1/32 and ::1/128. */
export function isLoopHost(ipText: string): boolean {
  const c = canonicalIp(ipText);
  return c === '127.0.0.1' || c === '::1';
}

/** Loopback range: 127.0.0.0/8 or ::1. */
export function isLoopbackRange(ipText: string): boolean {
  return cidrContains('127.0.0.0/8', ipText) || canonicalIp(ipText) === '::1';
}

/** True when the CIDR contains any loopback address (Istio then keeps loopback capture). */
export function cidrHasLoopback(cidrText: string): boolean {
  const parsed = parseCidr(cidrText);
  if (!parsed) return false;
  const fam = familyOf(parsed.cidr.address);
  if (fam === 4) {
    // Overlaps 127.0.0.0/8 when either contains the other.
    return cidrContains(cidrText, '127.0.0.0') || (parsed.cidr.prefix >= 8 && cidrContains('127.0.0.0/8', parsed.cidr.address.toString()));
  }
  return cidrContains(cidrText, '::1');
}

export function formatEndpoint(ep: Endpoint): string {
  return ipFamily(ep.ip) === 6 ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/** Parses `IP:PORT` or `[IPv6]:PORT`; the address comes back canonical. */
export function parseEndpoint(text: string): Endpoint | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const ip = canonicalIp(m[1]!);
  const port = Number(m[2]);
  if (ip === null || (m[0].startsWith('[') && ipFamily(ip) !== 6) || !isPort(port)) return null;
  return { ip, port };
}

export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}
