// bpffs pin directories of the lab: `sluice-test-<pid>-*` under /sys/fs/bpf, one per test,
// demo or bench run. Removing one detaches whatever its pinned links hold.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { uninstall } from '../bpf/loader.js';
import { NETNS_PREFIX, pidAlive } from './netns.js';

export const BPFFS_ROOT = '/sys/fs/bpf';

/** Unpins (so detaches) everything under `dir`, then removes it. Idempotent. */
export function removePinDir(dir: string): void {
  if (!existsSync(dir)) return;
  try {
    uninstall(dir);
  } finally {
    // Pins of an unexpected shape: removing them drops the last reference anyway.
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes lab pin directories whose creating process is dead: leftovers of a killed run. */
export function reapStalePinDirs(root = BPFFS_ROOT): string[] {
  if (!existsSync(root)) return [];
  const reaped: string[] = [];
  for (const name of readdirSync(root)) {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    removePinDir(join(root, name));
    reaped.push(join(root, name));
  }
  return reaped;
}
