// Private cgroups of the lab: children of the cgroup2 mount named `sluice-test-*`, so a
// cgroup program attached to one sees only the lab's processes, never the host's.
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NETNS_PREFIX } from './netns.js';

export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every process in `dir` and its sub-cgroups. */
function treeProcs(dir: string): number[] {
  const pids = cgroupProcs(dir);
  for (const sub of subCgroups(dir)) pids.push(...treeProcs(sub));
  return pids;
}

function subCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/** One pass of rmdir over `dir`'s tree, deepest first; true once the whole tree is gone. */
function removeTreeOnce(dir: string): boolean {
  for (const sub of subCgroups(dir)) removeTreeOnce(sub);
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** A cgroup of ours: it is, or lies below, one named `sluice-test-*`. */
function ours(dir: string): boolean {
  return dir.split('/').some((part) => part.startsWith(NETNS_PREFIX));
}

/**
 * Removes one of our cgroups and its sub-cgroups (kubepods trees), deepest first, if no
 * process is left in any of them; for reaping what dead runs left behind. Never throws.
 */
export function removeEmptyCgroupTree(dir: string): boolean {
  if (!ours(dir) || treeProcs(dir).length > 0) return false;
  return removeTreeOnce(dir);
}

/** Kills every process in one of our cgroups and its sub-cgroups, then removes them all. Never throws. */
export async function destroyCgroup(dir: string): Promise<void> {
  if (!ours(dir) || !existsSync(dir)) return;
  for (let i = 0; i < 100; i++) {
    const pids = treeProcs(dir);
    if (pids.length === 0) break;
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1'); // Linux 5.14+; kills the whole subtree
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
    if (removeTreeOnce(dir)) return;
    await new Promise((r) => setTimeout(r, 20)); // EBUSY while the last process exits
  }
}
