// A CapturePolicy as map entries (encodePolicy, pure), and the writer that puts them in
// the kernel for one netns cookie (PolicyMaps). A change never shows half a policy to the
// programs: the new sets are written under a fresh pod id, then the pod's policy value is
// swapped in one update, then the old pod id's sets are deleted.
import { cidrHasLoopback, ipFamily, parseCidr } from '../policy/net.js';
import type { CapturePolicy } from '../policy/types.js';
import {
  CIDR_SET,
  decodeBindKey,
  decodeCidrKey,
  decodeIfaceKey,
  decodePodPolicy,
  decodePortKey,
  encodeBindKey,
  encodeCidrKey,
  encodeIfaceKey,
  encodePodPolicy,
  encodePortKey,
  encodeAddrKey,
  encodeU32,
  encodeU64,
  decodeU64,
  IFACE_SET,
  POLICY_FLAG,
  PORT_SET,
  type BindKey,
  type CidrKey,
  type IfaceKey,
  type PodPolicyValue,
  type PortKey,
} from './codec.js';
import type { SluiceMaps } from './maps.js';

export const LOOPBACK_INTERFACE = 'lo';

/** A route of the pod's main table: which interface a destination leaves by. */
export interface Route {
  /** CIDR, `default` for 0.0.0.0/0 or ::/0. */
  dst: string;
  family: 4 | 6;
  dev: string;
}

/** What encodePolicy needs to know about the pod's netns. */
export interface PodNetns {
  /** ifindex of an interface inside the pod netns, or null when it has none. */
  ifindex(name: string): number | null;
  /** The main routing table; only read when excludeInterfaces names a non-lo interface. */
  routes(): Route[];
}

export interface PolicyEntries {
  value: PodPolicyValue;
  ports: PortKey[];
  cidrs: { key: CidrKey; value: number }[];
  ifaces: IfaceKey[];
  binds: BindKey[];
}

export class PolicyEncodeError extends Error {
  override readonly name = 'PolicyEncodeError';
  readonly code = 'POLICY_NOT_ENCODABLE';
}

function cidrsOfFamily(list: string[], family: 4 | 6): string[] {
  return list.filter((c) => ipFamily(c.split('/')[0]!) === family);
}

