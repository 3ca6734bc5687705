// The lab's network topologies, built from one set of steps: namespaces named
// `sluice-test-<pid>-<random>-<role>` (so reapStaleNamespaces() finds a killed run's),
// veths born inside a namespace with their other end moved straight into another, and
// addresses without DAD. Nothing is ever created in the host namespace. mesh-topology.ts
// builds the two-pod mesh from the same steps; this file builds the two-namespace one:
//
//   pod  [lo: 127.0.0.1/8, ::1, ::6]   veth 10.1.0.2/24 fd00::2/64  ── default routes ──┐
//   peer [lo: 10.2.0.5/32 fd00:2::5]   veth 10.1.0.1/24 fd00::1/64  <───────────────────┘
//
// "pod" is the namespace under test; "peer" plays every other machine (the remote service,
// and the client of inbound connections).
import { randomBytes } from 'node:crypto';
import { exec } from './exec.js';
import { deleteNetns, NETNS_PREFIX, waitUsable, type Netns } from './netns.js';
import { tool } from '../system/tools.js';
import { ADDRESSES, VM_ADDRESSES, type Addresses } from './addresses.js';

export { ADDRESSES, VM_ADDRESSES, type Addresses } from './addresses.js';

// ---------------------------------------------------------------------------------------
// The steps

export const ip = (...args: string[]) => exec(tool('ip'), args);

/** A fresh `<pid>-<random>` id; `rand` alone prefixes interface names (15 bytes at most). */
export function labId(): { id: string; rand: string } {
  const rand = randomBytes(3).toString('hex');
  return { id: `${process.pid}-${rand}`, rand };
}

/** Namespace `sluice-test-<id>-<role>` (not created yet); `ifname` is its end of a veth. */
export function labNetns(id: string, role: string, ifname: string): Netns {
  const name = `${NETNS_PREFIX}${id}-${role}`;
  return { name, path: `/var/run/netns/${name}`, ifname };
}

/** Runs `sysctl -qw SETTINGS` inside the namespace. */
export const sysctlIn = (ns: Netns, ...settings: string[]) => exec(tool('ip'), ['netns', 'exec', ns.name, tool('sysctl'), '-qw', ...settings]);

