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
import { tool } from '../../../src/lab/tools.js';

export { deleteNetns, NETNS_PREFIX, pidAlive, reapStaleNamespaces, waitUsable, type Netns } from '../../../src/lab/netns.js';

export interface Addresses {
  pod4: string;
  pod6: string;
  peer4: string;
  peer6: string;
  remote4: string;
  remote6: string;
}

export const ADDRESSES: Readonly<Addresses> = Object.freeze({
  pod4: '10.1.0.2',
  pod6: 'fd00::2',
  peer4: '10.1.0.1',
  peer6: 'fd00::1',
  remote4: '10.2.0.5',
  remote6: 'fd00:2::5',
});

export interface Topology {
  id: string;
  pod: Netns;
  peer: Netns;
  addrs: Addresses;
  /** Deletes both namespaces (and so the veth). Idempotent; never throws. */
  destroy(): Promise<void>;
}

const live = new Set<Topology>();

const ip = (...args: string[]) => exec(tool('ip'), args);

function netns(name: string, ifname: string): Netns {
  return { name, path: `/var/run/netns/${name}`, ifname };
}

export async function createTopology(): Promise<Topology> {
  const rand = randomBytes(3).toString('hex');
  const id = `${process.pid}-${rand}`;
  const pod = netns(`${NETNS_PREFIX}${id}-pod`, `st${rand}a`);
  const peer = netns(`${NETNS_PREFIX}${id}-peer`, `st${rand}b`);
  let destroyed = false;
  const topo: Topology = {
    id,
    pod,
    peer,
    addrs: { ...ADDRESSES },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(topo);
      await Promise.all([deleteNetns(pod.name), deleteNetns(peer.name)]);
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
    await waitUsable(pod, [a.pod4, a.pod6, '::6']);
    await waitUsable(peer, [a.peer4, a.peer6, a.remote4, a.remote6]);
    return topo;
  } catch (err) {
    await topo.destroy();
    throw err;
  }
}

/** Destroys every topology this process created and has not destroyed yet. */
export async function destroyAllTopologies(): Promise<void> {
  await Promise.all([...live].map((t) => t.destroy()));
}

