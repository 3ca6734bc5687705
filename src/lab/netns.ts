// Network namespaces of the lab (tests, demo, bench): every name starts with
// `sluice-test-<pid>-`, so leftovers of a killed run are found and only ours are deleted.
import { exec, tryExec } from './exec.js';
import { tool } from '../system/tools.js';

export const NETNS_PREFIX = 'sluice-test-';

export interface Netns {
  /** `ip netns` name. */
  name: string;
  /** Path for setns(2): /var/run/netns/NAME. */
  path: string;
  /** The veth end in this namespace. */
  ifname: string;
}

const ip = (...args: string[]) => exec(tool('ip'), args);

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
