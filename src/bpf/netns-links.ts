// The sk_lookup entry of each captured pod netns: a small program that knows the netns
// cookie (its .rodata) and tail-calls the shared steering program, linked to the netns and
// pinned at <bpffs>/links/netns/<cookie>.
import { existsSync } from 'node:fs';
import { encodeSkLookupConfig } from './codec.js';
import * as bpf from './libbpf.js';
import { pinnedLinkInfo } from './link-info.js';
import { detachPinnedLink } from './links.js';
import { LoaderError, SK_LOOKUP_OBJECT, SK_LOOKUP_PROGRAM, SK_LOOKUP_STEER_PROGRAM } from './objects.js';
import { installation, openObject, type LoaderOptions, type OpenOptions } from './open-object.js';
import { DEFAULT_BPFFS_DIR, isInstalled, netnsLinkPath } from './pins.js';

/** Loads the entry program for one netns (only it is verified per pod; the steering program is shared). */
export function loadNetnsEntry(o: Omit<OpenOptions, 'object'>, netnsCookie: bigint): { obj: bpf.BpfObject; progFd: number } {
  const obj = openObject({ ...o, object: SK_LOOKUP_OBJECT, rodata: encodeSkLookupConfig(netnsCookie), skip: [SK_LOOKUP_STEER_PROGRAM] });
  try {
    return { obj, progFd: bpf.programFd(bpf.findProgram(obj, SK_LOOKUP_PROGRAM)) };
  } catch (err) {
    bpf.closeObject(obj);
    throw err;
  }
}

/**
 * Links an sk_lookup instance that knows `netnsCookie` to the netns open as `netnsFd`
 * (opened and checked by netns.ts withPodNetns: never a path here, which a pod could point
 * at a FIFO or swap). Returns false when that netns already has one (adopted as it is).
 */
export function attachNetns(netnsCookie: bigint, netnsFd: number, opts: LoaderOptions = {}): boolean {
  const bpffsDir = opts.bpffsDir ?? DEFAULT_BPFFS_DIR;
  const path = netnsLinkPath(bpffsDir, netnsCookie);
  if (existsSync(path)) return false;
  if (!isInstalled(bpffsDir)) throw new LoaderError('NOT_INSTALLED', `no sluice installation under ${bpffsDir}: install first`);
  const { obj } = loadNetnsEntry(installation(opts), netnsCookie);
  try {
    bpf.pinAndRelease(bpf.attachNetns(bpf.findProgram(obj, SK_LOOKUP_PROGRAM), netnsFd), path);
  } finally {
    bpf.closeObject(obj);
  }
  return true;
}

/** Whether the netns of a pinned sk_lookup link still exists; null when no link is pinned. */
export function netnsLinkAlive(netnsCookie: bigint, bpffsDir: string = DEFAULT_BPFFS_DIR): boolean | null {
  const info = pinnedLinkInfo(netnsLinkPath(bpffsDir, netnsCookie));
  return info === null ? null : info.netnsIno !== 0;
}

/** Detaches and unpins the sk_lookup link of one netns. False when there was none. */
export function detachNetns(netnsCookie: bigint, bpffsDir: string = DEFAULT_BPFFS_DIR): boolean {
  return detachPinnedLink(netnsLinkPath(bpffsDir, netnsCookie));
}
