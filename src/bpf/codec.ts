// Encoders and decoders for the policy structs of bpf/sluice.h (the pod policy and the set
// keys), with the offsets of abi.ts LAYOUTS; codec-conn.ts has the connection structs.
// This module is the codecs' one entry point: it re-exports the constants and the rest.
//
// Byte order (see sluice.h): addresses and ports are network order; ids, flags, counts
// and cookies are host order.
import { parseCidr } from '../policy/net.js';
import { CIDR_KEY_FIXED_BITS, LAYOUTS, MAX_POD_IPS, MAX_PROXY_IDS } from './abi.js';
import { addressText, CodecError, getU16, getU32, port, u16, u32, wireAddress } from './wire.js';

export * from './abi.js';
export * from './codec-conn.js';
export { addressText, CodecError, decodeU32, decodeU64, encodeU32, encodeU64, wireAddress, type WireAddress } from './wire.js';

const P = LAYOUTS.sluice_pod_policy.offsets;

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
