// The one table of sluice's BPF maps: name (also the pin name, <bpffs>/maps/<name>), type,
// key and value layout, flags and capacity rule. Everything else (the loader's sizing,
// the pinned-map checks, SluiceMaps, the fake maps, the CLI defaults, the capacity flags)
// derives from it. test/unit/map-table.test.ts checks it against the BTF of bpf/build/*.bpf.o.
// Pure data: the CLI imports it without loading libbpf.
import { COUNTER, LAYOUTS, MAX_POD_IPS } from './abi.js';
import { MAP_TYPES } from './probe-facts.js';

export interface Capacity {
  /** Captured pods per node. */
  pods: number;
  /** Concurrent captured connections (original-destination records). */
  connections: number;
  /** Entries of each set map (ports, CIDRs, interfaces, binds), all pods together. */
  setEntries: number;
  /** sk_msg acceleration: sluice_accel gets its full size only when it is on. */
  accelerate: boolean;
}

export const DEFAULT_CAPACITY: Readonly<Capacity> = Object.freeze({ pods: 512, connections: 262144, setEntries: 65536, accelerate: false });

/** A host-order integer, or a struct of sluice.h (its size from LAYOUTS). */
export type Layout = 'int' | 'u32' | 'u64' | keyof typeof LAYOUTS;

export const LAYOUT_SIZES: Readonly<Record<Layout, number>> = Object.freeze({
  int: 4,
  u32: 4,
  u64: 8,
  ...(Object.fromEntries(Object.entries(LAYOUTS).map(([k, v]) => [k, v.size])) as Record<keyof typeof LAYOUTS, number>),
});

export type MapType = keyof typeof MAP_TYPES;
export const BPF_F_NO_PREALLOC = 1;

export interface MapSpec {
  type: MapType;
  key: Layout;
  value: Layout;
  /** map_flags: BPF_F_NO_PREALLOC where the map only allocates what it holds. */
  noPrealloc?: boolean;
  /** Entries for a capacity; a number is fixed, as built (0 for socket storage). */
  size: number | ((cap: Capacity) => number);
  /** Smallest size the loader creates (sluice_accel with acceleration off): grown to full size when turned on. */
  minimal?: number;
  /** Declared by this object only; the others are in bpf/maps.h, which every object includes. */
  object?: string;
  /** Entries of the `set` maps are pod sets, keyed by a struct whose pod_id names the pod. */
  set?: boolean;
}

const ACCEL_OFF_ENTRIES = 1;

const spec = <T extends Record<string, MapSpec>>(t: T): { readonly [K in keyof T]: MapSpec } => Object.freeze(t);

export const MAPS = spec({
  sluice_pods: { type: 'BPF_MAP_TYPE_HASH', key: 'u64', value: 'sluice_pod_policy', size: (c) => c.pods },
  sluice_ports: { type: 'BPF_MAP_TYPE_HASH', key: 'sluice_port_key', value: 'u32', noPrealloc: true, set: true, size: (c) => c.setEntries },
  sluice_cidrs: { type: 'BPF_MAP_TYPE_LPM_TRIE', key: 'sluice_cidr_key', value: 'u32', noPrealloc: true, set: true, size: (c) => c.setEntries },
  sluice_ifaces: { type: 'BPF_MAP_TYPE_HASH', key: 'sluice_iface_key', value: 'u32', noPrealloc: true, set: true, size: (c) => c.setEntries },
  sluice_binds: { type: 'BPF_MAP_TYPE_HASH', key: 'sluice_bind_key', value: 'u32', noPrealloc: true, set: true, size: (c) => c.setEntries },
  sluice_conns: { type: 'BPF_MAP_TYPE_HASH', key: 'sluice_conn_key', value: 'sluice_orig_dst', noPrealloc: true, size: (c) => c.connections },
  sluice_socks: { type: 'BPF_MAP_TYPE_SK_STORAGE', key: 'int', value: 'sluice_sock_state', noPrealloc: true, size: 0 },
  sluice_dns: { type: 'BPF_MAP_TYPE_SK_STORAGE', key: 'int', value: 'sluice_dns_state', noPrealloc: true, size: 0 },
  // P_IN and P_OUT listeners, IPv4 and IPv6, per pod.
  sluice_listen: { type: 'BPF_MAP_TYPE_SOCKHASH', key: 'sluice_listener_key', value: 'u64', size: (c) => 4 * c.pods },
  sluice_global: { type: 'BPF_MAP_TYPE_ARRAY', key: 'u32', value: 'sluice_global', size: 1 },
  // Two entries per accelerated connection; a full map is counted and the pair stays on TCP.
  // Off, one entry: a pair can never be enrolled in it, so replacing it loses no data.
  sluice_accel: {
    type: 'BPF_MAP_TYPE_SOCKHASH',
    key: 'sluice_conn_key',
    value: 'u64',
    size: (c) => (c.accelerate ? c.connections : ACCEL_OFF_ENTRIES),
    minimal: ACCEL_OFF_ENTRIES,
  },
  sluice_addrs: { type: 'BPF_MAP_TYPE_HASH', key: 'sluice_addr_key', value: 'u64', noPrealloc: true, size: (c) => 2 * MAX_POD_IPS * c.pods },
  // Counts of removed pods linger until their connections close.
  sluice_conn_count: { type: 'BPF_MAP_TYPE_HASH', key: 'u64', value: 'u64', noPrealloc: true, size: (c) => 2 * c.pods },
  sluice_pending: { type: 'BPF_MAP_TYPE_HASH', key: 'u64', value: 'u32', noPrealloc: true, size: (c) => c.pods },
  sluice_counters: { type: 'BPF_MAP_TYPE_PERCPU_ARRAY', key: 'u32', value: 'u64', size: COUNTER.MAX },
  // The steering program every sk_lookup entry tail-calls, and the entry's cookie for it.
  sluice_lookup_prog: { type: 'BPF_MAP_TYPE_PROG_ARRAY', key: 'u32', value: 'u32', size: 1, object: 'sk_lookup' },
  sluice_lookup_netns: { type: 'BPF_MAP_TYPE_PERCPU_ARRAY', key: 'u32', value: 'u64', size: 1, object: 'sk_lookup' },
});

