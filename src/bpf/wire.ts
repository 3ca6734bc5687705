// The byte-level primitives of the codecs: host-order integers, network-order ports, and
// addresses as sluice.h stores them (IPv4-mapped IPv6 becomes IPv4).
import { SluiceError } from '../errors.js';
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';
import { parseIp } from '../policy/net.js';
import type { Family } from '../policy/types.js';
import { FAMILY } from './abi.js';

const LE = endianness() === 'LE';

export function u32(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt32LE(v >>> 0, off);
  else buf.writeUInt32BE(v >>> 0, off);
}
export function getU32(buf: Buffer, off: number): number {
  return LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}
export function u16(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt16LE(v, off);
  else buf.writeUInt16BE(v, off);
}
export function getU16(buf: Buffer, off: number): number {
  return LE ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
}
export function u64(buf: Buffer, off: number, v: bigint): void {
  if (LE) buf.writeBigUInt64LE(v, off);
  else buf.writeBigUInt64BE(v, off);
}
export function getU64(buf: Buffer, off: number): bigint {
  return LE ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off);
}

/** A host-order __u32 value (set maps). */
export function encodeU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  u32(b, 0, v);
  return b;
}
export function decodeU32(b: Buffer): number {
  return getU32(b, 0);
}
/** A host-order __u64 (netns cookies as keys, counters). */
export function encodeU64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  u64(b, 0, v);
  return b;
}
export function decodeU64(b: Buffer, off = 0): bigint {
  return getU64(b, off);
}

export class CodecError extends SluiceError {
  declare readonly code: 'BAD_ADDRESS' | 'BAD_PORT' | 'TOO_MANY';
  constructor(code: 'BAD_ADDRESS' | 'BAD_PORT' | 'TOO_MANY', message: string) {
    super(code, message);
  }
}


export function port(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new CodecError('BAD_PORT', `${what}: ${p} is not a port (0..65535)`);
  return p;
}

export interface WireAddress {
  family: Family;
  /** 16 bytes, network order: IPv4 in the first 4, the rest zero. */
  bytes: Buffer;
}

/** An address as sluice.h stores it; IPv4-mapped IPv6 becomes IPv4. */
export function wireAddress(ip: string): WireAddress {
  const a = parseIp(ip);
  if (!a) throw new CodecError('BAD_ADDRESS', `${ip} is not an IP address`);
  const bytes = Buffer.alloc(16);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) {
    Buffer.from((a as ipaddr.IPv6).toIPv4Address().toByteArray()).copy(bytes);
    return { family: 4, bytes };
  }
  Buffer.from(a.toByteArray()).copy(bytes);
  return { family: a.kind() === 'ipv4' ? 4 : 6, bytes };
}

export function addressText(family: number, bytes: Buffer): string {
  if (family === FAMILY.IPV4) return ipaddr.fromByteArray([...bytes.subarray(0, 4)]).toString();
  return ipaddr.fromByteArray([...bytes.subarray(0, 16)]).toString();
}

export function isLoopbackWire(a: WireAddress): boolean {
  if (a.family === 4) return a.bytes[0] === 127;
  return a.bytes.subarray(0, 15).every((b) => b === 0) && a.bytes[15] === 1;
}
