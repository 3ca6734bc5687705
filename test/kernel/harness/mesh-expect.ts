// What the spec says a mesh request does, and the view two runs are compared by.
// expectMeshPath() walks a request through decide() hop by hop; observedView() and
// expectedView() reduce an observation and an expectation to the same shape, the fields
// the spec fixes, so a backend is held to the spec and two backends to each other.
import { decide, isLocalAddress } from '../../../src/policy/decide.js';
import { cidrContains, formatEndpoint, ipFamily } from '../../../src/policy/net.js';
import type { CapturePolicy, Connection, DecideOptions } from '../../../src/policy/types.js';
import { ipOf, MESH_PROXY, PASSTHROUGH, type MeshObservation, type MeshRequest } from '../../../src/lab/mesh.js';
import { MESH_ADDRESSES, POD_NAMES, type PodName } from '../../../src/lab/mesh-topology.js';

// ---------------------------------------------------------------------------------------
// Expectations: the path the spec gives a request, hop by hop, from decide()

export interface ExpectedHop {
  pod: PodName;
  listener: 'outbound' | 'inbound';
  port: number;
  /** The source address the listener sees. */
  peer: string;
  /** What the proxy must learn as the original destination, and so connect to. */
  originalDst: string;
  /** The source the proxy's own upstream connection uses ('' when the proxy answers itself: a loop). */
  forwardedFrom: string;
  /** Where the proxy connects: the original destination ('' when it answers a loop itself). */
  forwardedTo: string;
  /** The spec step that sent the connection to this listener. */
  step: string;
}

export interface MeshExpectation {
  hops: ExpectedHop[];
  /** The app that answers: its pod, the peer IP it sees, and its local endpoint. */
  app: { pod: PodName; peer: string; local: string } | null;
  /** A capture loop (the same listener twice): HAProxy answers 508. */
  loop: boolean;
  /** decide() steps, for messages. */
  trace: string[];
}

const PODS_BY_IP = new Map<string, PodName>(POD_NAMES.flatMap((p) => [[MESH_ADDRESSES[p].v4, p] as const, [MESH_ADDRESSES[p].v6, p] as const]));

/** The source the kernel picks for an unbound socket in `policy`'s pod connecting to `dst`. */
function kernelSource(pod: PodName, policy: CapturePolicy, dst: string): string {
  const v6 = ipFamily(dst) === 6;
  if (isLocalAddress(policy, dst)) {
    // 127.0.0.0/8's local route has src 127.0.0.1; a pod IP's local route has the pod IP;
    // IPv6 source selection prefers the destination itself when it is one of ours.
    return !v6 && cidrContains('127.0.0.0/8', dst) ? '127.0.0.1' : dst;
  }
  return v6 ? MESH_ADDRESSES[pod].v6 : MESH_ADDRESSES[pod].v4;
}

/**
 * Walks a request through the mesh with decide(): each outbound connection in its pod, then
 * inbound at the pod that owns the destination. A proxy hop continues as the proxy's own
 * connection (uid/gid 1337; from the passthrough source after the inbound listener).
 */
