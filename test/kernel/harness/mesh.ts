// End-to-end mesh expectations: the workload (src/lab/mesh.ts, two pods with an app and
// HAProxy each) captured by a CaptureBackend. runMeshScenario() runs one backend; the
// expectation for each request comes from decide() (expectMeshPath), so every backend is
// held to the spec and two backends can be compared request by request (compareMeshRuns).
//
// Sequence, as in a real pod: namespaces, then the apps and proxies start listening, then
// the capture is installed in each pod, then the requests, then uninstall and teardown.
import { decide, isLocalAddress } from '../../../src/policy/decide.js';
import { cidrContains, formatEndpoint, ipFamily } from '../../../src/policy/net.js';
import type { CapturePolicy, Connection, DecideOptions } from '../../../src/policy/types.js';
import {
  ipOf,
  MESH_PROXY,
  meshRequests,
  PASSTHROUGH,
  sendMeshRequest,
  startMeshWorkloads,
  type MeshObservation,
  type MeshRequest,
  type MeshWorkloads,
} from '../../../src/lab/mesh.js';
import { createMeshTopology, destroyAllMeshTopologies, MESH_ADDRESSES, POD_NAMES, reapStaleMeshLeftovers, type MeshPod, type MeshTopology, type PodName } from '../../../src/lab/mesh-topology.js';
import type { Identity } from '../../../src/lab/pod-process.js';
import type { CaptureBackend } from './backend.js';
import { makePolicy } from './cases.js';
import { reapStaleNamespaces, type Topology } from './topology.js';

export {
  describePath,
  MESH_APP,
  MESH_APP_PORT,
  MESH_PROXY,
  meshRequests,
  meshRequirementsMissing,
  parseHop,
  requestUrl,
  type MeshHop,
  type MeshObservation,
  type MeshRequest,
} from '../../../src/lab/mesh.js';

/**
 * A pod of the mesh, shaped as the Topology that CaptureBackend.install() takes: `pod` is
 * the pod's namespace, `peer` the node namespace. `mesh` carries what a node-scoped backend
 * (eBPF) needs beyond that: the cgroup every mesh process runs in, and the other pod.
 */
export interface MeshPodTopology extends Topology {
  mesh: { id: string; pod: PodName; cgroupDir: string; pods: Record<PodName, MeshPod> };
}

/** The Topology a CaptureBackend installs into, for one pod of the mesh. */
export function podTopology(mesh: MeshTopology, name: PodName): MeshPodTopology {
  const pod = mesh.pods[name];
  const other = mesh.pods[name === 'a' ? 'b' : 'a'];
  return {
    id: `${mesh.id}-${name}`,
    pod: pod.netns,
    peer: mesh.node,
    addrs: {
      pod4: pod.addrs.v4,
      pod6: pod.addrs.v6,
      peer4: MESH_ADDRESSES.node.v4,
      peer6: MESH_ADDRESSES.node.v6,
      remote4: other.addrs.v4,
      remote6: other.addrs.v6,
    },
    // The mesh owns the namespaces: runMeshScenario destroys them after uninstall.
    destroy: async () => {},
    mesh: { id: mesh.id, pod: name, cgroupDir: mesh.cgroupDir, pods: mesh.pods },
  };
}

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

// ---------------------------------------------------------------------------------------
// The scenario

/** A mesh test policy for one pod: makePolicy()'s defaults with that pod's name and IPs. */
export function meshPolicy(pod: PodName, overrides: Partial<CapturePolicy> = {}): CapturePolicy {
  return makePolicy({ pod: { namespace: 'default', name: pod }, podIPs: [MESH_ADDRESSES[pod].v4, MESH_ADDRESSES[pod].v6], ...overrides });
}

export interface MeshScenarioOptions {
  requests?: MeshRequest[];
  /** Per-request timeout of the client. */
  clientTimeoutMs?: number;
}

export interface MeshRun {
  backend: string;
  meshId: string;
  policies: Record<PodName, CapturePolicy>;
  requests: MeshRequest[];
  observations: Record<string, MeshObservation>;
  /** The interface names of the pods (for policies and expectations that name them). */
  ifnames: Record<PodName, string>;
  /** Measured identities of the long-running processes, and HAProxy's log per pod. */
  proxies: Record<PodName, Identity & { log: string }>;
  apps: Record<PodName, Identity>;
}

