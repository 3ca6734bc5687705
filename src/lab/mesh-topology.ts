// The mesh topology: two pods on one node, each in its own network namespace, joined by a
// bridge in a third "node" namespace, plus a private cgroup and a scratch directory for
// the processes that run in the pods.
//
//   pod a [lo: ::6]  veth 10.1.0.2/24 fd00::2/64 ──┐
//                                                  ├── node [bridge 10.1.0.1/24 fd00::1/64]
//   pod b [lo: ::6]  veth 10.1.0.3/24 fd00::3/64 ──┘
//
// Built with the steps of topology.ts, so nothing is created in the host namespace and
// every name is one reapStaleNamespaces() (netns.ts) knows. The cgroup is a child of the
// cgroup2 root: nothing is attached to the root itself. It exists so that a backend whose
// programs attach to a cgroup (eBPF) sees every socket of the mesh.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroup2Mount } from '../bpf/system.js';
import { MESH_ADDRESSES, type PodAddresses, type PodName } from './addresses.js';
import { exec } from './exec.js';
import { destroyCgroup } from './cgroup.js';
import { deleteNetns, NETNS_PREFIX, pidAlive, waitUsable, type Netns } from './netns.js';
import { addAddrs, addNetns, addRoute, addVeth, ip, labId, labNetns, linkUp } from './topology.js';

export { MESH_ADDRESSES, POD_NAMES, type PodAddresses, type PodName } from './addresses.js';

export interface MeshPod {
  name: PodName;
  netns: Netns;
  addrs: PodAddresses;
}

export interface MeshTopology {
  /** `<pid>-<random>`: part of every name this topology owns. */
  id: string;
  pods: Record<PodName, MeshPod>;
  node: Netns & { bridge: string };
  /** A private cgroup2 directory: every process the mesh starts runs in it. */
  cgroupDir: string;
  /** Scratch directory (mode 0755) for configs and fixture copies, readable by uid 1000/1337. */
  workDir: string;
  /** Kills everything in the cgroup and the namespaces, deletes them and the work dir. Idempotent; never throws. */
  destroy(): Promise<void>;
}

const live = new Set<MeshTopology>();

/** The cgroup2 mount, or a clear error: the mesh puts its processes in a child cgroup. */
export function cgroup2Root(): string {
  const root = findCgroup2Mount();
  if (!root) throw new Error('the mesh needs a cgroup2 mount (none in /proc/mounts)');
  return root;
}

export async function createMeshTopology(): Promise<MeshTopology> {
  const { id, rand } = labId();
  const pods: Record<PodName, MeshPod> = {
    a: { name: 'a', netns: labNetns(id, 'a', `st${rand}a`), addrs: { ...MESH_ADDRESSES.a } },
    b: { name: 'b', netns: labNetns(id, 'b', `st${rand}b`), addrs: { ...MESH_ADDRESSES.b } },
  };
  const node = { ...labNetns(id, 'node', `st${rand}br`), bridge: `st${rand}br` };
  let cgroupDir = '';
  let workDir = '';
  let destroyed = false;
  const topo: MeshTopology = {
    id,
    pods,
    node,
    get cgroupDir() {
      return cgroupDir;
    },
    get workDir() {
      return workDir;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(topo);
      if (cgroupDir) await destroyCgroup(cgroupDir);
      await Promise.all([pods.a.netns.name, pods.b.netns.name, node.name].map((n) => deleteNetns(n)));
      if (workDir) rmSync(workDir, { recursive: true, force: true });
    },
  };
  live.add(topo);
  try {
    cgroupDir = join(cgroup2Root(), `${NETNS_PREFIX}${id}-mesh`);
    mkdirSync(cgroupDir);
    workDir = mkdtempSync(join(tmpdir(), `${NETNS_PREFIX}${id}-`));
    // mkdtemp makes it 0700; uid 1000 (the apps) and 1337 (HAProxy) must read it.
    await exec('chmod', ['0755', workDir]);

    for (const n of [pods.a.netns, pods.b.netns, node]) await addNetns(n);
    await ip('-n', node.name, 'link', 'add', node.bridge, 'type', 'bridge');
    await addAddrs(node, node.bridge, [`${MESH_ADDRESSES.node.v4}/24`, `${MESH_ADDRESSES.node.v6}/64`]);
    await linkUp(node, node.bridge);
    for (const pod of Object.values(pods)) {
      const nodeEnd = `st${rand}n${pod.name}`;
      await addVeth(pod.netns, pod.netns.ifname, node, nodeEnd);
      await ip('-n', node.name, 'link', 'set', nodeEnd, 'master', node.bridge);
      await linkUp(node, nodeEnd);
      await addAddrs(pod.netns, pod.netns.ifname, [`${pod.addrs.v4}/24`, `${pod.addrs.v6}/64`]);
      // The IPv6 passthrough source must exist on lo (istio-iptables adds it, and so must we).
      await addAddrs(pod.netns, 'lo', ['::6/128']);
      await linkUp(pod.netns, pod.netns.ifname);
      // Default routes via the node, as on a real node (both pods share the /24 anyway).
      await addRoute(pod.netns, 'default', MESH_ADDRESSES.node.v4);
      await addRoute(pod.netns, 'default', MESH_ADDRESSES.node.v6);
    }
    await waitUsable(pods.a.netns, [pods.a.addrs.v4, pods.a.addrs.v6, '::6']);
    await waitUsable(pods.b.netns, [pods.b.addrs.v4, pods.b.addrs.v6, '::6']);
    await waitUsable(node, [MESH_ADDRESSES.node.v4, MESH_ADDRESSES.node.v6]);
    return topo;
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

/** Destroys every mesh this process created and has not destroyed yet. */
export async function destroyAllMeshTopologies(): Promise<void> {
  await Promise.all([...live].map((m) => m.destroy()));
}

/**
 * Removes what a killed run left: `sluice-test-<pid>-*` cgroups (with their processes) and
 * scratch directories of dead pids. Namespaces are reaped by reapStaleNamespaces().
 */
export async function reapStaleMeshLeftovers(): Promise<string[]> {
  const reaped: string[] = [];
  const stale = (name: string) => {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  const root = findCgroup2Mount();
  if (root) {
    for (const name of readdirSync(root).filter((n) => stale(n) && n.endsWith('-mesh'))) {
      await destroyCgroup(join(root, name));
      reaped.push(join(root, name));
    }
  }
  for (const name of readdirSync(tmpdir()).filter(stale)) {
    const p = join(tmpdir(), name);
    if (statSync(p).isDirectory()) {
      rmSync(p, { recursive: true, force: true });
      reaped.push(p);
    }
  }
  return reaped;
}
