// The oracle's policies and connection cases. Each case is one real connection made by
// the probe client, described as a Connection so decide() can predict its outcome.
import type { CapturePolicy, Connection, Protocol } from '../../../src/policy/types.js';
import { makePolicy } from '../../support/policy.js';
import { ADDRESSES } from './topology.js';

export { makePolicy };

export const POLICIES: Record<string, CapturePolicy> = {
  default: makePolicy(),
  'exclude-outbound-port': makePolicy({ excludeOutboundPorts: [443] }),
  'exclude-outbound-cidr': makePolicy({ excludeOutboundIPRanges: ['10.2.0.0/16', 'fd00:2::/64'] }),
  'include-outbound-cidrs': makePolicy({ includeOutboundIPRanges: ['10.2.0.0/16', 'fd00:2::/64'] }),
  'include-inbound-ports': makePolicy({ includeInboundPorts: [8080] }),
  'exclude-inbound-port': makePolicy({ excludeInboundPorts: [15090, 15021, 15020, 9090] }),
  'no-inbound-capture': makePolicy({ includeInboundPorts: [] }),
  'custom-status-port': makePolicy({ excludeInboundPorts: [15090, 15021, 15030] }),
  'dns-capture': makePolicy({ dnsCapture: true }),
  'two-proxy-uids': makePolicy({ proxyUids: [1337, 1338] }),
};

/** `vm`: the VM netns behind a reroute interface (topologies with a vmIfname only). */
export type NetnsRole = 'pod' | 'peer' | 'vm';

export interface OracleCase {
  /** `policy/name-v4`: unique across the whole list. */
  id: string;
  policyName: string;
  conn: Connection;
  /** Where and as whom the probe client runs. */
  client: { netns: NetnsRole; uid?: number; gid?: number; src?: string };
  /** Set when the case exercises an Istio quirk that sluice fixes on purpose. */
  quirk?: string;
}

/** The addresses of one family, so every case is written once for IPv4 and IPv6. */
interface Fam {
  v: 'v4' | 'v6';
  pod: string;
  remote: string;
  peer: string;
  loop: string;
  passthrough: string;
}
const V4: Fam = { v: 'v4', pod: ADDRESSES.pod4, remote: ADDRESSES.remote4, peer: ADDRESSES.peer4, loop: '127.0.0.1', passthrough: '127.0.0.6' };
const V6: Fam = { v: 'v6', pod: ADDRESSES.pod6, remote: ADDRESSES.remote6, peer: ADDRESSES.peer6, loop: '::1', passthrough: '::6' };

const APP = 1000;
const PROXY = 1337;

interface Spec {
  name: string;
  dst: (f: Fam) => string;
  port: number;
  protocol?: Protocol;
  /** Outbound from the pod as uid/gid (gid defaults to uid), optionally from a bound source. */
  uid?: number;
  gid?: number;
  src?: (f: Fam) => string;
  /** Inbound: from the peer netns, source = the peer's address on the pod subnet. */
  inbound?: boolean;
  quirk?: string;
}

function expand(policyName: string, specs: Spec[]): OracleCase[] {
  return [V4, V6].flatMap((f) =>
    specs.map((s): OracleCase => {
      const dst = { ip: s.dst(f), port: s.port };
      const protocol = s.protocol ?? 'tcp';
      const id = `${policyName}/${s.name}-${f.v}`;
      const base = s.quirk ? { quirk: s.quirk } : {};
      if (s.inbound) {
        return { id, policyName, conn: { direction: 'inbound', protocol, dst, src: f.peer }, client: { netns: 'peer' }, ...base };
      }
      const uid = s.uid ?? APP;
      const gid = s.gid ?? uid;
      const src = s.src?.(f);
      const conn: Connection = { direction: 'outbound', protocol, dst, uid, gid, ...(src ? { src } : {}) };
      return { id, policyName, conn, client: { netns: 'pod', uid, gid, ...(src ? { src } : {}) }, ...base };
    }),
  );
}

const pod = (f: Fam) => f.pod;
const remote = (f: Fam) => f.remote;
const peer = (f: Fam) => f.peer;
const loop = (f: Fam) => f.loop;
const passthrough = (f: Fam) => f.passthrough;

/** capture-spec.md "Reference outcomes", plus the loopback edges around them. */
const REFERENCE: Spec[] = [
  { name: 'app-remote', dst: remote, port: 80 },
  { name: 'app-remote-tunnel-port', dst: remote, port: 15008 },
  { name: 'app-loopback', dst: loop, port: 8080 },
  { name: 'app-own-pod-ip', dst: pod, port: 8080 },
  { name: 'proxy-remote', dst: remote, port: 80, uid: PROXY },
  { name: 'proxy-hairpin', dst: pod, port: 8080, uid: PROXY, src: pod },
  { name: 'proxy-passthrough-to-app', dst: pod, port: 8080, uid: PROXY, src: passthrough },
  { name: 'proxy-own-tunnel-port', dst: pod, port: 15008, uid: PROXY },
  { name: 'proxy-loopback', dst: loop, port: 15020, uid: PROXY },
  { name: 'gid-only-proxy-remote', dst: remote, port: 80, uid: 0, gid: PROXY },
  { name: 'proxy-readiness-probe', dst: passthrough, port: 15002, uid: PROXY, src: loop },
  { name: 'udp-dns-off', dst: remote, port: 53, protocol: 'udp' },
  { name: 'inbound-app-port', dst: pod, port: 8080, inbound: true },
  { name: 'inbound-tunnel-port', dst: pod, port: 15008, inbound: true },
  { name: 'inbound-status-port', dst: pod, port: 15020, inbound: true },
  { name: 'inbound-health-port', dst: pod, port: 15021, inbound: true },
  { name: 'inbound-prometheus-port', dst: pod, port: 15090, inbound: true },
  { name: 'inbound-outbound-port', dst: pod, port: 15001, inbound: true },
  {
    name: 'gid-only-proxy-own-pod-ip',
    dst: pod,
    port: 8080,
    uid: 0,
    gid: PROXY,
    quirk: 'the gid hairpin is dead: a proxy-gid socket reaching its own pod IP is returned by the uid rules first',
  },
];

