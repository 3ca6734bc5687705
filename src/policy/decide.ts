// decide(): capture-spec's outbound steps 1-10 and inbound steps 1-5, as code.
// The helper names mirror the steps so bpf/decide.h can be read side by side.
import { canonicalIp, cidrContains, cidrHasLoopback, formatEndpoint, ipFamily, isLoopHost, isLoopbackRange } from './net.js';
import {
  DNS_PORT,
  PASSTHROUGH_SOURCES,
  type CapturePolicy,
  type Connection,
  type Decision,
  type DecideOptions,
  type Outcome,
} from './types.js';

/** The interface a connection uses when the caller does not say. */
export const DEFAULT_INTERFACE = 'eth0';
export const LOOPBACK_INTERFACE = 'lo';

/** A local address: the pod's own IPs, 127.0.0.0/8, ::1 and ::6. */
export function isLocalAddress(policy: CapturePolicy, ip: string): boolean {
  const c = canonicalIp(ip);
  if (c === null) return false;
  return isLoopbackRange(c) || c === '::6' || policy.podIPs.includes(c);
}

function proxied(outcome: Exclude<Outcome, 'pass'>, port: number, conn: Connection, step: string, reason: string): Decision {
  return { outcome, port, originalDestination: formatEndpoint(conn.dst), step, reason };
}

function pass(conn: Connection, step: string, reason: string): Decision {
  return { outcome: 'pass', port: conn.dst.port, originalDestination: null, step, reason };
}

export function decide(policy: CapturePolicy, conn: Connection, opts: DecideOptions = {}): Decision {
  const dst = canonicalIp(conn.dst.ip);
  if (dst === null) throw new TypeError(`decide: destination ${conn.dst.ip} is not an IP address`);
  const normalized: Connection = { ...conn, dst: { ip: dst, port: conn.dst.port } };
  return conn.direction === 'inbound' ? decideInbound(policy, normalized) : decideOutbound(policy, normalized, opts);
}

/** Include CIDRs of the connection's family: Istio keeps separate v4 and v6 lists. */
function includeCidrs(policy: CapturePolicy, ip: string): '*' | string[] {
  const inc = policy.includeOutboundIPRanges;
  return inc === '*' ? inc : inc.filter((c) => ipFamily(c.split('/')[0]!) === ipFamily(ip));
}

function inIncludeRanges(policy: CapturePolicy, ip: string): boolean {
  const inc = includeCidrs(policy, ip);
  return inc === '*' || inc.some((c) => cidrContains(c, ip));
}

interface OutboundFacts {
  tcp: boolean;
  dport: number;
  local: boolean;
  loop: boolean;
  dns: boolean;
  /** Step 4b/5b are absent when an include CIDR holds a loopback address. */
  keepLoopbackCapture: boolean;
  uid: number | undefined;
  gid: number | undefined;
}

function decideOutbound(policy: CapturePolicy, conn: Connection, opts: DecideOptions): Decision {
  const { ports } = policy;
  const dst = conn.dst.ip;
  const local = isLocalAddress(policy, dst);
  const inc = includeCidrs(policy, dst);
  const f: OutboundFacts = {
    tcp: conn.protocol === 'tcp',
    dport: conn.dst.port,
    local,
    loop: isLoopHost(dst),
    dns: policy.dnsCapture,
    keepLoopbackCapture: inc !== '*' && inc.some(cidrHasLoopback),
    uid: conn.uid,
    gid: conn.gid ?? conn.uid,
  };
  const iface = conn.interface ?? (local ? LOOPBACK_INTERFACE : DEFAULT_INTERFACE);

  // 1. Excluded interface.
  if (policy.excludeInterfaces.includes(iface)) return pass(conn, 'outbound.1', `the route leaves by excluded interface ${iface}`);
  // 2. Excluded port, TCP and UDP.
  if (policy.excludeOutboundPorts.includes(f.dport)) return pass(conn, 'outbound.2', `port ${f.dport} is in excludeOutboundPorts`);
  // 3. The proxy forwarding inbound traffic to the app from the passthrough source.
  const src = conn.src !== undefined ? canonicalIp(conn.src) : null;
  if (local && src !== null && PASSTHROUGH_SOURCES.includes(src)) {
    return pass(conn, 'outbound.3', `source ${src} is the proxy's passthrough address`);
  }
  // 4-5. Proxy identity.
  const owner = opts.istioQuirks ? ownerStepsIstio(policy, conn, f) : ownerStepsSluice(policy, conn, f);
  if (owner) return owner;
  // 6. DNS capture.
  if (f.dns && f.dport === DNS_PORT) return proxied('dns-proxy', ports.dns, conn, 'outbound.6', 'DNS capture is on and the port is 53');
  // 7. Loopback.
  if (f.loop) return pass(conn, 'outbound.7', `${dst} is loopback`);
  // 8. Excluded CIDRs, and Sidecar egress listeners with captureMode NONE.
  const excluded = policy.excludeOutboundIPRanges.find((c) => cidrContains(c, dst));
  if (excluded) return pass(conn, 'outbound.8', `${dst} is in excludeOutboundIPRanges ${excluded}`);
  const bind = policy.excludeOutboundBinds.find((b) => canonicalIp(b.address) === dst && (b.port === null || b.port === f.dport));
  if (bind) return pass(conn, 'outbound.8', `a Sidecar egress listener on ${dst} has captureMode NONE`);
  // 9. Included ports.
  if (f.tcp && policy.includeOutboundPorts.includes(f.dport)) {
    return proxied('outbound-proxy', ports.outbound, conn, 'outbound.9', `port ${f.dport} is in includeOutboundPorts`);
  }
  // 10. Included CIDRs.
  if (f.tcp && inIncludeRanges(policy, dst)) {
    return proxied('outbound-proxy', ports.outbound, conn, 'outbound.10', inc === '*' ? 'all outbound TCP is captured' : `${dst} is in includeOutboundIPRanges`);
  }
  return pass(conn, 'outbound.10', f.tcp ? `${dst} is not in includeOutboundIPRanges` : `${conn.protocol.toUpperCase()} is not captured`);
}

