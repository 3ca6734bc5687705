// The constants, enums and struct layouts of bpf/sluice.h, as data: no encoding here
// (codec.ts), so the map table and the CLI can use them without the codecs.
// test/unit/codec.test.ts compiles sluice.h and checks every value and LAYOUTS against it.
import { KERNEL_LIMITS } from '../policy/limits.js';

// Defined once in src/policy (validate reports them); the codec test checks sluice.h.
export const MAX_PROXY_IDS = KERNEL_LIMITS.proxyIds;
export const MAX_POD_IPS = KERNEL_LIMITS.podIpsPerFamily;
export const ADDR_WORDS = 4;
export const NO_OWNER = 0xffffffff;
export const CIDR_KEY_FIXED_BITS = 64;

export const FAMILY = { IPV4: 4, IPV6: 6 } as const;

export const OUTCOME = { PASS: 0, OUTBOUND_PROXY: 1, INBOUND_PROXY: 2, DNS_PROXY: 3 } as const;

/** enum sluice_step; also the index of the "captured by this step" counter. */
export const STEP = {
  NONE: 0,
  OUT_1: 1,
  OUT_2: 2,
  OUT_3: 3,
  OUT_4A: 4,
  OUT_4B: 5,
  OUT_4C: 6,
  OUT_5A: 7,
  OUT_5C: 8,
  OUT_6: 9,
  OUT_7: 10,
  OUT_8: 11,
  OUT_9: 12,
  OUT_10: 13,
  IN_LOOPBACK: 14,
  IN_1: 15,
  IN_2: 16,
  IN_3: 17,
  IN_4: 18,
  IN_5: 19,
  COUNT: 20,
} as const;

/** Decision.step text (decide.ts) for each kernel step. */
export const STEP_NAMES: Record<number, string> = {
  [STEP.OUT_1]: 'outbound.1',
  [STEP.OUT_2]: 'outbound.2',
  [STEP.OUT_3]: 'outbound.3',
  [STEP.OUT_4A]: 'outbound.4a',
  [STEP.OUT_4B]: 'outbound.4b',
  [STEP.OUT_4C]: 'outbound.4c',
  [STEP.OUT_5A]: 'outbound.5a',
  [STEP.OUT_5C]: 'outbound.5c',
  [STEP.OUT_6]: 'outbound.6',
  [STEP.OUT_7]: 'outbound.7',
  [STEP.OUT_8]: 'outbound.8',
  [STEP.OUT_9]: 'outbound.9',
  [STEP.OUT_10]: 'outbound.10',
  [STEP.IN_LOOPBACK]: 'inbound.loopback',
  [STEP.IN_1]: 'inbound.1',
  [STEP.IN_2]: 'inbound.2',
  [STEP.IN_3]: 'inbound.3',
  [STEP.IN_4]: 'inbound.4',
  [STEP.IN_5]: 'inbound.5',
};

/**
 * enum sluice_counter after the per-step ones, in the C order: the one list the indices
 * and names come from (test/unit/codec.test.ts checks each index against sluice.h).
 */
const EVENT_COUNTERS = [
  'CONNECT_NO_POLICY', 'DNS_REPLY_RESTORED', 'SOCK_STORAGE_FAILED', 'CONN_MAP_FULL', 'CONN_RECORDED',
  'CONN_DELETED', 'GETPEERNAME_RESTORED', 'ORIG_DST_RECORD', 'ORIG_DST_LOCAL', 'ORIG_DST_MISS',
  'ORIG_DST_SHORT_BUFFER', 'LISTENER_ADDED', 'LISTENER_ADD_FAILED', 'INBOUND_NO_LISTENER', 'INBOUND_ASSIGN_FAILED',
  'SK_LOOKUP_NO_POLICY', 'DNS_BIND_FAILED', 'ACCEL_ENROLLED', 'ACCEL_ENROL_FAILED', 'ACCEL_REMOVED',
  'ACCEL_REDIRECTED', 'ACCEL_REDIRECTED_BYTES', 'ACCEL_PEER_MISSING', 'ACCEL_OFF', 'SK_LOOKUP_NO_PROGRAM',
  'CONN_QUOTA_REFUSED', 'CONN_QUOTA_EXCEEDED', 'ORIG_DST_UNRECORDED', 'CONNECT_PENDING',
] as const;
export type EventCounter = (typeof EVENT_COUNTERS)[number];

