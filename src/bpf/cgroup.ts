// The cgroup the programs attach to: a cgroup v2 directory this loader may use, and no
// pinned link of this pin directory serving another one.
import { realpathSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pinnedLinkInfo } from './link-info.js';
import { CGROUP_PROGRAMS, LoaderError } from './objects.js';
import type { Pins } from './pins.js';
import { findCgroup2Mount } from './system.js';

/** Resolves `dir` and checks it is a cgroup v2 directory this loader may attach to. */
export function checkCgroupDir(dir: string, allowRoot = false): string {
  const mount = findCgroup2Mount();
  if (!mount) throw new LoaderError('CGROUP_NOT_V2', 'no cgroup2 filesystem is mounted (see /proc/mounts); mount one: mount -t cgroup2 none /sys/fs/cgroup');
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new LoaderError('CGROUP_NOT_V2', `cgroup directory ${dir} does not exist; create it under ${mount}`);
  }
  const rootReal = realpathSync(mount);
  const rel = relative(rootReal, real);
  if (rel.startsWith('..') || rel.startsWith(sep)) throw new LoaderError('CGROUP_NOT_V2', `${dir} is not under the cgroup2 mount ${mount}`);
  if (rel === '' && !allowRoot) throw new LoaderError('CGROUP_ROOT_REFUSED', `refusing to attach to the cgroup2 root ${mount} without allowCgroupRoot (sluice run --cgroup ${mount} sets it)`);
  return real;
}

/** Never adopt links that serve another cgroup (`cgroupId`, its inode): that is another installation. */
export function checkLinksServe(pins: Pins, cgroupDir: string, cgroupId: bigint): void {
  for (const { program } of CGROUP_PROGRAMS) {
    const path = join(pins.links, program);
    const info = pinnedLinkInfo(path);
    if (info && info.cgroupId !== cgroupId) {
      throw new LoaderError('PINNED_ELSEWHERE', `${path} is attached to another cgroup than ${cgroupDir}; run \`sluice uninstall --bpffs ${pins.root}\` first or use another --bpffs directory`);
    }
  }
}
