// Every limit the kernel side puts on one pod's policy, in one place. The codec
// (src/bpf/codec.ts) encodes at most these, and buildPolicy rejects a policy over any of
// them, so `sluice validate` and `explain` report what would otherwise fail at apply.
import { PolicyError } from './errors.js';
import { ipFamily } from './net.js';
import type { CapturePolicy } from './types.js';

export const KERNEL_LIMITS = Object.freeze({
  /** struct sluice_pod_policy: uids[] and gids[] (SLUICE_MAX_PROXY_IDS). */
  proxyIds: 8,
  /** struct sluice_pod_policy: ip4[] and ip6[] (SLUICE_MAX_POD_IPS). */
  podIpsPerFamily: 4,
});

/**
 * Entries one pod may hold in each set (a port, CIDR, interface or bind list). The set
 * maps are shared by every pod on the node (65,536 entries each by default), and a
 * changed set is written before the old one is deleted, so one pod must stay far below
 * half of a map. Node config `maxSetEntriesPerPod` changes it.
 */
export const DEFAULT_MAX_SET_ENTRIES = 1024;
export const MAX_SET_ENTRIES_LIMIT = 32_768;

/** A list that is over its limit, without repeating a value that may be megabytes long. */
export function tooMany(object: string, field: string, count: number, limit: number, what: string, fixed = false): PolicyError {
  const fix = fixed ? 'the kernel policy has room for no more' : 'use fewer (wider CIDRs), or raise maxSetEntriesPerPod in the node config';
  return new PolicyError('TOO_MANY', object, field, `(${count} entries)`, `at most ${limit} ${what} per pod; ${fix}`);
}

const SETS: { key: keyof CapturePolicy; field: string; what: string }[] = [
  { key: 'includeOutboundIPRanges', field: 'annotation traffic.sidecar.istio.io/includeOutboundIPRanges', what: 'CIDRs' },
  { key: 'excludeOutboundIPRanges', field: 'annotation traffic.sidecar.istio.io/excludeOutboundIPRanges', what: 'CIDRs' },
  { key: 'includeOutboundPorts', field: 'annotation traffic.sidecar.istio.io/includeOutboundPorts', what: 'ports' },
  { key: 'excludeOutboundPorts', field: 'annotation traffic.sidecar.istio.io/excludeOutboundPorts', what: 'ports' },
  { key: 'includeInboundPorts', field: 'annotation traffic.sidecar.istio.io/includeInboundPorts', what: 'ports' },
  { key: 'excludeInboundPorts', field: 'excluded inbound ports (annotation, status port and Sidecar captureMode NONE)', what: 'ports' },
  { key: 'excludeInterfaces', field: 'annotation traffic.sidecar.istio.io/excludeInterfaces', what: 'interfaces' },
  { key: 'rerouteInterfaces', field: 'annotation istio.io/reroute-virtual-interfaces', what: 'interfaces' },
  { key: 'excludeOutboundBinds', field: 'Sidecar spec.egress binds with captureMode NONE', what: 'binds' },
];

/** What `policy` holds beyond the kernel's limits or the per-pod set cap. */
export function policyLimitErrors(policy: CapturePolicy, object: string, maxSetEntries: number): PolicyError[] {
  const errors: PolicyError[] = [];
  for (const s of SETS) {
    const list = policy[s.key];
    if (Array.isArray(list) && list.length > maxSetEntries) errors.push(tooMany(object, s.field, list.length, maxSetEntries, s.what));
  }
  for (const [key, field] of [
    ['proxyUids', 'proxy uids (runAsUser, or config proxyUids)'],
    ['proxyGids', 'proxy gids (runAsGroup, or config proxyGids)'],
  ] as const) {
    if (policy[key].length > KERNEL_LIMITS.proxyIds) errors.push(tooMany(object, field, policy[key].length, KERNEL_LIMITS.proxyIds, key === 'proxyUids' ? 'proxy uids' : 'proxy gids', true));
  }
  for (const family of [4, 6] as const) {
    const n = policy.podIPs.filter((ip) => ipFamily(ip) === family).length;
    if (n > KERNEL_LIMITS.podIpsPerFamily) errors.push(tooMany(object, 'status.podIPs', n, KERNEL_LIMITS.podIpsPerFamily, `IPv${family} pod addresses`, true));
  }
  return errors;
}
