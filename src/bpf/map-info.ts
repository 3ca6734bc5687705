// struct bpf_map_info: type, id, key_size, value_size, max_entries (obj-info.ts reads it).
import type { Shape } from './map-table.js';
import { readInfo } from './obj-info.js';

const MAP_INFO_SIZE = 88;
const FIELDS = { type: [0, 'u32'], id: [4, 'u32'], keySize: [8, 'u32'], valueSize: [12, 'u32'], maxEntries: [16, 'u32'] } as const;

export type MapInfoFields = ReturnType<typeof mapInfoOf>;

/** The map info of an open map fd; `what` names it in the error. */
export function mapInfoOf(fd: number, what: string) {
  return readInfo(fd, what, MAP_INFO_SIZE, FIELDS);
}

/** type, key_size, value_size, max_entries of an open map fd. */
export function mapShapeOf(fd: number, what: string): Shape {
  const { type, keySize, valueSize, maxEntries } = mapInfoOf(fd, what);
  return { type, keySize, valueSize, maxEntries };
}
