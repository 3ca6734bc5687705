// End-to-end mesh runs: the workload (src/lab/mesh.ts, two pods with an app and HAProxy
// each) captured by a CaptureBackend. runMeshScenario() runs one backend; the expectation
// for each request comes from decide() (expectMeshPath, in mesh-expect.ts), so every
// backend is held to the spec and two backends can be compared request by request
// (compareMeshRuns).
//
// Sequence, as in a real pod: namespaces, then the apps and proxies start listening, then
// the capture is installed in each pod, then the requests, then uninstall and teardown.
import type { CapturePolicy } from '../../../src/policy/types.js';
import { meshRequests, sendMeshRequest, startMeshWorkloads, type MeshObservation, type MeshRequest, type MeshWorkloads } from '../../../src/lab/mesh.js';
import { createMeshTopology, destroyAllMeshTopologies, MESH_ADDRESSES, POD_NAMES, reapStaleMeshLeftovers, type MeshPod, type MeshTopology, type PodName } from '../../../src/lab/mesh-topology.js';
import type { Identity } from '../../../src/lab/pod-process.js';
import type { CaptureBackend } from './backend.js';
import { makePolicy } from './cases.js';
import { observedView, type MeshPathView } from './mesh-expect.js';
import { reapStaleNamespaces, type Topology } from './topology.js';

export { expectedView, expectMeshPath, observedView, type ExpectedHop, type MeshExpectation, type MeshPathView } from './mesh-expect.js';

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