function checkPolicy(pod: PodName, policy: CapturePolicy): void {
  const want = [MESH_ADDRESSES[pod].v4, MESH_ADDRESSES[pod].v6];
  const lacking = want.filter((ip) => !policy.podIPs.includes(ip));
  if (lacking.length) throw new Error(`runMeshScenario: the policy for pod ${pod} must list its pod IPs ${want.join(', ')} (missing ${lacking.join(', ')}): use meshPolicy('${pod}')`);
}

/**
 * Runs every request through a fresh mesh captured by `backend` (policyA in pod a, policyB
 * in pod b) and returns what each one did. Everything is torn down before it returns or
 * throws. The backend's install() gets a MeshPodTopology per pod (install(a), then b).
 */
export async function runMeshScenario(backend: CaptureBackend, policyA: CapturePolicy, policyB: CapturePolicy, opts: MeshScenarioOptions = {}): Promise<MeshRun> {
  checkPolicy('a', policyA);
  checkPolicy('b', policyB);
  const policies: Record<PodName, CapturePolicy> = { a: policyA, b: policyB };
  const requests = opts.requests ?? meshRequests();
  const ids = new Set(requests.map((r) => r.id));
  if (ids.size !== requests.length) throw new Error('runMeshScenario: request ids must be unique');

  const mesh = await createMeshTopology();
  let workloads: MeshWorkloads | null = null;
  const installed: PodName[] = [];
  let failed = true;
  try {
    // Listeners first, as in a running pod: the apps, then the proxies.
    workloads = await startMeshWorkloads(mesh, { a: policies.a.ports, b: policies.b.ports });
    const w = workloads;

    // Then the capture.
    for (const pod of POD_NAMES) {
      installed.push(pod);
      await backend.install(podTopology(mesh, pod), policies[pod], { cgroupPath: mesh.cgroupDir });
    }

    const observations: Record<string, MeshObservation> = {};
    const timeout = opts.clientTimeoutMs ?? 3000;
    for (const r of requests) observations[r.id] = await sendMeshRequest(w, r, timeout);
    const proxies = {} as Record<PodName, Identity & { log: string }>;
    for (const pod of POD_NAMES) proxies[pod] = { ...w.proxies[pod], log: w.haproxies[pod].output() };
    failed = false;
    return {
      backend: backend.name,
      meshId: mesh.id,
      policies,
      requests,
      observations,
      ifnames: { a: mesh.pods.a.netns.ifname, b: mesh.pods.b.netns.ifname },
      proxies,
      apps: w.apps,
    };
  } finally {
    const errors: unknown[] = [];
    for (const pod of installed.reverse()) {
      try {
        await backend.uninstall(podTopology(mesh, pod), { cgroupPath: mesh.cgroupDir });
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all((workloads?.processes ?? []).map((p) => p.stop()));
    await mesh.destroy();
    // An uninstall failure is a test failure, but only after everything is cleaned up,
    // and never in place of the error that is already on its way out.
    if (errors.length && !failed) throw new Error(`${backend.name} uninstall failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
}

export interface MeshDifference {
  id: string;
  a: MeshPathView | undefined;
  b: MeshPathView | undefined;
}

/** Requests whose spec-relevant view differs between two runs (e.g. iptables and eBPF). */
export function compareMeshRuns(a: MeshRun, b: MeshRun): MeshDifference[] {
  const ids = new Set([...Object.keys(a.observations), ...Object.keys(b.observations)]);
  const diffs: MeshDifference[] = [];
  for (const id of ids) {
    const va = a.observations[id] && observedView(a.observations[id]!);
    const vb = b.observations[id] && observedView(b.observations[id]!);
    if (JSON.stringify(va) !== JSON.stringify(vb)) diffs.push({ id, a: va, b: vb });
  }
  return diffs;
}

/** Reaps leftovers of killed runs: namespaces, mesh cgroups and scratch directories. */
export async function reapStaleMeshes(): Promise<string[]> {
  return [...(await reapStaleNamespaces()), ...(await reapStaleMeshLeftovers())];
}

/** For test.after.always: destroys every mesh (and so every process) this process started. */
export async function cleanupAllMeshes(): Promise<void> {
  await destroyAllMeshTopologies();
}

export { MESH_ADDRESSES };
export type { MeshTopology, PodName };
