// Encoders and decoders for every struct in bpf/sluice.h, with explicit sizes and
// offsets. test/unit/codec.test.ts compiles sluice.h and checks LAYOUTS and the enum
// values below against it, so the two sides cannot drift silently.
//
// Byte order (see sluice.h): addresses and ports are network order; ids, flags, counts
// and cookies are host order.
import { SluiceError } from '../errors.js';
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';
import { KERNEL_LIMITS } from '../policy/limits.js';
import { parseCidr, parseIp } from '../policy/net.js';
import type { Endpoint, Family } from '../policy/types.js';

const LE = endianness() === 'LE';

// Defined once in src/policy (validate reports them); the codec test checks sluice.h.
export const MAX_PROXY_IDS = KERNEL_LIMITS.proxyIds;
export const MAX_POD_IPS = KERNEL_LIMITS.podIpsPerFamily;
export const ADDR_WORDS = 4;
export const NO_OWNER = 0xffffffff;
export const CIDR_KEY_FIXED_BITS = 64;

export const FAMILY = { IPV4: 4, IPV6: 6 } as const;

export const OUTCOME = { PASS: 0, OUTBOUND_PROXY: 1, INBOUND_PROXY: 2, DNS_PROXY: 3 } as const;

/** enum sluice_step; also the index of the "captured by this step" counter. */
export const STEP = {
  NONE: 0,
  OUT_1: 1,
  OUT_2: 2,
  OUT_3: 3,
  OUT_4A: 4,
  OUT_4B: 5,
  OUT_4C: 6,
  OUT_5A: 7,
  OUT_5C: 8,
  OUT_6: 9,
  OUT_7: 10,
  OUT_8: 11,
  OUT_9: 12,
  OUT_10: 13,
  IN_LOOPBACK: 14,
  IN_1: 15,
  IN_2: 16,
  IN_3: 17,
  IN_4: 18,
  IN_5: 19,
  COUNT: 20,
} as const;

/** Decision.step text (decide.ts) for each kernel step. */
export const STEP_NAMES: Record<number, string> = {
  [STEP.OUT_1]: 'outbound.1',
  [STEP.OUT_2]: 'outbound.2',
  [STEP.OUT_3]: 'outbound.3',
  [STEP.OUT_4A]: 'outbound.4a',
  [STEP.OUT_4B]: 'outbound.4b',
  [STEP.OUT_4C]: 'outbound.4c',
  [STEP.OUT_5A]: 'outbound.5a',
  [STEP.OUT_5C]: 'outbound.5c',
  [STEP.OUT_6]: 'outbound.6',
  [STEP.OUT_7]: 'outbound.7',
  [STEP.OUT_8]: 'outbound.8',
  [STEP.OUT_9]: 'outbound.9',
  [STEP.OUT_10]: 'outbound.10',
  [STEP.IN_LOOPBACK]: 'inbound.loopback',
  [STEP.IN_1]: 'inbound.1',
  [STEP.IN_2]: 'inbound.2',
  [STEP.IN_3]: 'inbound.3',
  [STEP.IN_4]: 'inbound.4',
  [STEP.IN_5]: 'inbound.5',
};

/** enum sluice_counter: the event counters after the per-step ones. */
export const COUNTER = {
  PASS_BASE: STEP.COUNT,
  CONNECT_NO_POLICY: 2 * STEP.COUNT,
  DNS_REPLY_RESTORED: 2 * STEP.COUNT + 1,
  SOCK_STORAGE_FAILED: 2 * STEP.COUNT + 2,
  CONN_MAP_FULL: 2 * STEP.COUNT + 3,
  CONN_RECORDED: 2 * STEP.COUNT + 4,
  CONN_DELETED: 2 * STEP.COUNT + 5,
  GETPEERNAME_RESTORED: 2 * STEP.COUNT + 6,
  ORIG_DST_RECORD: 2 * STEP.COUNT + 7,
  ORIG_DST_LOCAL: 2 * STEP.COUNT + 8,
  ORIG_DST_MISS: 2 * STEP.COUNT + 9,
  ORIG_DST_SHORT_BUFFER: 2 * STEP.COUNT + 10,
  LISTENER_ADDED: 2 * STEP.COUNT + 11,
  LISTENER_ADD_FAILED: 2 * STEP.COUNT + 12,
  INBOUND_NO_LISTENER: 2 * STEP.COUNT + 13,
  INBOUND_ASSIGN_FAILED: 2 * STEP.COUNT + 14,
  SK_LOOKUP_NO_POLICY: 2 * STEP.COUNT + 15,
  DNS_BIND_FAILED: 2 * STEP.COUNT + 16,
  ACCEL_ENROLLED: 2 * STEP.COUNT + 17,
  ACCEL_ENROL_FAILED: 2 * STEP.COUNT + 18,
  ACCEL_REMOVED: 2 * STEP.COUNT + 19,
  ACCEL_REDIRECTED: 2 * STEP.COUNT + 20,
  ACCEL_REDIRECTED_BYTES: 2 * STEP.COUNT + 21,
  ACCEL_PEER_MISSING: 2 * STEP.COUNT + 22,
  ACCEL_OFF: 2 * STEP.COUNT + 23,
  SK_LOOKUP_NO_PROGRAM: 2 * STEP.COUNT + 24,
  CONN_QUOTA_REFUSED: 2 * STEP.COUNT + 25,
  CONN_QUOTA_EXCEEDED: 2 * STEP.COUNT + 26,
  ORIG_DST_UNRECORDED: 2 * STEP.COUNT + 27,
  CONNECT_PENDING: 2 * STEP.COUNT + 28,
  MAX: 2 * STEP.COUNT + 29,
} as const;