/** enum sluice_counter: PASS_BASE + step counts passes, then the event counters, then MAX. */
export const COUNTER = Object.freeze({
  PASS_BASE: STEP.COUNT,
  ...(Object.fromEntries(EVENT_COUNTERS.map((name, i) => [name, 2 * STEP.COUNT + i])) as Record<EventCounter, number>),
  MAX: 2 * STEP.COUNT + EVENT_COUNTERS.length,
});

/** Counter index → the name readCounters() reports. */
export function counterNames(): string[] {
  const names: string[] = [];
  for (let i = 0; i < STEP.COUNT; i++) names.push(`captured:${STEP_NAMES[i] ?? 'none'}`);
  for (let i = 0; i < STEP.COUNT; i++) names.push(`pass:${STEP_NAMES[i] ?? 'none'}`);
  return [...names, ...EVENT_COUNTERS.map((n) => n.toLowerCase())];
}

export const POLICY_FLAG = {
  DNS_CAPTURE: 1 << 0,
  OUT_INCLUDE_ALL: 1 << 1,
  KEEP_LOOPBACK4: 1 << 2,
  KEEP_LOOPBACK6: 1 << 3,
  IN_INCLUDE_ALL: 1 << 4,
  IN_INCLUDE_LIST: 1 << 5,
  EXCLUDE_LOOPBACK_IF: 1 << 6,
  ROUTE_CHECK: 1 << 7,
  HAS_BINDS: 1 << 8,
  HAS_INTERFACES: 1 << 9,
  NO_OUT_EXCLUDE_CIDRS: 1 << 10,
  NO_OUT_INCLUDE_CIDRS: 1 << 11,
} as const;

export const PORT_SET = { OUT_EXCLUDE: 1, OUT_INCLUDE: 2, IN_INCLUDE: 3, IN_EXCLUDE: 4 } as const;
export const CIDR_SET = { OUT_INCLUDE: 1, OUT_EXCLUDE: 2, ROUTE: 3 } as const;
export const IFACE_SET = { EXCLUDE: 1, REROUTE: 2 } as const;
export const SOCK_FLAG = { CAPTURED: 1 << 0, ACCEPTED: 1 << 1, CONN_RECORDED: 1 << 2, ACCEL_ENROLLED: 1 << 3, ACCEL_TCP: 1 << 4 } as const;
/** enum sluice_global_flag */
export const GLOBAL_FLAG = { ACCELERATE: 1 << 0 } as const;

export interface Layout {
  size: number;
  offsets: Record<string, number>;
}

/** Every struct of sluice.h: size and the offset of each named field. */
export const LAYOUTS = {
  sluice_pod_policy: {
    size: 168,
    offsets: { pod_id: 0, flags: 4, port_outbound: 8, port_inbound: 10, port_tunnel: 12, port_dns: 14, n_uids: 16, n_gids: 17, n_ip4: 18, n_ip6: 19, uids: 24, gids: 56, ip4: 88, ip6: 104 },
  },
  sluice_port_key: { size: 8, offsets: { pod_id: 0, set: 4, port: 6 } },
  sluice_cidr_key: { size: 28, offsets: { prefixlen: 0, pod_id: 4, set: 8, family: 9, addr: 12 } },
  sluice_iface_key: { size: 12, offsets: { pod_id: 0, set: 4, ifindex: 8 } },
  sluice_bind_key: { size: 24, offsets: { pod_id: 0, port: 4, family: 6, addr: 8 } },
  sluice_orig_dst: { size: 32, offsets: { addr: 0, port: 16, family: 18, outcome: 19, step: 20, owner_cookie: 24 } },
  sluice_conn_key: { size: 48, offsets: { netns_cookie: 0, src: 8, dst: 24, sport: 40, dport: 42, family: 44 } },
  sluice_sock_state: { size: 88, offsets: { orig: 0, flags: 32, conn: 40 } },
  sluice_dns_state: { size: 56, offsets: { orig: 0, listener: 32, listener_port: 48, listener_family: 50 } },
  sluice_listener_key: { size: 16, offsets: { netns_cookie: 0, port: 8, family: 10 } },
  sluice_sk_lookup_config: { size: 8, offsets: { netns_cookie: 0 } },
  sluice_global: { size: 8, offsets: { flags: 0, conn_quota: 4 } },
  sluice_addr_key: { size: 20, offsets: { family: 0, addr: 4 } },
} as const satisfies Record<string, Layout>;
