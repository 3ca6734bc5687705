// Test policies, shared by the unit and kernel tests.
import { DEFAULT_PORTS, type CapturePolicy } from '../../src/policy/types.js';
import { ADDRESSES } from './addresses.js';

/** A test policy: the defaults of types.ts / capture-spec.md, with overrides. */
export function makePolicy(overrides: Partial<CapturePolicy> = {}): CapturePolicy {
  const proxyUids = overrides.proxyUids ?? [1337];
  return {
    pod: { namespace: 'default', name: 'app' },
    podIPs: [ADDRESSES.pod4, ADDRESSES.pod6],
    proxyUids,
    // The gid list defaults to the uid list, as in istio-iptables.
    proxyGids: [...proxyUids],
    ports: { ...DEFAULT_PORTS },
    includeOutboundIPRanges: '*',
    excludeOutboundIPRanges: [],
    includeOutboundPorts: [],
    excludeOutboundPorts: [],
    includeInboundPorts: '*',
    excludeInboundPorts: [15090, 15021, 15020],
    excludeInterfaces: [],
    rerouteInterfaces: [],
    excludeOutboundBinds: [],
    dnsCapture: false,
    sidecar: null,
    ...overrides,
  };
}
