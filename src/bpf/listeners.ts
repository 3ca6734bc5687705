// Proxy listeners that were already listening when a pod's capture started. sockops
// enrols a proxy listener in sluice_listen when it calls listen(); one that listened
// before the programs were attached (or before the pod had a policy) is found here:
// in /proc, among the sockets of processes in the pod's netns, and copied in with
// pidfd_getfd, so inbound steering can hand it connections.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { Family } from '../policy/types.js';
import { encodeListenerKey, encodeU64 } from './codec.js';
import * as bpf from './libbpf.js';
import type { SluiceMaps } from './maps.js';

const TCP_LISTEN = '0A';

export interface AdoptedListener {
  pid: number;
  fd: number;
  port: number;
  family: Family;
}

interface ListeningSocket {
  inode: string;
  port: number;
  family: Family;
}

/** LISTEN sockets on `ports` in the netns `pid` lives in, from /proc/PID/net/tcp{,6}. */
function listeningSockets(pid: number, ports: Set<number>): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const [file, family] of [['tcp', 4], ['tcp6', 6]] as const) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
      const port = parseInt(f[1]!.split(':')[1]!, 16);
      if (ports.has(port)) out.push({ inode: f[9]!, port, family });
    }
  }
  return out;
}

/** The netns as nsfs inode and device: what netns.ts checked, not a path to re-open. */
export interface NetnsInode {
  ino: bigint;
  dev: bigint;
}

function pidsInNetns({ dev, ino }: NetnsInode): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = statSync(`/proc/${name}/ns/net`, { bigint: true });
      if (st.ino === ino && st.dev === dev) pids.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/**
 * Enrols the listeners on `ports` (the pod's P_IN and P_OUT) of the netns in the listener
 * map under `netnsCookie`. Returns what it enrolled.
 */
export function adoptListeners(maps: SluiceMaps, netnsCookie: bigint, netns: NetnsInode, ports: number[]): AdoptedListener[] {
  const pids = pidsInNetns(netns);
  if (pids.length === 0) return [];
  const wanted = new Map(listeningSockets(pids[0]!, new Set(ports)).map((s) => [`socket:[${s.inode}]`, s]));
  const adopted: AdoptedListener[] = [];
  for (const pid of pids) {
    if (wanted.size === 0) break;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fdName of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fdName}`);
      } catch {
        continue;
      }
      const sock = wanted.get(target);
      if (!sock) continue;
      let pidfd: number;
      try {
        pidfd = bpf.pidfdOpen(pid);
      } catch (err) {
        if (err instanceof bpf.BpfError && err.code === 'ESRCH') break; // the process exited meanwhile
        throw err;
      }
      try {
        const local = bpf.pidfdGetfd(pidfd, Number(fdName));
        try {
          maps.update('sluice_listen', encodeListenerKey({ netnsCookie, port: sock.port, family: sock.family }), encodeU64(BigInt(local)));
        } finally {
          bpf.closeFd(local);
        }
      } catch (err) {
        // The socket was closed meanwhile: a new listener will be enrolled by sockops.
        if (err instanceof bpf.BpfError && err.code === 'EBADF') continue;
        throw err;
      } finally {
        bpf.closeFd(pidfd);
      }
      wanted.delete(target);
      adopted.push({ pid, fd: Number(fdName), port: sock.port, family: sock.family });
    }
  }
  return adopted;
}
