// Pinned links: swap a pinned link's program in place or attach and pin a new one, attach
// to a map with the pre-link fallback, and detach. The cgroup, sk_msg and netns links
// all go through these.
import { unlinkSync } from 'node:fs';
import * as bpf from './libbpf.js';

/**
 * Gives the link pinned at `path` the program `progFd` (bpf_link_update: the hook never
 * goes empty), or, when none is pinned, attaches with `attach` and pins the link.
 */
export function updateOrAttach(path: string, progFd: number, attach: () => bpf.BpfLink): 'updated' | 'attached' {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) {
    bpf.pinAndRelease(attach(), path);
    return 'attached';
  }
  try {
    bpf.linkUpdate(fd, progFd, path);
  } finally {
    bpf.closeFd(fd);
  }
  return 'updated';
}

/**
 * Attaches a program to a map (an sk_msg verdict on a sockhash) with a link (kernel 6.10+),
 * whose fd is returned; on kernels without sockmap links, with bpf_prog_attach, which
 * lives as long as the map: then null.
 */
export function attachToMap(progFd: number, mapFd: number, attachType: number, what: string): number | null {
  try {
    return bpf.linkCreate(progFd, mapFd, attachType, what);
  } catch (err) {
    if (!(err instanceof bpf.BpfError) || err.code !== 'EINVAL') throw err;
    bpf.progAttach(progFd, mapFd, attachType, what);
    return null;
  }
}

/** Detaches and unpins the link pinned at `path`. False when there was none. */
export function detachPinnedLink(path: string): boolean {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return false;
  try {
    bpf.linkDetach(fd, path);
  } catch (err) {
    // A netns link whose namespace is gone is already defunct: nothing to detach.
    if (!(err instanceof bpf.BpfError) || (err.code !== 'ENOLINK' && err.code !== 'EINVAL')) throw err;
  } finally {
    bpf.closeFd(fd);
  }
  unlinkSync(path);
  return true;
}
