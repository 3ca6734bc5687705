// struct bpf_map_info (uapi/linux/bpf.h), read in one place: the kernel fills it little-endian
// on the only architectures sluice runs on (x86_64, arm64).
import * as bpf from './libbpf.js';

const MAP_INFO_SIZE = 88;
const OFFSET = { type: 0, id: 4, keySize: 8, valueSize: 12, maxEntries: 16 } as const;

export interface MapInfoFields {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** The map info of an open map fd; `what` names it in the error. */
export function mapInfoOf(fd: number, what: string): MapInfoFields {
  const info = Buffer.alloc(MAP_INFO_SIZE);
  bpf.objInfo(fd, info, what);
  const read = (k: keyof typeof OFFSET) => info.readUInt32LE(OFFSET[k]);
  return { type: read('type'), id: read('id'), keySize: read('keySize'), valueSize: read('valueSize'), maxEntries: read('maxEntries') };
}