/** Creates the namespace with lo up and DAD off: addresses are usable at once, and link-local is never left tentative. */
export async function addNetns(ns: Netns): Promise<void> {
  await ip('netns', 'add', ns.name);
  await sysctlIn(ns, 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0');
  await ip('-n', ns.name, 'link', 'set', 'lo', 'up');
}

/** A veth born in `ns` as `ifname`, its other end created directly in `other` as `otherIfname`. */
export const addVeth = (ns: Netns, ifname: string, other: Netns, otherIfname: string) => ip('-n', ns.name, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', otherIfname, 'netns', other.name);

/** Adds `ADDR/PREFIX`es to `dev` (IPv6 ones with nodad). */
export async function addAddrs(ns: Netns, dev: string, cidrs: string[]): Promise<void> {
  for (const c of cidrs) await (c.includes(':') ? ip('-n', ns.name, '-6', 'addr', 'add', c, 'dev', dev, 'nodad') : ip('-n', ns.name, 'addr', 'add', c, 'dev', dev));
}

export const linkUp = (ns: Netns, dev: string) => ip('-n', ns.name, 'link', 'set', dev, 'up');

/** Routes `to` (`default` or a prefix) via `via`, for whichever family `via` is. */
export const addRoute = (ns: Netns, to: string, via: string) => (via.includes(':') ? ip('-n', ns.name, '-6', 'route', 'add', to, 'via', via) : ip('-n', ns.name, 'route', 'add', to, 'via', via));

// ---------------------------------------------------------------------------------------
// The two-namespace topology

export interface TopologyOptions {
  /** Name of the pod's veth to the peer inside the pod netns (e.g. eth0). */
  podIfname?: string;
  /**
   * Adds a "vm" netns behind a second pod interface of this name, with the pod forwarding
   * between them (as a KubeVirt pod does), and the peer's extra remotes of VM_ADDRESSES.
   */
  vmIfname?: string;
}

export interface Topology {
  id: string;
  pod: Netns;
  peer: Netns;
  /** Only with TopologyOptions.vmIfname. */
  vm?: Netns;
  addrs: Addresses;
  /** Deletes both namespaces (and so the veth). Idempotent; never throws. */
  destroy(): Promise<void>;
}

const live = new Set<Topology>();

export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const { id, rand } = labId();
  const pod = labNetns(id, 'pod', `st${rand}a`);
  const peer = labNetns(id, 'peer', `st${rand}b`);
  const vm = opts.vmIfname !== undefined ? labNetns(id, 'vm', `st${rand}d`) : undefined;
  let destroyed = false;
  const topo: Topology = {
    id,
    pod,
    peer,
    ...(vm ? { vm } : {}),
    addrs: { ...ADDRESSES },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(topo);
      await Promise.all([pod, peer, ...(vm ? [vm] : [])].map((ns) => deleteNetns(ns.name)));
    },
  };
  live.add(topo);
  try {
    await addNetns(pod);
    await addNetns(peer);
    await addVeth(pod, pod.ifname, peer, peer.ifname);
    if (opts.podIfname !== undefined) {
      await ip('-n', pod.name, 'link', 'set', pod.ifname, 'name', opts.podIfname);
      pod.ifname = opts.podIfname;
    }
    const a = ADDRESSES;
    await addAddrs(pod, pod.ifname, [`${a.pod4}/24`, `${a.pod6}/64`]);
    // Istio's IPv6 passthrough source must exist on the pod's lo (istio-iptables adds it).
    await addAddrs(pod, 'lo', ['::6/128']);
    await addAddrs(peer, peer.ifname, [`${a.peer4}/24`, `${a.peer6}/64`]);
    await addAddrs(peer, 'lo', [`${a.remote4}/32`, `${a.remote6}/128`]);
    await linkUp(pod, pod.ifname);
    await linkUp(peer, peer.ifname);
    await addRoute(pod, 'default', a.peer4);
    await addRoute(pod, 'default', a.peer6);
    if (vm) await addVm(pod, peer, vm, opts.vmIfname!);
    await waitUsable(pod, [a.pod4, a.pod6, '::6', ...(vm ? [VM_ADDRESSES.route6] : [])]);
    await waitUsable(peer, [a.peer4, a.peer6, a.remote4, a.remote6, ...(vm ? [VM_ADDRESSES.other6] : [])]);
    if (vm) await waitUsable(vm, [VM_ADDRESSES.vm4, VM_ADDRESSES.vm6]);
    return topo;
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

/** The VM netns behind pod interface `ifname`; the pod routes between it and the peer. */
async function addVm(pod: Netns, peer: Netns, vm: Netns, ifname: string): Promise<void> {
  const v = VM_ADDRESSES;
  const podEnd = `${vm.ifname.slice(0, -1)}c`;
  await addNetns(vm);
  await addVeth(pod, podEnd, vm, vm.ifname);
  await ip('-n', pod.name, 'link', 'set', podEnd, 'name', ifname);
  await addAddrs(pod, ifname, [`${v.route4}/24`, `${v.route6}/64`]);
  await addAddrs(vm, vm.ifname, [`${v.vm4}/24`, `${v.vm6}/64`]);
  await linkUp(pod, ifname);
  await linkUp(vm, vm.ifname);
  await addRoute(vm, 'default', v.route4);
  await addRoute(vm, 'default', v.route6);
  // Forwarding inside the pod netns only, as a KubeVirt pod's bridge/masquerade setup has it.
  await sysctlIn(pod, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
  await addRoute(peer, '10.3.0.0/24', ADDRESSES.pod4);
  await addRoute(peer, 'fd00:3::/64', ADDRESSES.pod6);
  await addAddrs(peer, 'lo', [`${v.other4}/32`, `${v.other6}/128`]);
}

/** Destroys every topology this process created and has not destroyed yet. */
export async function destroyAllTopologies(): Promise<void> {
  await Promise.all([...live].map((t) => t.destroy()));
}
