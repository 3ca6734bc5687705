// What one connection did (an Observation, measured) and what the spec says it should do
// (expectedObservation, derived from decide()). Both have the same shape, so a test is a
// deepEqual, and two backends are compared the same way.
import { cidrContains, formatEndpoint, ipFamily } from '../../../src/policy/net.js';
import type { CapturePolicy, Decision } from '../../../src/policy/types.js';
import type { OracleCase } from './cases.js';
import type { ProbeResult } from './probe.js';
import { ADDRESSES } from './topology.js';

export interface Observation {
  /** `pod:PORT` or `peer:PORT`: the listener that accepted the connection. */
  listener: string;
  /**
   * SO_ORIGINAL_DST on the accepted socket. null for UDP (there is no such answer) and for
   * listeners on the peer (the peer netns runs no conntrack, so it is not compared).
   */
  origDst: string | null;
  /** The source address (IP only) the listener saw. */
  peerSeen: string;
  /** getpeername() on the client's own socket, `IP:PORT`. */
  clientPeer: string;
  /** UDP: the source of the reply as the client received it. */
  replyFrom?: string;
  /** Only when the probe failed: what went wrong. An expectation never has it. */
  error?: string;
}

function ipOf(endpoint: string): string {
  const m = /^\[(.*)\]:\d+$/.exec(endpoint) ?? /^(.*):\d+$/.exec(endpoint);
  return m ? m[1]! : endpoint;
}

export function observationOf(result: ProbeResult): Observation {
  if (!result.ok) return { listener: 'none', origDst: null, peerSeen: '', clientPeer: '', error: `${result.error} (errno ${result.errno})` };
  const s = result.server;
  const obs: Observation = {
    listener: `${s.server}:${s.port}`,
    origDst: s.server === 'peer' || s.server === 'vm' ? null : s.origDst,
    peerSeen: ipOf(s.peer),
    clientPeer: result.clientPeer,
  };
  if (result.replyFrom !== undefined) obs.replyFrom = result.replyFrom;
  return obs;
}

/** Addresses that belong to the pod netns: its IPs, 127.0.0.0/8, ::1 and ::6. */
export function isPodLocal(policy: CapturePolicy, ip: string): boolean {
  return policy.podIPs.includes(ip) || cidrContains('127.0.0.0/8', ip) || ip === '::1' || ip === '::6';
}

/** The source the kernel picks for a socket with no bound source. */
function kernelSource(policy: CapturePolicy, dst: string): string {
  const v6 = ipFamily(dst) === 6;
  if (isPodLocal(policy, dst)) {
    // IPv4 local routes carry a preferred source: 127.0.0.0/8 has src 127.0.0.1, and a pod
    // IP's local route has the pod IP itself. IPv6 source selection (RFC 6724 rule 1)
    // prefers the destination itself when it is one of our own addresses.
    if (!v6 && cidrContains('127.0.0.0/8', dst)) return '127.0.0.1';
    return dst;
  }
  // Remote: the pod's address of that family, the source of its default route.
  return v6 ? ADDRESSES.pod6 : ADDRESSES.pod4;
}

/** What capture-spec.md says each Observation field must be, given decide()'s decision. */
export function expectedObservation(policy: CapturePolicy, c: OracleCase, decision: Decision): Observation {
  const { conn } = c;
  const dst = formatEndpoint(conn.dst);
  const udp = conn.protocol === 'udp';
  const onPod = decision.outcome !== 'pass' || isPodLocal(policy, conn.dst.ip);
  let origDst: string | null;
  if (udp || !onPod) origDst = null;
  else if (decision.outcome !== 'pass') origDst = decision.originalDestination;
  else origDst = dst; // conntrack's answer for an untranslated connection: its own local address
  const peerSeen = conn.src ?? kernelSource(policy, conn.dst.ip);
  const obs: Observation = { listener: `${onPod ? 'pod' : 'peer'}:${decision.port}`, origDst, peerSeen, clientPeer: dst };
  // REDIRECT's reverse NAT must make a captured reply come from the original destination.
  if (udp) obs.replyFrom = dst;
  return obs;
}