export type AnyMapName = keyof typeof MAPS;
const ALL = Object.keys(MAPS) as AnyMapName[];

/** The maps of bpf/maps.h: every installation pins them, SluiceMaps opens them. */
export const MAP_NAMES = ALL.filter((n) => MAPS[n].object === undefined) as Exclude<AnyMapName, 'sluice_lookup_prog' | 'sluice_lookup_netns'>[];
export type MapName = (typeof MAP_NAMES)[number];

/** The pod set maps, written under a pod id (policy-map.ts). */
export const SET_MAPS = ALL.filter((n) => MAPS[n].set) as ('sluice_ports' | 'sluice_cidrs' | 'sluice_ifaces' | 'sluice_binds')[];
export type SetMapName = (typeof SET_MAPS)[number];

/** Maps whose size follows the capacity: what usage and metrics report. */
export const SIZED_MAPS = MAP_NAMES.filter((n) => typeof MAPS[n].size === 'function');

export function isMapName(name: string): name is AnyMapName {
  return Object.hasOwn(MAPS, name);
}

/** A map's size for this capacity; null for the fixed-size ones (socket storage, counters, flags) and maps not in the table. */
export function capacityOf(name: string, cap: Capacity): number | null {
  if (!isMapName(name)) return null;
  const size = MAPS[name].size;
  return typeof size === 'function' ? size(cap) : null;
}

/** The size the objects are built with (bpf/maps.h): the default capacity, every feature on. */
export function builtEntries(name: AnyMapName): number {
  const size = MAPS[name].size;
  return typeof size === 'function' ? size({ ...DEFAULT_CAPACITY, accelerate: true }) : size;
}

/** What the kernel checks when a pinned map is reused: type, key and value size, entries. */
export interface Shape {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** The shape of a map of the table at this capacity (fixed maps: as built). */
export function shapeOf(name: AnyMapName, cap: Capacity): Shape {
  const m = MAPS[name];
  return { type: MAP_TYPES[m.type], keySize: LAYOUT_SIZES[m.key], valueSize: LAYOUT_SIZES[m.value], maxEntries: capacityOf(name, cap) ?? builtEntries(name) };
}

/** The `sluice run` flag of each capacity; the set maps' size has none. */
export const CAPACITY_FLAGS = Object.freeze({ pods: '--max-pods', connections: '--max-connections' } as const);

/** The `sluice run` flag that sizes `name`: the capacity whose change changes its size. */
export function capacityFlag(name: string): string | undefined {
  const on = { ...DEFAULT_CAPACITY, accelerate: true };
  const base = capacityOf(name, on);
  for (const [key, flag] of Object.entries(CAPACITY_FLAGS) as [keyof typeof CAPACITY_FLAGS, string][]) {
    if (capacityOf(name, { ...on, [key]: on[key] + 1 }) !== base) return flag;
  }
  return undefined;
}
