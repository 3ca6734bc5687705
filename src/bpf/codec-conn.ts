// Encoders and decoders for the connection structs of bpf/sluice.h: original
// destinations, connection and acceleration keys, socket state, listeners, the sk_lookup
// config, the global settings and the pod address keys.
import type { Endpoint, Family } from '../policy/types.js';
import { LAYOUTS } from './abi.js';
import { addressText, getU32, getU64, isLoopbackWire, port, u32, u64, wireAddress } from './wire.js';

// ---------------------------------------------------- original destinations

export interface OrigDst {
  destination: Endpoint;
  family: Family;
  outcome: number;
  step: number;
  ownerCookie: bigint;
}

export function encodeOrigDst(v: OrigDst): Buffer {
  const O = LAYOUTS.sluice_orig_dst.offsets;
  const w = wireAddress(v.destination.ip);
  const b = Buffer.alloc(LAYOUTS.sluice_orig_dst.size);
  w.bytes.copy(b, O.addr);
  b.writeUInt16BE(port(v.destination.port, 'original port'), O.port);
  b[O.family] = w.family;
  b[O.outcome] = v.outcome;
  b[O.step] = v.step;
  u64(b, O.owner_cookie, v.ownerCookie);
  return b;
}

export function decodeOrigDst(b: Buffer, base = 0): OrigDst {
  const O = LAYOUTS.sluice_orig_dst.offsets;
  const family = b[base + O.family]! as Family;
  return {
    destination: { ip: addressText(family, b.subarray(base + O.addr, base + O.addr + 16)), port: b.readUInt16BE(base + O.port) },
    family,
    outcome: b[base + O.outcome]!,
    step: b[base + O.step]!,
    ownerCookie: getU64(b, base + O.owner_cookie),
  };
}

export interface ConnKey {
  /** The app's end of a captured connection. */
  client: Endpoint;
  /** The proxy listener's end. */
  listener: Endpoint;
  /** Kept only when the listener address is loopback (conn_key_make in endpoint.h). */
  netnsCookie: bigint;
}

/**
 * A sluice_conn_key: src and dst endpoints, the family of dst, and the netns cookie when
 * `keepCookie` says the addresses alone could belong to two pods (loopback).
 */
function connKeyBytes(src: Endpoint, dst: Endpoint, cookie: bigint, keepCookie: (src: boolean, dst: boolean) => boolean, names: [string, string]): Buffer {
  const O = LAYOUTS.sluice_conn_key.offsets;
  const s = wireAddress(src.ip);
  const d = wireAddress(dst.ip);
  const b = Buffer.alloc(LAYOUTS.sluice_conn_key.size);
  u64(b, O.netns_cookie, keepCookie(isLoopbackWire(s), isLoopbackWire(d)) ? cookie : 0n);
  s.bytes.copy(b, O.src);
  d.bytes.copy(b, O.dst);
  b.writeUInt16BE(port(src.port, names[0]), O.sport);
  b.writeUInt16BE(port(dst.port, names[1]), O.dport);
  b[O.family] = d.family;
  return b;
}

/** The same key conn_key_make() builds in the kernel: the cookie when the listener is loopback. */
export function encodeConnKey(k: ConnKey): Buffer {
  return connKeyBytes(k.client, k.listener, k.netnsCookie, (_, dst) => dst, ['client port', 'listener port']);
}

export function decodeConnKey(b: Buffer, base = 0): ConnKey {
  const O = LAYOUTS.sluice_conn_key.offsets;
  const family = b[base + O.family]!;
  return {
    netnsCookie: getU64(b, base + O.netns_cookie),
    client: { ip: addressText(family, b.subarray(base + O.src, base + O.src + 16)), port: b.readUInt16BE(base + O.sport) },
    listener: { ip: addressText(family, b.subarray(base + O.dst, base + O.dst + 16)), port: b.readUInt16BE(base + O.dport) },
  };
}

export interface SockState {
  orig: OrigDst;
  flags: number;
  conn: ConnKey;
}

export function decodeSockState(b: Buffer): SockState {
  const O = LAYOUTS.sluice_sock_state.offsets;
  return { orig: decodeOrigDst(b, O.orig), flags: getU32(b, O.flags), conn: decodeConnKey(b, O.conn) };
}

// ------------------------------------------------------- listeners, sk_lookup

export interface ListenerKey {
  netnsCookie: bigint;
  port: number;
  family: Family;
}

export function encodeListenerKey(k: ListenerKey): Buffer {
  const O = LAYOUTS.sluice_listener_key.offsets;
  const b = Buffer.alloc(LAYOUTS.sluice_listener_key.size);
  u64(b, O.netns_cookie, k.netnsCookie);
  b.writeUInt16BE(port(k.port, 'listener port'), O.port);
  b[O.family] = k.family;
  return b;
}

export function decodeListenerKey(b: Buffer): ListenerKey {
  const O = LAYOUTS.sluice_listener_key.offsets;
  return { netnsCookie: getU64(b, O.netns_cookie), port: b.readUInt16BE(O.port), family: b[O.family]! as Family };
}

export function encodeSkLookupConfig(netnsCookie: bigint): Buffer {
  const b = Buffer.alloc(LAYOUTS.sluice_sk_lookup_config.size);
  u64(b, LAYOUTS.sluice_sk_lookup_config.offsets.netns_cookie, netnsCookie);
  return b;
}

// ------------------------------------------------------------- acceleration

/** struct sluice_global: the flags, and the per-pod record quota (0: none). */
export function encodeGlobal(flags: number, connQuota = 0): Buffer {
  const b = Buffer.alloc(LAYOUTS.sluice_global.size);
  u32(b, LAYOUTS.sluice_global.offsets.flags, flags);
  u32(b, LAYOUTS.sluice_global.offsets.conn_quota, connQuota);
  return b;
}

export function decodeGlobal(b: Buffer): number {
  return getU32(b, LAYOUTS.sluice_global.offsets.flags);
}

export function decodeGlobalConnQuota(b: Buffer): number {
  return getU32(b, LAYOUTS.sluice_global.offsets.conn_quota);
}

export interface AccelKey {
  /** The socket's own end. */
  self: Endpoint;
  /** Its peer's end. */
  peer: Endpoint;
  /** Kept only when either end is loopback (accel_key_make in bpf/accel.h). */
  netnsCookie: bigint;
}

/** The sluice_accel key accel_key_make() builds: a sluice_conn_key with src = self, the cookie when either end is loopback. */
export function encodeAccelKey(k: AccelKey): Buffer {
  return connKeyBytes(k.self, k.peer, k.netnsCookie, (src, dst) => src || dst, ['socket port', 'peer port']);
}

export function decodeAccelKey(b: Buffer): AccelKey {
  const c = decodeConnKey(b);
  return { self: c.client, peer: c.listener, netnsCookie: c.netnsCookie };
}

/** A key of sluice_addrs: an address of a captured pod on this node. */
export function encodeAddrKey(ip: string): Buffer {
  const O = LAYOUTS.sluice_addr_key.offsets;
  const w = wireAddress(ip);
  const b = Buffer.alloc(LAYOUTS.sluice_addr_key.size);
  b[O.family] = w.family;
  w.bytes.copy(b, O.addr);
  return b;
}

export function decodeAddrKey(b: Buffer): string {
  const O = LAYOUTS.sluice_addr_key.offsets;
  return addressText(b[O.family]!, b.subarray(O.addr, O.addr + 16));
}
