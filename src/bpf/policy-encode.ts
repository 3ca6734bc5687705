// A CapturePolicy as map entries (encodePolicy, pure) and as the bytes policy-map.ts
// writes for one netns cookie.
import { SluiceError } from '../errors.js';
import { cidrHasLoopback, ipFamily, parseCidr } from '../policy/net.js';
import type { CapturePolicy } from '../policy/types.js';
import type { SetMapName } from './map-table.js';
import {
  CIDR_SET,
  encodeBindKey,
  encodeCidrKey,
  encodeIfaceKey,
  encodePodPolicy,
  encodePortKey,
  encodeU32,
  IFACE_SET,
  POLICY_FLAG,
  PORT_SET,
  type BindKey,
  type CidrKey,
  type IfaceKey,
  type PodPolicyValue,
  type PortKey,
} from './codec.js';

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

export class PolicyEncodeError extends SluiceError {
  constructor(message: string) {
    super('POLICY_NOT_ENCODABLE', message);
  }
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
  // Empty lists: the programs skip their LPM lookups (nothing of this pod id is there).
  else if (include.length === 0) flags |= POLICY_FLAG.NO_OUT_INCLUDE_CIDRS;
  if (policy.excludeOutboundIPRanges.length === 0) flags |= POLICY_FLAG.NO_OUT_EXCLUDE_CIDRS;
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
export interface EncodedEntries {
  value: Buffer;
  sets: { map: SetMapName; key: Buffer; value: Buffer }[];
}

export function toBytes(e: PolicyEntries): EncodedEntries {
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
