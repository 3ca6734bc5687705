// struct bpf_link_info: type, id, prog_id, then a union by link type at offset 16, read by
// obj-info.ts: a cgroup link's cgroup id (its directory's inode), a sockmap link's map id,
// a netns link's namespace inode (0 once the namespace is gone: the link is defunct).
import * as bpf from './libbpf.js';
import { readInfo } from './obj-info.js';

const LINK_INFO_SIZE = 64;
const FIELDS = { id: [4, 'u32'], progId: [8, 'u32'], cgroupId: [16, 'u64'], sockmapMapId: [16, 'u32'], netnsIno: [16, 'u32'] } as const;

export type LinkInfo = ReturnType<typeof linkInfoOf>;

/** The link info of an open link fd; `what` names it in the error. */
export function linkInfoOf(fd: number, what: string) {
  return readInfo(fd, what, LINK_INFO_SIZE, FIELDS);
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