/** The map entries of `policy` under pod id `podId`. Pure, apart from asking `netns`. */
export function encodePolicy(policy: CapturePolicy, podId: number, netns: PodNetns): PolicyEntries {
  const include = policy.includeOutboundIPRanges;
  let flags = 0;
  if (policy.dnsCapture) flags |= POLICY_FLAG.DNS_CAPTURE;
  if (include === '*') flags |= POLICY_FLAG.OUT_INCLUDE_ALL;
  // decide.ts looks only at the include CIDRs of the destination's family.
  if (include !== '*' && cidrsOfFamily(include, 4).some(cidrHasLoopback)) flags |= POLICY_FLAG.KEEP_LOOPBACK4;
  if (include !== '*' && cidrsOfFamily(include, 6).some(cidrHasLoopback)) flags |= POLICY_FLAG.KEEP_LOOPBACK6;
  if (policy.includeInboundPorts === '*') flags |= POLICY_FLAG.IN_INCLUDE_ALL;
  else if (policy.includeInboundPorts.length > 0) flags |= POLICY_FLAG.IN_INCLUDE_LIST;
  if (policy.excludeInterfaces.includes(LOOPBACK_INTERFACE)) flags |= POLICY_FLAG.EXCLUDE_LOOPBACK_IF;
  if (policy.excludeOutboundBinds.length > 0) flags |= POLICY_FLAG.HAS_BINDS;

  const ports: PortKey[] = [];
  const addPorts = (set: number, list: number[]) => {
    for (const port of new Set(list)) ports.push({ podId, set, port });
  };
  addPorts(PORT_SET.OUT_EXCLUDE, policy.excludeOutboundPorts);
  addPorts(PORT_SET.OUT_INCLUDE, policy.includeOutboundPorts);
  if (policy.includeInboundPorts !== '*') addPorts(PORT_SET.IN_INCLUDE, policy.includeInboundPorts);
  addPorts(PORT_SET.IN_EXCLUDE, policy.excludeInboundPorts);

  const cidrs: { key: CidrKey; value: number }[] = [];
  const addCidrs = (set: number, list: string[]) => {
    for (const text of new Set(list)) {
      const parsed = parseCidr(text);
      if (!parsed) throw new PolicyEncodeError(`${text} is not a CIDR; the policy should have been validated`);
      cidrs.push({ key: { podId, set, cidr: parsed.text }, value: 1 });
    }
  };
  if (include !== '*') addCidrs(CIDR_SET.OUT_INCLUDE, include);
  addCidrs(CIDR_SET.OUT_EXCLUDE, policy.excludeOutboundIPRanges);

  // Outbound step 1 for remote destinations: the routes that leave by an excluded
  // interface, with every other route as a 0 so that a longer, allowed route wins.
  const excludedDevs = policy.excludeInterfaces.filter((i) => i !== LOOPBACK_INTERFACE);
  if (excludedDevs.length > 0) {
    flags |= POLICY_FLAG.ROUTE_CHECK;
    const seen = new Set<string>();
    for (const r of netns.routes()) {
      const cidr = r.dst === 'default' ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : r.dst;
      const parsed = parseCidr(cidr);
      if (!parsed || seen.has(parsed.text)) continue; // the first route of a prefix is the one used
      seen.add(parsed.text);
      cidrs.push({ key: { podId, set: CIDR_SET.ROUTE, cidr: parsed.text }, value: excludedDevs.includes(r.dev) ? 1 : 0 });
    }
  }

  const ifaces: IfaceKey[] = [];
  const addIfaces = (set: number, names: string[]) => {
    for (const name of new Set(names)) {
      if (name === LOOPBACK_INTERFACE) continue; // nothing arrives from outside on lo
      const ifindex = netns.ifindex(name);
      if (ifindex !== null) ifaces.push({ podId, set, ifindex });
    }
  };
  addIfaces(IFACE_SET.EXCLUDE, policy.excludeInterfaces);
  addIfaces(IFACE_SET.REROUTE, policy.rerouteInterfaces);
  if (ifaces.length > 0) flags |= POLICY_FLAG.HAS_INTERFACES;

  const binds: BindKey[] = policy.excludeOutboundBinds.map((b) => ({ podId, address: b.address, port: b.port }));

  const value: PodPolicyValue = {
    podId,
    flags,
    ports: { ...policy.ports },
    uids: [...policy.proxyUids],
    gids: [...policy.proxyGids],
    ip4: policy.podIPs.filter((ip) => ipFamily(ip) === 4),
    ip6: policy.podIPs.filter((ip) => ipFamily(ip) === 6),
  };
  return { value, ports, cidrs, ifaces, binds };
}

/** The entries as bytes, for writing and for comparing with what the maps hold. */
interface EncodedEntries {
  value: Buffer;
  sets: { map: 'sluice_ports' | 'sluice_cidrs' | 'sluice_ifaces' | 'sluice_binds'; key: Buffer; value: Buffer }[];
}

function toBytes(e: PolicyEntries): EncodedEntries {
  const one = encodeU32(1);
  return {
    value: encodePodPolicy(e.value),
    sets: [
      ...e.ports.map((k) => ({ map: 'sluice_ports' as const, key: encodePortKey(k), value: one })),
      ...e.cidrs.map((c) => ({ map: 'sluice_cidrs' as const, key: encodeCidrKey(c.key), value: encodeU32(c.value) })),
      ...e.ifaces.map((k) => ({ map: 'sluice_ifaces' as const, key: encodeIfaceKey(k), value: one })),
      ...e.binds.map((k) => ({ map: 'sluice_binds' as const, key: encodeBindKey(k), value: one })),
    ],
  };
}

const SET_MAPS = ['sluice_ports', 'sluice_cidrs', 'sluice_ifaces', 'sluice_binds'] as const;
type SetMap = (typeof SET_MAPS)[number];

function podIdOfSetKey(map: SetMap, key: Buffer): number {
  switch (map) {
    case 'sluice_ports':
      return decodePortKey(key).podId;
    case 'sluice_cidrs':
      return decodeCidrKey(key).podId;
    case 'sluice_ifaces':
      return decodeIfaceKey(key).podId;
    case 'sluice_binds':
      return decodeBindKey(key).podId;
  }
}

export interface ApplyResult {
  /** False when the maps already held exactly this policy. */
  written: boolean;
  podId: number;
}

/** Writes and removes pod policies in the pinned maps. */
export class PolicyMaps {
  private lastPodId = 0;

  constructor(private readonly maps: SluiceMaps) {
    for (const v of this.entries().values()) this.lastPodId = Math.max(this.lastPodId, v.podId);
  }

  /** Every policy in the kernel, by netns cookie. */
  entries(): Map<bigint, PodPolicyValue> {
    const out = new Map<bigint, PodPolicyValue>();
    for (const k of this.maps.keys('sluice_pods')) {
      const v = this.maps.lookup('sluice_pods', k);
      if (v) out.set(decodeU64(k), decodePodPolicy(v));
    }
    return out;
  }

