// Private cgroups of the lab: children of the cgroup2 mount named `sluice-test-*`, so a
// cgroup program attached to one sees only the lab's processes, never the host's.
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NETNS_PREFIX } from './netns.js';

export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kills every process in one of our cgroups, then removes it. Never throws. */
export async function destroyCgroup(dir: string): Promise<void> {
  if (!dir.split('/').pop()!.startsWith(NETNS_PREFIX)) return;
  if (!existsSync(dir)) return;
  for (let i = 0; i < 100; i++) {
    const pids = cgroupProcs(dir);
    if (pids.length === 0) break;
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1'); // Linux 5.14+
    } catch {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 20)); // EBUSY while the last process exits
    }
  }
}

