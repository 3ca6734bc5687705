// Two network namespaces joined by a veth: the "pod" under test and a "peer" that plays
// every other machine (the remote service, and the client of inbound connections).
//
//   pod  [lo: 127.0.0.1/8, ::1, ::6]   veth 10.1.0.2/24 fd00::2/64  ── default routes ──┐
//   peer [lo: 10.2.0.5/32 fd00:2::5]   veth 10.1.0.1/24 fd00::1/64  <───────────────────┘
//
// Nothing is created in the host namespace: the veth is born inside the pod netns with
// its other end in the peer netns, and every name starts with `sluice-test-`.
import { randomBytes } from 'node:crypto';
import { exec, tryExec } from './exec.js';
import { tool } from './requirements.js';

export const NETNS_PREFIX = 'sluice-test-';

export interface Netns {
  /** `ip netns` name. */
  name: string;
  /** Path for setns(2): /var/run/netns/NAME. */
  path: string;
  /** The veth end in this namespace. */
  ifname: string;
}

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

interface IpAddrJson {
  ifname: string;
  operstate?: string;
  addr_info?: { local: string; tentative?: boolean; dadfailed?: boolean }[];
}

/** Waits until every address is present and none is tentative (or failed DAD). */
export async function waitUsable(ns: Netns, want: string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { stdout } = await ip('-n', ns.name, '-j', 'addr', 'show');
    const links = JSON.parse(stdout) as IpAddrJson[];
    const infos = links.flatMap((l) => l.addr_info ?? []);
    const notReady = want.filter((w) => !infos.some((i) => i.local === w && !i.tentative && !i.dadfailed));
    if (notReady.length === 0) return;
    if (Date.now() > deadline) throw new Error(`netns ${ns.name}: addresses not usable after 5s: ${notReady.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Kills what still runs inside one of our namespaces (only ours: the name is ours), then deletes it. */
export async function deleteNetns(name: string): Promise<void> {
  if (!name.startsWith(NETNS_PREFIX)) throw new Error(`refusing to delete netns ${name}: not a sluice test namespace`);
  const pids = await tryExec(tool('ip'), ['netns', 'pids', name]);
  if (!(pids instanceof Error)) {
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await tryExec(tool('ip'), ['netns', 'del', name]);
}

/** Destroys every topology this process created and has not destroyed yet. */
export async function destroyAllTopologies(): Promise<void> {
  await Promise.all([...live].map((t) => t.destroy()));
}

/**
 * Deletes `sluice-test-<pid>-...` namespaces whose creating process is dead: leftovers of a
 * run that was killed. Namespaces of a live process (a concurrent run) are left alone.
 */
export async function reapStaleNamespaces(): Promise<string[]> {
  const { stdout } = await ip('netns', 'list');
  const reaped: string[] = [];
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    await deleteNetns(name);
    reaped.push(name);
  }
  return reaped;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