/** Counter index → the name readCounters() reports. */
export function counterNames(): string[] {
  const names: string[] = [];
  for (let i = 0; i < COUNTER.MAX; i++) {
    if (i < STEP.COUNT) names.push(`captured:${STEP_NAMES[i] ?? 'none'}`);
    else if (i < COUNTER.CONNECT_NO_POLICY) names.push(`pass:${STEP_NAMES[i - STEP.COUNT] ?? 'none'}`);
    else names.push(Object.entries(COUNTER).find(([k, v]) => v === i && k !== 'PASS_BASE')![0].toLowerCase());
  }
  return names;
}

export const POLICY_FLAG = {
  DNS_CAPTURE: 1 << 0,
  OUT_INCLUDE_ALL: 1 << 1,
  KEEP_LOOPBACK4: 1 << 2,
  KEEP_LOOPBACK6: 1 << 3,
  IN_INCLUDE_ALL: 1 << 4,
  IN_INCLUDE_LIST: 1 << 5,
  EXCLUDE_LOOPBACK_IF: 1 << 6,
  ROUTE_CHECK: 1 << 7,
  HAS_BINDS: 1 << 8,
  HAS_INTERFACES: 1 << 9,
} as const;

export const PORT_SET = { OUT_EXCLUDE: 1, OUT_INCLUDE: 2, IN_INCLUDE: 3, IN_EXCLUDE: 4 } as const;
export const CIDR_SET = { OUT_INCLUDE: 1, OUT_EXCLUDE: 2, ROUTE: 3 } as const;
export const IFACE_SET = { EXCLUDE: 1, REROUTE: 2 } as const;
export const SOCK_FLAG = { CAPTURED: 1 << 0, ACCEPTED: 1 << 1, CONN_RECORDED: 1 << 2, ACCEL_ENROLLED: 1 << 3, ACCEL_TCP: 1 << 4 } as const;
/** enum sluice_global_flag */
export const GLOBAL_FLAG = { ACCELERATE: 1 << 0 } as const;

export interface Layout {
  size: number;
  offsets: Record<string, number>;
}

/** Every struct of sluice.h: size and the offset of each named field. */
export const LAYOUTS = {
  sluice_pod_policy: {
    size: 168,
    offsets: { pod_id: 0, flags: 4, port_outbound: 8, port_inbound: 10, port_tunnel: 12, port_dns: 14, n_uids: 16, n_gids: 17, n_ip4: 18, n_ip6: 19, uids: 24, gids: 56, ip4: 88, ip6: 104 },
  },
  sluice_port_key: { size: 8, offsets: { pod_id: 0, set: 4, port: 6 } },
  sluice_cidr_key: { size: 28, offsets: { prefixlen: 0, pod_id: 4, set: 8, family: 9, addr: 12 } },
  sluice_iface_key: { size: 12, offsets: { pod_id: 0, set: 4, ifindex: 8 } },
  sluice_bind_key: { size: 24, offsets: { pod_id: 0, port: 4, family: 6, addr: 8 } },
  sluice_orig_dst: { size: 32, offsets: { addr: 0, port: 16, family: 18, outcome: 19, step: 20, owner_cookie: 24 } },
  sluice_conn_key: { size: 48, offsets: { netns_cookie: 0, src: 8, dst: 24, sport: 40, dport: 42, family: 44 } },
  sluice_sock_state: { size: 88, offsets: { orig: 0, flags: 32, conn: 40 } },
  sluice_dns_state: { size: 56, offsets: { orig: 0, listener: 32, listener_port: 48, listener_family: 50 } },
  sluice_listener_key: { size: 16, offsets: { netns_cookie: 0, port: 8, family: 10 } },
  sluice_sk_lookup_config: { size: 8, offsets: { netns_cookie: 0 } },
  sluice_global: { size: 8, offsets: { flags: 0, conn_quota: 4 } },
  sluice_addr_key: { size: 20, offsets: { family: 0, addr: 4 } },
} as const satisfies Record<string, Layout>;