export function expectMeshPath(policies: Record<PodName, CapturePolicy>, r: MeshRequest, opts: DecideOptions = {}, ifnames?: Record<PodName, string>): MeshExpectation {
  const hops: ExpectedHop[] = [];
  const trace: string[] = [];
  let pod = r.from;
  let who = r.who;
  let src: string | undefined;
  const dst = r.to;
  const orig = formatEndpoint(dst);
  const family = ipFamily(dst.ip) as 4 | 6;
  const seen = new Set<string>();
  // Adds a hop; false when it repeats one (a loop: HAProxy answers 508 there, forwarding nothing).
  const hop = (h: Omit<ExpectedHop, 'forwardedFrom' | 'forwardedTo'>): boolean => {
    const key = `${h.pod}/${h.listener}`;
    if (seen.has(key)) {
      hops.push({ ...h, forwardedFrom: '', forwardedTo: '' });
      return false;
    }
    seen.add(key);
    const forwardedFrom = h.listener === 'inbound' ? PASSTHROUGH[family] : kernelSource(h.pod, policies[h.pod], dst.ip);
    hops.push({ ...h, forwardedFrom, forwardedTo: h.originalDst });
    return true;
  };
  for (;;) {
    const policy = policies[pod];
    const local = isLocalAddress(policy, dst.ip);
    const out: Connection = { direction: 'outbound', protocol: 'tcp', dst, uid: who.uid, gid: who.gid, ...(src !== undefined ? { src } : {}) };
    if (!local && ifnames) out.interface = ifnames[pod];
    const d = decide(policy, out, opts);
    trace.push(`${pod} outbound uid ${who.uid}${src ? ` src ${src}` : ''} → ${orig}: ${d.outcome} (${d.step})`);
    const peer = src ?? kernelSource(pod, policy, dst.ip);
    if (d.outcome === 'outbound-proxy' || d.outcome === 'inbound-proxy') {
      const listener = d.outcome === 'outbound-proxy' ? 'outbound' : 'inbound';
      if (!hop({ pod, listener, port: d.port, peer, originalDst: orig, step: d.step })) return { hops, app: null, loop: true, trace };
      who = MESH_PROXY;
      src = listener === 'inbound' ? PASSTHROUGH[family] : undefined;
      continue;
    }
    if (d.outcome === 'dns-proxy') throw new Error(`expectMeshPath: ${r.id} would be sent to the DNS proxy, which the mesh does not run`);
    if (local) return { hops, app: { pod, peer, local: orig }, loop: false, trace };
    const target = PODS_BY_IP.get(dst.ip);
    if (!target) throw new Error(`expectMeshPath: ${dst.ip} is neither local to pod ${pod} nor a mesh pod's address`);
    const inb: Connection = { direction: 'inbound', protocol: 'tcp', dst, src: peer, ...(ifnames ? { interface: ifnames[target] } : {}) };
    const di = decide(policies[target], inb, opts);
    trace.push(`${target} inbound from ${peer} → ${orig}: ${di.outcome} (${di.step})`);
    if (di.outcome === 'pass') return { hops, app: { pod: target, peer, local: orig }, loop: false, trace };
    const listener = di.outcome === 'outbound-proxy' ? 'outbound' : 'inbound';
    if (!hop({ pod: target, listener, port: di.port, peer, originalDst: orig, step: di.step })) return { hops, app: null, loop: true, trace };
    pod = target;
    who = MESH_PROXY;
    src = listener === 'inbound' ? PASSTHROUGH[family] : undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Views: the fields the spec fixes, in one shape for observations and expectations

/**
 * What must hold for a request, whatever the backend. For IPv4 hops `originalDst` is
 * HAProxy's SO_ORIGINAL_DST answer; for IPv6 hops it is absent (HAProxy cannot ask), and
 * `forwardedTo` (where HAProxy really went) is all there is. Ports the kernel chooses
 * (ephemeral ports) are left out.
 */
export interface MeshPathView {
  ok: boolean;
  error?: string;
  hops: { pod: string; listener: string; port: number; peer: string; originalDst?: string; forwardedFrom: string; forwardedTo: string }[];
  app: { pod: string; peer: string; local: string; path: string; via: string[] } | null;
  clientPeer: string;
}

export function observedView(o: MeshObservation): MeshPathView {
  const view: MeshPathView = {
    ok: o.ok,
    hops: o.hops.map((h) => ({
      pod: h.pod,
      listener: h.listener,
      port: h.port,
      peer: h.peer,
      ...(h.family === 4 ? { originalDst: h.kernelDst } : {}),
      forwardedFrom: h.forwardedFrom,
      forwardedTo: h.forwardedTo,
    })),
    app: o.app ? { pod: o.app.pod, peer: ipOf(o.app.peer), local: o.app.local, path: o.app.path, via: o.app.via } : null,
    clientPeer: o.clientPeer,
  };
  if (o.error !== undefined) view.error = o.error;
  return view;
}

export function expectedView(r: MeshRequest, e: MeshExpectation): MeshPathView {
  const v4 = ipFamily(r.to.ip) === 4;
  const hops = e.hops.map((h) => ({
    pod: h.pod,
    listener: h.listener,
    port: h.port,
    peer: h.peer,
    ...(v4 ? { originalDst: h.originalDst } : {}),
    forwardedFrom: h.forwardedFrom,
    forwardedTo: h.forwardedTo,
  }));
  if (e.loop) {
    const last = e.hops[e.hops.length - 1]!;
    return { ok: false, error: `HTTP 508: loop at ${last.pod}/${last.listener}`, hops, app: null, clientPeer: formatEndpoint(r.to) };
  }
  return {
    ok: true,
    hops,
    app: e.app ? { ...e.app, path: `/${r.id}`, via: e.hops.map((h) => `${h.pod}/${h.listener}`) } : null,
    clientPeer: formatEndpoint(r.to),
  };
}
