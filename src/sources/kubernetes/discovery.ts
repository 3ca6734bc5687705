// Finds a pod's network namespace from the host's /proc, the way the kubelet laid it out:
// a process whose cgroup names the pod's UID. Nothing the pod's author writes is read,
// so a pod can never point the daemon at the host's or another pod's namespace.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** A process of the pod, and the path of its network namespace. */
export interface PodProcess {
  pid: number;
  netnsPath: string;
}

// cgroupfs: .../kubepods/<qos>/pod<uid>/<container>  (and .../kubepods/pod<uid>/... for Guaranteed)
// systemd:  .../kubepods-<qos>-pod<uid with _>.slice/cri-containerd-<id>.scope
const CGROUPFS = /\/kubepods(?:\/(?:burstable|besteffort))?\/pod([0-9a-f-]{36})(?:\/|$)/;
const SYSTEMD = /\/kubepods(?:-(?:burstable|besteffort))?-pod([0-9a-f_]{36})\.slice(?:\/|$)/;

/** The pod UID a `/proc/PID/cgroup` line names, or null. Exported for the unit tests. */
export function podUidOfCgroup(text: string): string | null {
  for (const line of text.split('\n')) {
    // cgroup v2 lines are `0::/path`; v1 lines `N:controllers:/path` name the same pod.
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    const fs = CGROUPFS.exec(path);
    if (fs) return fs[1]!;
    const sd = SYSTEMD.exec(path);
    if (sd) return sd[1]!.replaceAll('_', '-');
  }
  return null;
}

/**
 * Scans `procRoot` once for processes of the wanted pods. The first (lowest) PID found for
 * each UID wins; every container of a pod shares the sandbox's network namespace.
 */
export function discoverPodProcesses(procRoot: string, wanted: ReadonlySet<string>): Map<string, PodProcess> {
  const found = new Map<string, PodProcess>();
  if (wanted.size === 0) return found;
  // A process of the pod's cgroup may not have entered the pod's netns yet (runc joins
  // the cgroup first), and a hostNetwork container never does: the node's namespace and
  // the daemon's own are never a pod's.
  const forbidden = new Set([netnsInode(join(procRoot, '1', 'ns', 'net')), netnsInode('/proc/self/ns/net')].filter((i) => i !== null));
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return found;
  }
  const pids = entries.filter((e) => /^\d+$/.test(e)).map(Number).sort((a, b) => a - b);
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(join(procRoot, String(pid), 'cgroup'), 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const uid = podUidOfCgroup(text);
    if (uid === null || !wanted.has(uid) || found.has(uid)) continue;
    const netnsPath = join(procRoot, String(pid), 'ns', 'net');
    const ino = netnsInode(netnsPath);
    if (ino === null || forbidden.has(ino)) continue;
    found.set(uid, { pid, netnsPath });
    if (found.size === wanted.size) break;
  }
  return found;
}

/** The inode of the netns a `/proc/PID/ns/net` link points at (stat follows it). */
function netnsInode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}