const P = LAYOUTS.sluice_pod_policy.offsets;

// ------------------------------------------------------------------ primitives

function u32(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt32LE(v >>> 0, off);
  else buf.writeUInt32BE(v >>> 0, off);
}
function getU32(buf: Buffer, off: number): number {
  return LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}
function u16(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt16LE(v, off);
  else buf.writeUInt16BE(v, off);
}
function getU16(buf: Buffer, off: number): number {
  return LE ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
}
function u64(buf: Buffer, off: number, v: bigint): void {
  if (LE) buf.writeBigUInt64LE(v, off);
  else buf.writeBigUInt64BE(v, off);
}
function getU64(buf: Buffer, off: number): bigint {
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

function port(p: number, what: string): number {
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

function isLoopbackWire(a: WireAddress): boolean {
  if (a.family === 4) return a.bytes[0] === 127;
  return a.bytes.subarray(0, 15).every((b) => b === 0) && a.bytes[15] === 1;
}

// ---------------------------------------------------------------- pod policy

export interface PodPolicyValue {
  podId: number;
  flags: number;
  ports: { outbound: number; inbound: number; tunnel: number; dns: number };
  uids: number[];
  gids: number[];
  /** IPv4 pod addresses (at most MAX_POD_IPS). */
  ip4: string[];
  /** IPv6 pod addresses (at most MAX_POD_IPS). */
  ip6: string[];
}

export function encodePodPolicy(v: PodPolicyValue): Buffer {
  const L = LAYOUTS.sluice_pod_policy;
  const b = Buffer.alloc(L.size);
  if (v.uids.length > MAX_PROXY_IDS || v.gids.length > MAX_PROXY_IDS) {
    throw new CodecError('TOO_MANY', `at most ${MAX_PROXY_IDS} proxy uids and ${MAX_PROXY_IDS} gids per pod (got ${v.uids.length} and ${v.gids.length})`);
  }
  if (v.ip4.length > MAX_POD_IPS || v.ip6.length > MAX_POD_IPS) {
    throw new CodecError('TOO_MANY', `at most ${MAX_POD_IPS} pod IPs per family (got ${v.ip4.length} IPv4, ${v.ip6.length} IPv6)`);
  }
  u32(b, P.pod_id, v.podId);
  u32(b, P.flags, v.flags);
  b.writeUInt16BE(port(v.ports.outbound, 'outbound port'), P.port_outbound);
  b.writeUInt16BE(port(v.ports.inbound, 'inbound port'), P.port_inbound);
  b.writeUInt16BE(port(v.ports.tunnel, 'tunnel port'), P.port_tunnel);
  b.writeUInt16BE(port(v.ports.dns, 'DNS port'), P.port_dns);
  b[P.n_uids] = v.uids.length;
  b[P.n_gids] = v.gids.length;
  b[P.n_ip4] = v.ip4.length;
  b[P.n_ip6] = v.ip6.length;
  v.uids.forEach((id, i) => u32(b, P.uids + 4 * i, id));
  v.gids.forEach((id, i) => u32(b, P.gids + 4 * i, id));
  v.ip4.forEach((ip, i) => {
    const w = wireAddress(ip);
    if (w.family !== 4) throw new CodecError('BAD_ADDRESS', `${ip} is not IPv4`);
    w.bytes.copy(b, P.ip4 + 4 * i, 0, 4);
  });
  v.ip6.forEach((ip, i) => {
    const w = wireAddress(ip);
    if (w.family !== 6) throw new CodecError('BAD_ADDRESS', `${ip} is not IPv6`);
    w.bytes.copy(b, P.ip6 + 16 * i, 0, 16);
  });
  return b;
}

export function decodePodPolicy(b: Buffer): PodPolicyValue {
  const nU = b[P.n_uids]!;
  const nG = b[P.n_gids]!;
  const n4 = b[P.n_ip4]!;
  const n6 = b[P.n_ip6]!;
  const range = (n: number) => Array.from({ length: Math.min(n, MAX_PROXY_IDS) }, (_, i) => i);
  return {
    podId: getU32(b, P.pod_id),
    flags: getU32(b, P.flags),
    ports: { outbound: b.readUInt16BE(P.port_outbound), inbound: b.readUInt16BE(P.port_inbound), tunnel: b.readUInt16BE(P.port_tunnel), dns: b.readUInt16BE(P.port_dns) },
    uids: range(nU).map((i) => getU32(b, P.uids + 4 * i)),
    gids: range(nG).map((i) => getU32(b, P.gids + 4 * i)),
    ip4: range(Math.min(n4, MAX_POD_IPS)).map((i) => addressText(4, b.subarray(P.ip4 + 4 * i, P.ip4 + 4 * i + 4))),
    ip6: range(Math.min(n6, MAX_POD_IPS)).map((i) => addressText(6, b.subarray(P.ip6 + 16 * i, P.ip6 + 16 * i + 16))),
  };
}

// ------------------------------------------------------------------ set keys

export interface PortKey {
  podId: number;
  set: number;
  port: number;
}

export function encodePortKey(k: PortKey): Buffer {
  const O = LAYOUTS.sluice_port_key.offsets;
  const b = Buffer.alloc(LAYOUTS.sluice_port_key.size);
  u32(b, O.pod_id, k.podId);
  u16(b, O.set, k.set);
  b.writeUInt16BE(port(k.port, 'port set'), O.port);
  return b;
}

export function decodePortKey(b: Buffer): PortKey {
  const O = LAYOUTS.sluice_port_key.offsets;
  return { podId: getU32(b, O.pod_id), set: getU16(b, O.set), port: b.readUInt16BE(O.port) };
}

export interface CidrKey {
  podId: number;
  set: number;
  /** Canonical `A/N`. */
  cidr: string;
}

export function encodeCidrKey(k: CidrKey): Buffer {
  const O = LAYOUTS.sluice_cidr_key.offsets;
  const parsed = parseCidr(k.cidr);
  if (!parsed) throw new CodecError('BAD_ADDRESS', `${k.cidr} is not a CIDR`);
  const w = wireAddress(parsed.cidr.address.toString());
  // A v4-mapped CIDR (::ffff:a.b.c.d/N, N >= 96) is the IPv4 CIDR it maps.
  const prefix = w.family === 4 && parsed.cidr.address.kind() === 'ipv6' ? Math.max(0, parsed.cidr.prefix - 96) : parsed.cidr.prefix;
  const b = Buffer.alloc(LAYOUTS.sluice_cidr_key.size);
  u32(b, O.prefixlen, CIDR_KEY_FIXED_BITS + prefix);
  u32(b, O.pod_id, k.podId);
  b[O.set] = k.set;
  b[O.family] = w.family;
  w.bytes.copy(b, O.addr);
  return b;
}

export function decodeCidrKey(b: Buffer): CidrKey {
  const O = LAYOUTS.sluice_cidr_key.offsets;
  const family = b[O.family]!;
  return {
    podId: getU32(b, O.pod_id),
    set: b[O.set]!,
    cidr: `${addressText(family, b.subarray(O.addr, O.addr + 16))}/${getU32(b, O.prefixlen) - CIDR_KEY_FIXED_BITS}`,
  };
}

export interface IfaceKey {
  podId: number;
  set: number;
  ifindex: number;
}

export function encodeIfaceKey(k: IfaceKey): Buffer {
  const O = LAYOUTS.sluice_iface_key.offsets;
  const b = Buffer.alloc(LAYOUTS.sluice_iface_key.size);
  u32(b, O.pod_id, k.podId);
  u32(b, O.set, k.set);
  u32(b, O.ifindex, k.ifindex);
  return b;
}

export function decodeIfaceKey(b: Buffer): IfaceKey {
  const O = LAYOUTS.sluice_iface_key.offsets;
  return { podId: getU32(b, O.pod_id), set: getU32(b, O.set), ifindex: getU32(b, O.ifindex) };
}

export interface BindKey {
  podId: number;
  address: string;
  /** null: every port. */
  port: number | null;
}

export function encodeBindKey(k: BindKey): Buffer {
  const O = LAYOUTS.sluice_bind_key.offsets;
  const w = wireAddress(k.address);
  const b = Buffer.alloc(LAYOUTS.sluice_bind_key.size);
  u32(b, O.pod_id, k.podId);
  b.writeUInt16BE(k.port === null ? 0 : port(k.port, 'bind port'), O.port);
  b[O.family] = w.family;
  w.bytes.copy(b, O.addr);
  return b;
}

export function decodeBindKey(b: Buffer): BindKey {
  const O = LAYOUTS.sluice_bind_key.offsets;
  const p = b.readUInt16BE(O.port);
  return { podId: getU32(b, O.pod_id), address: addressText(b[O.family]!, b.subarray(O.addr, O.addr + 16)), port: p === 0 ? null : p };
}

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