  get(netnsCookie: bigint): PodPolicyValue | null {
    const v = this.maps.lookup('sluice_pods', encodeU64(netnsCookie));
    return v ? decodePodPolicy(v) : null;
  }

  /** Set-map keys that belong to `podId`, per map. */
  private setKeysOf(podId: number): { map: SetMap; key: Buffer }[] {
    const out: { map: SetMap; key: Buffer }[] = [];
    for (const map of SET_MAPS) for (const key of this.maps.keys(map)) if (podIdOfSetKey(map, key) === podId) out.push({ map, key });
    return out;
  }

  /** True when the maps hold exactly `wanted` (encoded under the current pod id). */
  private unchanged(netnsCookie: bigint, podId: number, wanted: EncodedEntries): boolean {
    const raw = this.maps.lookup('sluice_pods', encodeU64(netnsCookie));
    if (!raw || !raw.equals(wanted.value)) return false;
    const have = this.setKeysOf(podId);
    if (have.length !== wanted.sets.length) return false;
    const want = new Set(wanted.sets.map((s) => `${s.map}:${s.key.toString('hex')}:${s.value.toString('hex')}`));
    return have.every((h) => want.has(`${h.map}:${h.key.toString('hex')}:${this.maps.lookup(h.map, h.key)?.toString('hex')}`));
  }

  private nextPodId(): number {
    const inUse = new Set([...this.entries().values()].map((v) => v.podId));
    let id = this.lastPodId;
    do id = id >= 0xfffffffe ? 1 : id + 1;
    while (inUse.has(id));
    this.lastPodId = id;
    return id;
  }

  /**
   * Keeps sluice_addrs (captured pod addresses on this node, for acceleration) in step
   * with the pod's addresses: `was` are the ones it had, `now` the ones it has.
   */
  private syncAddresses(netnsCookie: bigint, was: string[], now: string[]): void {
    const owner = encodeU64(netnsCookie);
    for (const ip of now) {
      const key = encodeAddrKey(ip);
      if (!this.maps.lookup('sluice_addrs', key)?.equals(owner)) this.maps.update('sluice_addrs', key, owner);
    }
    const keep = new Set(now.map((ip) => encodeAddrKey(ip).toString('hex')));
    for (const ip of was) {
      const key = encodeAddrKey(ip);
      // Only our own entry: the address may belong to a newer pod by now.
      if (!keep.has(key.toString('hex')) && this.maps.lookup('sluice_addrs', key)?.equals(owner)) this.maps.delete('sluice_addrs', key);
    }
  }

  /** Puts `policy` in force for the netns; all or nothing. */
  apply(netnsCookie: bigint, policy: CapturePolicy, netns: PodNetns): ApplyResult {
    const current = this.get(netnsCookie);
    const hadAddresses = current ? [...current.ip4, ...current.ip6] : [];
    if (current) {
      const wanted = toBytes(encodePolicy(policy, current.podId, netns));
      if (this.unchanged(netnsCookie, current.podId, wanted)) {
        this.syncAddresses(netnsCookie, hadAddresses, policy.podIPs); // also fills them in after an upgrade
        return { written: false, podId: current.podId };
      }
    }
    const podId = this.nextPodId();
    const entries = toBytes(encodePolicy(policy, podId, netns));
    const written: { map: SetMap; key: Buffer }[] = [];
    try {
      for (const s of entries.sets) {
        this.maps.update(s.map, s.key, s.value);
        written.push(s);
      }
      this.maps.update('sluice_pods', encodeU64(netnsCookie), entries.value);
    } catch (err) {
      for (const w of written) this.maps.delete(w.map, w.key);
      throw err;
    }
    if (current) for (const old of this.setKeysOf(current.podId)) this.maps.delete(old.map, old.key);
    this.syncAddresses(netnsCookie, hadAddresses, policy.podIPs);
    return { written: true, podId };
  }

  /** Stops capturing the netns: its policy first, so programs stop at once, then its sets. */
  remove(netnsCookie: bigint): boolean {
    const current = this.get(netnsCookie);
    if (!current) return false;
    this.maps.delete('sluice_pods', encodeU64(netnsCookie));
    for (const old of this.setKeysOf(current.podId)) this.maps.delete(old.map, old.key);
    this.syncAddresses(netnsCookie, [...current.ip4, ...current.ip6], []);
    return true;
  }
}
