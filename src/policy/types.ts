// The capture policy and decision types: the spec (capture-spec.md) as data.
// Everything here is plain JSON so it can be served, logged and encoded into maps.

export type Family = 4 | 6;
export type Protocol = 'tcp' | 'udp';
export type Direction = 'outbound' | 'inbound';

export interface PodRef {
  namespace: string;
  name: string;
}

export interface CapturePorts {
  /** P_OUT: the proxy's outbound listener. */
  outbound: number;
  /** P_IN: the proxy's inbound listener. */
  inbound: number;
  /** P_TUN: the HBONE tunnel port, never captured. */
  tunnel: number;
  /** P_DNS: the agent's DNS listener. */
  dns: number;
}

/** A Sidecar `egress[]` listener with `captureMode: NONE` and a non-local bind. */
export interface BindExclusion {
  address: string;
  /** null: every port of that address. */
  port: number | null;
}

export interface CapturePolicy {
  pod: PodRef;
  /** The pod's own addresses, IPv4 and IPv6, from status.podIPs. */
  podIPs: string[];
  proxyUids: number[];
  proxyGids: number[];
  ports: CapturePorts;
  /** '*' or canonical CIDRs (an empty list captures no CIDR). */
  includeOutboundIPRanges: '*' | string[];
  excludeOutboundIPRanges: string[];
  includeOutboundPorts: number[];
  excludeOutboundPorts: number[];
  /** '*' or a list (an empty list means no inbound capture). */
  includeInboundPorts: '*' | number[];
  /** Always holds 15090, 15021 and the status port (unless 0). */
  excludeInboundPorts: number[];
  excludeInterfaces: string[];
  rerouteInterfaces: string[];
  excludeOutboundBinds: BindExclusion[];
  dnsCapture: boolean;
  /**
   * Set only for `sidecar.istio.io/interceptionMode: TPROXY`: captured exactly as REDIRECT
   * (sluice's inbound never NATs, so the proxy keeps the original addresses, as under
   * TPROXY). NONE is never a policy: the pod is uncaptured.
   */
  interceptionMode?: 'TPROXY';
  /** `namespace/name` of the Sidecar that fed this policy, or null. */
  sidecar: string | null;
}

export interface Endpoint {
  ip: string;
  port: number;
}

export interface Connection {
  direction: Direction;
  protocol: Protocol;
  dst: Endpoint;
  /** Source address. Outbound: the bound source, if any. Inbound: the remote peer. */
  src?: string;
  /** Outbound only: the credentials the socket was created with. */
  uid?: number;
  gid?: number;
  /** Outbound: the interface the route leaves by. Inbound: the arrival interface. */
  interface?: string;
}

export type Outcome = 'outbound-proxy' | 'inbound-proxy' | 'dns-proxy' | 'pass';

export interface Decision {
  outcome: Outcome;
  /** The port whose listener accepts the connection. */
  port: number;
  /** `IP:PORT` or `[IPv6]:PORT` the proxy reads back, or null on pass. */
  originalDestination: string | null;
  /** The spec step that decided, e.g. `outbound.4a`. */
  step: string;
  reason: string;
}

export interface DecideOptions {
  /**
   * Reproduce istio-iptables exactly, quirks included (used as the iptables oracle).
   * Off (sluice's behaviour): every proxy uid gets the hairpin, and a socket whose gid
   * is a proxy gid is not returned early for local destinations. See README.
   */
  istioQuirks?: boolean;
}

export const DEFAULT_PORTS: CapturePorts = Object.freeze({
  outbound: 15001,
  inbound: 15006,
  tunnel: 15008,
  dns: 15053,
});

export const DEFAULT_PROXY_UID = 1337;
export const DEFAULT_STATUS_PORT = 15020;
/** Always excluded inbound: Prometheus merge port and health port. */
export const ALWAYS_EXCLUDED_INBOUND_PORTS: readonly number[] = Object.freeze([15090, 15021]);
export const PASSTHROUGH_SOURCES: readonly string[] = Object.freeze(['127.0.0.6', '::6']);
export const DNS_PORT = 53;