/** Step 4a/5a precondition: the proxy reaching its own pod through a non-LOOP local address. */
function hairpinTarget(f: OutboundFacts, tunnel: number, excludeDns: boolean): boolean {
  return f.tcp && f.local && !f.loop && f.dport !== tunnel && !(excludeDns && f.dns && f.dport === DNS_PORT);
}

/** Step 4b/5b precondition; with DNS on only TCP to a port other than 53 is returned. */
function localReturnTarget(f: OutboundFacts): boolean {
  return !f.keepLoopbackCapture && f.local && (!f.dns || (f.tcp && f.dport !== DNS_PORT));
}

const HAIRPIN_REASON = "the proxy is reaching its own pod's address (hairpin)";

/** Steps 4-5 exactly as istio-iptables writes them: one rule triple per id, in order. */
function ownerStepsIstio(policy: CapturePolicy, conn: Connection, f: OutboundFacts): Decision | null {
  const lists: [string, number[], number | undefined, boolean][] = [
    ['4', policy.proxyUids, f.uid, true],
    ['5', policy.proxyGids, f.gid, false],
  ];
  for (const [step, ids, mine, excludeDns] of lists) {
    for (const id of ids) {
      if (hairpinTarget(f, policy.ports.tunnel, excludeDns) && mine === id) {
        return proxied('inbound-proxy', policy.ports.inbound, conn, `outbound.${step}a`, HAIRPIN_REASON);
      }
      if (localReturnTarget(f) && mine !== id) return pass(conn, `outbound.${step}b`, 'an app connection to a local address goes direct');
      if (mine === id) return pass(conn, `outbound.${step}c`, `the socket belongs to the proxy (${step === '4' ? 'uid' : 'gid'} ${id})`);
    }
  }
  return null;
}

/** Steps 4-5 with Istio's two quirks fixed: ids are matched as sets. */
function ownerStepsSluice(policy: CapturePolicy, conn: Connection, f: OutboundFacts): Decision | null {
  const isUid = f.uid !== undefined && policy.proxyUids.includes(f.uid);
  const isGid = f.gid !== undefined && policy.proxyGids.includes(f.gid);
  if (isUid && hairpinTarget(f, policy.ports.tunnel, true)) return proxied('inbound-proxy', policy.ports.inbound, conn, 'outbound.4a', HAIRPIN_REASON);
  if (!isUid && !isGid && localReturnTarget(f)) return pass(conn, 'outbound.4b', 'an app connection to a local address goes direct');
  if (isUid) return pass(conn, 'outbound.4c', `the socket belongs to the proxy (uid ${f.uid})`);
  if (isGid && hairpinTarget(f, policy.ports.tunnel, false)) return proxied('inbound-proxy', policy.ports.inbound, conn, 'outbound.5a', HAIRPIN_REASON);
  if (isGid) return pass(conn, 'outbound.5c', `the socket belongs to the proxy (gid ${f.gid})`);
  return null;
}

function decideInbound(policy: CapturePolicy, conn: Connection): Decision {
  const iface = conn.interface ?? DEFAULT_INTERFACE;
  const tcp = conn.protocol === 'tcp';
  const dport = conn.dst.port;
  // 1. Reroute (kubevirt) interfaces send VM traffic through the outbound listener.
  if (policy.rerouteInterfaces.includes(iface)) {
    if (tcp && inIncludeRanges(policy, conn.dst.ip)) {
      return proxied('outbound-proxy', policy.ports.outbound, conn, 'inbound.1', `${iface} is a reroute interface`);
    }
    return pass(conn, 'inbound.1', `${iface} is a reroute interface and the destination is not captured`);
  }
  // 2. Excluded interface.
  if (policy.excludeInterfaces.includes(iface)) return pass(conn, 'inbound.2', `arrives on excluded interface ${iface}`);
  // 3. Only TCP, and only when some inbound port is captured.
  const include = policy.includeInboundPorts;
  if (!tcp) return pass(conn, 'inbound.3', `${conn.protocol.toUpperCase()} is not captured inbound`);
  if (include !== '*' && include.length === 0) return pass(conn, 'inbound.3', 'includeInboundPorts is empty: no inbound capture');
  // 4. The tunnel port.
  if (dport === policy.ports.tunnel) return pass(conn, 'inbound.4', `port ${dport} is the tunnel port`);
  // 5. Port lists.
  if (include === '*') {
    if (policy.excludeInboundPorts.includes(dport)) return pass(conn, 'inbound.5', `port ${dport} is in excludeInboundPorts`);
    return proxied('inbound-proxy', policy.ports.inbound, conn, 'inbound.5', 'all inbound ports are captured');
  }
  if (include.includes(dport)) return proxied('inbound-proxy', policy.ports.inbound, conn, 'inbound.5', `port ${dport} is in includeInboundPorts`);
  return pass(conn, 'inbound.5', `port ${dport} is not in includeInboundPorts`);
}
