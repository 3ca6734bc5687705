// Two network namespaces joined by a veth: the "pod" under test and a "peer" that plays
// every other machine (the remote service, and the client of inbound connections).
//
//   pod  [lo: 127.0.0.1/8, ::1, ::6]   veth 10.1.0.2/24 fd00::2/64  ── default routes ──┐
//   peer [lo: 10.2.0.5/32 fd00:2::5]   veth 10.1.0.1/24 fd00::1/64  <───────────────────┘
//
// Nothing is created in the host namespace: the veth is born inside the pod netns with
// its other end in the peer netns, and every name starts with `sluice-test-`.
import { randomBytes } from 'node:crypto';
import { exec } from '../../../src/lab/exec.js';
import { deleteNetns, NETNS_PREFIX, waitUsable, type Netns } from '../../../src/lab/netns.js';
import { tool } from '../../../src/system/tools.js';
import { ADDRESSES, type Addresses } from '../../support/addresses.js';

export { deleteNetns, NETNS_PREFIX, pidAlive, reapStaleNamespaces, waitUsable, type Netns } from '../../../src/lab/netns.js';
export { ADDRESSES, type Addresses } from '../../support/addresses.js';

/** The VM behind a second pod interface (reroute/KubeVirt goldens), and remotes outside 10/8. */
export const VM_ADDRESSES = Object.freeze({
  route4: '10.3.0.1',
  route6: 'fd00:3::1',
  vm4: '10.3.0.2',
  vm6: 'fd00:3::2',
  other4: '192.0.2.5',
  other6: '2001:db8::5',
});

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

const ip = (...args: string[]) => exec(tool('ip'), args);

function netns(name: string, ifname: string): Netns {
  return { name, path: `/var/run/netns/${name}`, ifname };
}

export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const rand = randomBytes(3).toString('hex');
  const id = `${process.pid}-${rand}`;
  const pod = netns(`${NETNS_PREFIX}${id}-pod`, `st${rand}a`);
  const peer = netns(`${NETNS_PREFIX}${id}-peer`, `st${rand}b`);
  const vm = opts.vmIfname !== undefined ? netns(`${NETNS_PREFIX}${id}-vm`, `st${rand}d`) : undefined;
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
    await ip('netns', 'add', pod.name);
    await ip('netns', 'add', peer.name);
    for (const ns of [pod, peer]) {
      // No DAD: addresses are usable at once, and link-local is never left tentative.
      await exec(tool('ip'), ['netns', 'exec', ns.name, tool('sysctl'), '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
      await ip('-n', ns.name, 'link', 'set', 'lo', 'up');
    }
    await ip('-n', pod.name, 'link', 'add', pod.ifname, 'type', 'veth', 'peer', 'name', peer.ifname, 'netns', peer.name);
    if (opts.podIfname !== undefined) {
      await ip('-n', pod.name, 'link', 'set', pod.ifname, 'name', opts.podIfname);
      pod.ifname = opts.podIfname;
    }
    const a = ADDRESSES;
    await ip('-n', pod.name, 'addr', 'add', `${a.pod4}/24`, 'dev', pod.ifname);
    await ip('-n', pod.name, '-6', 'addr', 'add', `${a.pod6}/64`, 'dev', pod.ifname, 'nodad');
    // Istio's IPv6 passthrough source must exist on the pod's lo (istio-iptables adds it).
    await ip('-n', pod.name, '-6', 'addr', 'add', '::6/128', 'dev', 'lo');
    await ip('-n', peer.name, 'addr', 'add', `${a.peer4}/24`, 'dev', peer.ifname);
    await ip('-n', peer.name, '-6', 'addr', 'add', `${a.peer6}/64`, 'dev', peer.ifname, 'nodad');
    await ip('-n', peer.name, 'addr', 'add', `${a.remote4}/32`, 'dev', 'lo');
    await ip('-n', peer.name, '-6', 'addr', 'add', `${a.remote6}/128`, 'dev', 'lo');
    await ip('-n', pod.name, 'link', 'set', pod.ifname, 'up');
    await ip('-n', peer.name, 'link', 'set', peer.ifname, 'up');
    await ip('-n', pod.name, 'route', 'add', 'default', 'via', a.peer4);
    await ip('-n', pod.name, '-6', 'route', 'add', 'default', 'via', a.peer6);
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
  await ip('netns', 'add', vm.name);
  await exec(tool('ip'), ['netns', 'exec', vm.name, tool('sysctl'), '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  await ip('-n', vm.name, 'link', 'set', 'lo', 'up');
  await ip('-n', pod.name, 'link', 'add', podEnd, 'type', 'veth', 'peer', 'name', vm.ifname, 'netns', vm.name);
  await ip('-n', pod.name, 'link', 'set', podEnd, 'name', ifname);
  await ip('-n', pod.name, 'addr', 'add', `${v.route4}/24`, 'dev', ifname);
  await ip('-n', pod.name, '-6', 'addr', 'add', `${v.route6}/64`, 'dev', ifname, 'nodad');
  await ip('-n', vm.name, 'addr', 'add', `${v.vm4}/24`, 'dev', vm.ifname);
  await ip('-n', vm.name, '-6', 'addr', 'add', `${v.vm6}/64`, 'dev', vm.ifname, 'nodad');
  await ip('-n', pod.name, 'link', 'set', ifname, 'up');
  await ip('-n', vm.name, 'link', 'set', vm.ifname, 'up');
  await ip('-n', vm.name, 'route', 'add', 'default', 'via', v.route4);
  await ip('-n', vm.name, '-6', 'route', 'add', 'default', 'via', v.route6);
  // Forwarding inside the pod netns only, as a KubeVirt pod's bridge/masquerade setup has it.
  await exec(tool('ip'), ['netns', 'exec', pod.name, tool('sysctl'), '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  await ip('-n', peer.name, 'route', 'add', '10.3.0.0/24', 'via', ADDRESSES.pod4);
  await ip('-n', peer.name, '-6', 'route', 'add', 'fd00:3::/64', 'via', ADDRESSES.pod6);
  await ip('-n', peer.name, 'addr', 'add', `${v.other4}/32`, 'dev', 'lo');
  await ip('-n', peer.name, '-6', 'addr', 'add', `${v.other6}/128`, 'dev', 'lo');
}

/** Destroys every topology this process created and has not destroyed yet. */
export async function destroyAllTopologies(): Promise<void> {
  await Promise.all([...live].map((t) => t.destroy()));
}

