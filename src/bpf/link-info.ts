// struct bpf_link_info (uapi/linux/bpf.h), read in one place, as map-info.ts reads
// bpf_map_info: type, id, prog_id, then a union by link type at offset 16. The kernel fills
// it little-endian on the only architectures sluice runs on (x86_64, arm64).
import * as bpf from './libbpf.js';

const LINK_INFO_SIZE = 64;
const UNION = 16;

export interface LinkInfo {
  id: number;
  progId: number;
  /** A cgroup link's cgroup id (its directory's inode). */
  cgroupId: bigint;
  /** A sockmap link's map id. */
  sockmapMapId: number;
  /** A netns link's namespace inode: 0 once the namespace is gone (the link is defunct). */
  netnsIno: number;
}

/** The link info of an open link fd; `what` names it in the error. */
export function linkInfoOf(fd: number, what: string): LinkInfo {
  const info = Buffer.alloc(LINK_INFO_SIZE);
  bpf.objInfo(fd, info, what);
  return { id: info.readUInt32LE(4), progId: info.readUInt32LE(8), cgroupId: info.readBigUInt64LE(UNION), sockmapMapId: info.readUInt32LE(UNION), netnsIno: info.readUInt32LE(UNION) };
}

/** The link info of the link pinned at `path`; null when nothing is pinned there. */
export function pinnedLinkInfo(path: string): LinkInfo | null {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return null;
  try {
    return linkInfoOf(fd, path);
  } finally {
    bpf.closeFd(fd);
  }
}