export const CASES: OracleCase[] = [
  ...expand('default', REFERENCE),
  ...expand('exclude-outbound-port', [
    { name: 'app-remote-excluded-port', dst: remote, port: 443 },
    { name: 'app-remote-other-port', dst: remote, port: 80 },
    { name: 'udp-excluded-port', dst: remote, port: 443, protocol: 'udp' },
  ]),
  ...expand('exclude-outbound-cidr', [
    { name: 'app-excluded-cidr', dst: remote, port: 80 },
    { name: 'app-other-cidr', dst: peer, port: 80 },
    { name: 'app-loopback', dst: loop, port: 8080 },
  ]),
  ...expand('include-outbound-cidrs', [
    { name: 'app-included-cidr', dst: remote, port: 80 },
    { name: 'app-not-included', dst: peer, port: 80 },
    { name: 'app-own-pod-ip', dst: pod, port: 8080 },
    { name: 'proxy-hairpin', dst: pod, port: 8080, uid: PROXY, src: pod },
  ]),
  ...expand('include-inbound-ports', [
    { name: 'inbound-included-port', dst: pod, port: 8080, inbound: true },
    { name: 'inbound-other-port', dst: pod, port: 9090, inbound: true },
    { name: 'inbound-status-port', dst: pod, port: 15020, inbound: true },
    { name: 'inbound-tunnel-port', dst: pod, port: 15008, inbound: true },
  ]),
  ...expand('exclude-inbound-port', [
    { name: 'inbound-excluded-port', dst: pod, port: 9090, inbound: true },
    { name: 'inbound-app-port', dst: pod, port: 8080, inbound: true },
  ]),
  ...expand('no-inbound-capture', [
    { name: 'inbound-app-port', dst: pod, port: 8080, inbound: true },
    { name: 'inbound-outbound-port', dst: pod, port: 15001, inbound: true },
    { name: 'app-remote', dst: remote, port: 80 },
    { name: 'proxy-hairpin', dst: pod, port: 8080, uid: PROXY, src: pod },
  ]),
  ...expand('custom-status-port', [
    { name: 'inbound-custom-status-port', dst: pod, port: 15030, inbound: true },
    { name: 'inbound-default-status-port', dst: pod, port: 15020, inbound: true },
    { name: 'inbound-health-port', dst: pod, port: 15021, inbound: true },
  ]),
  ...expand('dns-capture', [
    { name: 'app-dns-tcp', dst: remote, port: 53 },
    { name: 'app-dns-udp', dst: remote, port: 53, protocol: 'udp' },
    { name: 'proxy-dns-tcp', dst: remote, port: 53, uid: PROXY },
    { name: 'proxy-dns-udp', dst: remote, port: 53, protocol: 'udp', uid: PROXY },
    { name: 'gid-only-proxy-dns-udp', dst: remote, port: 53, protocol: 'udp', uid: 0, gid: PROXY },
    { name: 'app-dns-udp-own-pod-ip', dst: pod, port: 53, protocol: 'udp' },
    { name: 'app-dns-tcp-own-pod-ip', dst: pod, port: 53 },
    { name: 'app-remote', dst: remote, port: 80 },
    { name: 'app-own-pod-ip', dst: pod, port: 8080 },
    { name: 'proxy-hairpin', dst: pod, port: 8080, uid: PROXY, src: pod },
  ]),
  ...expand('two-proxy-uids', [
    { name: 'first-uid-hairpin', dst: pod, port: 8080, uid: 1337, src: pod },
    {
      name: 'second-uid-hairpin',
      dst: pod,
      port: 8080,
      uid: 1338,
      src: pod,
      quirk: 'only the first uid gets the hairpin: the first uid triple returns every other uid for local destinations',
    },
    { name: 'second-uid-remote', dst: remote, port: 80, uid: 1338 },
    { name: 'second-uid-loopback', dst: loop, port: 8080, uid: 1338 },
    { name: 'app-remote', dst: remote, port: 80 },
    {
      name: 'gid-only-own-pod-ip',
      dst: pod,
      port: 8080,
      uid: 0,
      gid: 1337,
      quirk: 'the gid hairpin is dead: a proxy-gid socket reaching its own pod IP is returned by the uid rules first',
    },
  ]),
];
