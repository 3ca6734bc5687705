// src/bpf/codec.ts must describe bpf/sluice.h exactly: the test compiles the header into
// a tiny C program that prints every size, offset and enum value, and compares. Then the
// encoders are checked for the byte-level rules the kernel relies on.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CIDR_KEY_FIXED_BITS,
  CIDR_SET,
  COUNTER,
  counterNames,
  decodeAccelKey,
  decodeAddrKey,
  decodeBindKey,
  decodeGlobal,
  decodeCidrKey,
  decodeConnKey,
  decodeIfaceKey,
  decodeListenerKey,
  decodeOrigDst,
  decodePodPolicy,
  decodePortKey,
  encodeAccelKey,
  encodeAddrKey,
  encodeBindKey,
  encodeGlobal,
  encodeCidrKey,
  encodeConnKey,
  encodeIfaceKey,
  encodeListenerKey,
  encodeOrigDst,
  encodePodPolicy,
  encodePortKey,
  encodeSkLookupConfig,
  FAMILY,
  GLOBAL_FLAG,
  IFACE_SET,
  LAYOUTS,
  MAX_POD_IPS,
  MAX_PROXY_IDS,
  NO_OWNER,
  OUTCOME,
  POLICY_FLAG,
  PORT_SET,
  SOCK_FLAG,
  STEP,
  wireAddress,
  type PodPolicyValue,
} from '../../src/bpf/codec.js';
import { encodePolicy, type PodNetns } from '../../src/bpf/policy-map.js';
import { makePolicy } from '../support/policy.js';

const HEADER = fileURLToPath(new URL('../../bpf/sluice.h', import.meta.url));

/** Every field whose offset the TS side uses, per struct, straight from LAYOUTS. */
function layoutProgram(): string {
  const lines: string[] = [];
  const structs = Object.entries(LAYOUTS);
  structs.forEach(([name, layout], i) => {
    const fields = Object.keys(layout.offsets).map((f) => `"\\"${f}\\":%zu"`);
    const args = Object.keys(layout.offsets).map((f) => `offsetof(struct ${name}, ${f})`);
    lines.push(`  printf("\\"${name}\\":{\\"size\\":%zu,\\"offsets\\":{" ${fields.join(' "," ')} "}}${i < structs.length - 1 ? ',' : ''}", sizeof(struct ${name}), ${args.join(', ')});`);
  });
  return lines.join('\n');
}

/** C expressions for every constant the TS side mirrors. */
const CONSTANTS: Record<string, [string, number]> = {};
function constant(cName: string, tsValue: number): void {
  CONSTANTS[cName] = [cName, tsValue];
}
constant('SLUICE_MAX_PROXY_IDS', MAX_PROXY_IDS);
constant('SLUICE_MAX_POD_IPS', MAX_POD_IPS);
constant('SLUICE_NO_OWNER', NO_OWNER);
constant('SLUICE_CIDR_KEY_FIXED_BITS', CIDR_KEY_FIXED_BITS);
for (const [k, v] of Object.entries(FAMILY)) constant(`SLUICE_FAMILY_${k}`, v);
for (const [k, v] of Object.entries(OUTCOME)) constant(`SLUICE_OUTCOME_${k}`, v);
for (const [k, v] of Object.entries(STEP)) constant(`SLUICE_STEP_${k}`, v);
for (const [k, v] of Object.entries(COUNTER)) constant(`SLUICE_COUNTER_${k}`, v);
for (const [k, v] of Object.entries(POLICY_FLAG)) constant(`SLUICE_POLICY_${k}`, v);
for (const [k, v] of Object.entries(PORT_SET)) constant(`SLUICE_PORTS_${k}`, v);
for (const [k, v] of Object.entries(CIDR_SET)) constant(`SLUICE_CIDRS_${k}`, v);
for (const [k, v] of Object.entries(IFACE_SET)) constant(`SLUICE_IFACES_${k}`, v);
for (const [k, v] of Object.entries(SOCK_FLAG)) constant(`SLUICE_SOCK_${k}`, v);
for (const [k, v] of Object.entries(GLOBAL_FLAG)) constant(`SLUICE_GLOBAL_${k}`, v);

interface CFacts {
  layouts: Record<string, { size: number; offsets: Record<string, number> }>;
  constants: Record<string, number>;
}

function compileAndRun(): CFacts {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-codec-'));
  try {
    const names = Object.keys(CONSTANTS);
    const src = [
      '#include <stddef.h>',
      '#include <stdio.h>',
      `#include "${HEADER}"`,
      'int main(void) {',
      '  printf("{\\"layouts\\":{");',
      layoutProgram(),
      '  printf("},\\"constants\\":{");',
      ...names.map((n, i) => `  printf("\\"${n}\\":%lld${i < names.length - 1 ? ',' : ''}", (long long)(${n}));`),
      '  printf("}}\\n");',
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'layout.c'), src);
    const cc = process.env.CC ?? 'cc';
    try {
      execFileSync(cc, ['-Wall', '-Werror', '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`compiling bpf/sluice.h with \`${cc}\` failed (a C compiler and linux-libc-dev are needed): ${e.stderr?.toString() ?? e.message}`);
    }
    return JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' })) as CFacts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const facts = compileAndRun();

test('every struct in codec.ts has the size and field offsets of bpf/sluice.h', (t) => {
  for (const [name, layout] of Object.entries(LAYOUTS)) {
    t.deepEqual({ size: layout.size, offsets: { ...layout.offsets } }, facts.layouts[name], name);
  }
});

test('every enum value and constant in codec.ts equals the one in bpf/sluice.h', (t) => {
  for (const [name, [, ts]] of Object.entries(CONSTANTS)) t.is(facts.constants[name], ts, name);
});

test('sluice.h has no struct that codec.ts leaves out', (t) => {
  const declared = [...readFileSync(HEADER, 'utf8').matchAll(/^struct (sluice_\w+) \{/gm)].map((m) => m[1]);
  t.deepEqual(declared.sort(), Object.keys(LAYOUTS).sort());
});

test('counter names are unique and name every counter index', (t) => {
  const names = counterNames();
  t.is(names.length, COUNTER.MAX);
  t.is(new Set(names).size, names.length);
  t.is(names[STEP.OUT_10], 'captured:outbound.10');
  t.is(names[COUNTER.PASS_BASE + STEP.OUT_4B], 'pass:outbound.4b');
  t.is(names[COUNTER.CONN_MAP_FULL], 'conn_map_full');
});

const POLICY: PodPolicyValue = {
  podId: 7,
  flags: POLICY_FLAG.OUT_INCLUDE_ALL | POLICY_FLAG.IN_INCLUDE_ALL,
  ports: { outbound: 15001, inbound: 15006, tunnel: 15008, dns: 15053 },
  uids: [1337, 1338],
  gids: [1337],
  ip4: ['10.1.0.2'],
  ip6: ['fd00::2'],
};

test('a pod policy round-trips, with ports and addresses in network order', (t) => {
  const b = encodePodPolicy(POLICY);
  t.is(b.length, LAYOUTS.sluice_pod_policy.size);
  t.deepEqual(decodePodPolicy(b), POLICY);
  t.deepEqual([...b.subarray(8, 10)], [0x3a, 0x99], 'P_OUT 15001 is big-endian');
  t.deepEqual([...b.subarray(88, 92)], [10, 1, 0, 2], 'pod IPv4 in network order');
  t.is(b[104], 0xfd, 'pod IPv6 in network order');
});

test('a pod policy with too many proxy ids or pod IPs is refused, not truncated', (t) => {
  t.throws(() => encodePodPolicy({ ...POLICY, uids: Array.from({ length: MAX_PROXY_IDS + 1 }, (_, i) => 1000 + i) }), { message: /at most 8 proxy uids/ });
  t.throws(() => encodePodPolicy({ ...POLICY, ip4: Array.from({ length: MAX_POD_IPS + 1 }, (_, i) => `10.0.0.${i + 1}`) }), { message: /at most 4 pod IPs/ });
  t.throws(() => encodePodPolicy({ ...POLICY, ip4: ['fd00::9'] }), { message: /not IPv4/ });
});

test('set keys round-trip', (t) => {
  t.deepEqual(decodePortKey(encodePortKey({ podId: 3, set: PORT_SET.IN_EXCLUDE, port: 15090 })), { podId: 3, set: PORT_SET.IN_EXCLUDE, port: 15090 });
  t.deepEqual(decodeIfaceKey(encodeIfaceKey({ podId: 3, set: IFACE_SET.REROUTE, ifindex: 42 })), { podId: 3, set: IFACE_SET.REROUTE, ifindex: 42 });
  t.deepEqual(decodeBindKey(encodeBindKey({ podId: 3, address: '10.9.0.1', port: null })), { podId: 3, address: '10.9.0.1', port: null });
  t.deepEqual(decodeBindKey(encodeBindKey({ podId: 3, address: 'fd00::9', port: 8443 })), { podId: 3, address: 'fd00::9', port: 8443 });
});

test('a CIDR key matches the pod id, set and family exactly, then the prefix', (t) => {
  const k = encodeCidrKey({ podId: 5, set: CIDR_SET.OUT_EXCLUDE, cidr: '10.2.0.0/16' });
  t.is(k.readUInt32LE(0), CIDR_KEY_FIXED_BITS + 16);
  t.deepEqual(decodeCidrKey(k), { podId: 5, set: CIDR_SET.OUT_EXCLUDE, cidr: '10.2.0.0/16' });
  t.deepEqual(decodeCidrKey(encodeCidrKey({ podId: 5, set: CIDR_SET.OUT_INCLUDE, cidr: 'fd00:2::/64' })).cidr, 'fd00:2::/64');
  // An IPv4-mapped CIDR is the IPv4 CIDR it maps: connect6 sees such destinations as IPv4.
  t.deepEqual(decodeCidrKey(encodeCidrKey({ podId: 5, set: CIDR_SET.OUT_INCLUDE, cidr: '::ffff:10.2.0.0/112' })).cidr, '10.2.0.0/16');
});

test('an IPv4-mapped address is stored as IPv4, as it is IPv4 on the wire', (t) => {
  const w = wireAddress('::ffff:10.2.0.5');
  t.is(w.family, 4);
  t.deepEqual([...w.bytes.subarray(0, 4)], [10, 2, 0, 5]);
  t.true(w.bytes.subarray(4).every((b) => b === 0));
});

test('a connection key keeps the netns cookie only for loopback listeners', (t) => {
  const loop = decodeConnKey(encodeConnKey({ client: { ip: '127.0.0.1', port: 40000 }, listener: { ip: '127.0.0.1', port: 15006 }, netnsCookie: 99n }));
  t.is(loop.netnsCookie, 99n);
  const loop6 = decodeConnKey(encodeConnKey({ client: { ip: '::1', port: 40000 }, listener: { ip: '::1', port: 15006 }, netnsCookie: 99n }));
  t.is(loop6.netnsCookie, 99n);
  const pod = decodeConnKey(encodeConnKey({ client: { ip: '10.1.0.2', port: 40000 }, listener: { ip: '10.1.0.2', port: 15001 }, netnsCookie: 99n }));
  t.is(pod.netnsCookie, 0n);
  t.deepEqual(pod.client, { ip: '10.1.0.2', port: 40000 });
  t.deepEqual(pod.listener, { ip: '10.1.0.2', port: 15001 });
});

test('an acceleration key keeps the netns cookie when either end is loopback; the peer key swaps the ends', (t) => {
  const app = { ip: '127.0.0.6', port: 40000 };
  const pod = { ip: '10.1.0.2', port: 8080 };
  const mine = encodeAccelKey({ self: app, peer: pod, netnsCookie: 7n });
  const theirs = encodeAccelKey({ self: pod, peer: app, netnsCookie: 7n });
  t.deepEqual(decodeAccelKey(mine), { self: app, peer: pod, netnsCookie: 7n });
  t.deepEqual(decodeAccelKey(theirs), { self: pod, peer: app, netnsCookie: 7n });
  const crossPod = decodeAccelKey(encodeAccelKey({ self: { ip: '10.1.0.1', port: 40000 }, peer: pod, netnsCookie: 7n }));
  t.is(crossPod.netnsCookie, 0n, 'two pods: two netns, so pod addresses alone');
  t.is(decodeAccelKey(encodeAccelKey({ self: { ip: '::ffff:10.1.0.1', port: 1 }, peer: pod, netnsCookie: 7n })).self.ip, '10.1.0.1');
  t.is(decodeAddrKey(encodeAddrKey('fd00::2')), 'fd00::2');
  t.is(encodeAddrKey('10.1.0.2')[0], FAMILY.IPV4);
  t.is(decodeGlobal(encodeGlobal(GLOBAL_FLAG.ACCELERATE)), GLOBAL_FLAG.ACCELERATE);
});

test('original destinations, listener keys and the sk_lookup config round-trip', (t) => {
  const o = { destination: { ip: 'fd00:2::5', port: 80 }, family: 6 as const, outcome: OUTCOME.OUTBOUND_PROXY, step: STEP.OUT_10, ownerCookie: 1n << 40n };
  t.deepEqual(decodeOrigDst(encodeOrigDst(o)), o);
  t.deepEqual(decodeListenerKey(encodeListenerKey({ netnsCookie: 4096n, port: 15006, family: 6 })), { netnsCookie: 4096n, port: 15006, family: 6 });
  t.is(encodeSkLookupConfig(12n).length, LAYOUTS.sluice_sk_lookup_config.size);
});

test('bad ports and addresses are refused with the value in the message', (t) => {
  t.throws(() => encodePortKey({ podId: 1, set: PORT_SET.OUT_EXCLUDE, port: 70000 }), { message: /70000 is not a port/ });
  t.throws(() => wireAddress('10.1'), { message: /10.1 is not an IP address/ });
});

// ------------------------------------------------------------ policy encoding

const NETNS: PodNetns = {
  ifindex: (name) => ({ lo: 1, eth0: 2, net1: 3 })[name] ?? null,
  routes: () => [
    { dst: 'default', family: 4, dev: 'eth0' },
    { dst: '10.1.0.0/24', family: 4, dev: 'eth0' },
    { dst: '192.168.0.0/16', family: 4, dev: 'net1' },
    { dst: 'default', family: 6, dev: 'eth0' },
  ],
};

test('the default policy: capture everything out and in, inbound exclusions as a port set', (t) => {
  const e = encodePolicy(makePolicy(), 9, NETNS);
  t.is(e.value.flags, POLICY_FLAG.OUT_INCLUDE_ALL | POLICY_FLAG.IN_INCLUDE_ALL | POLICY_FLAG.NO_OUT_EXCLUDE_CIDRS);
  t.deepEqual(e.value.ip4, ['10.1.0.2']);
  t.deepEqual(e.value.ip6, ['fd00::2']);
  t.deepEqual(e.ports.map((p) => [p.set, p.port]), [[PORT_SET.IN_EXCLUDE, 15090], [PORT_SET.IN_EXCLUDE, 15021], [PORT_SET.IN_EXCLUDE, 15020]]);
  t.deepEqual(e.cidrs, []);
  t.true([...e.ports, ...e.ifaces].every((k) => k.podId === 9));
});

test('a loopback include CIDR keeps loopback capture for its own family only', (t) => {
  const e = encodePolicy(makePolicy({ includeOutboundIPRanges: ['127.0.0.0/8', '10.2.0.0/16', 'fd00:2::/64'] }), 1, NETNS);
  t.is(e.value.flags & (POLICY_FLAG.KEEP_LOOPBACK4 | POLICY_FLAG.KEEP_LOOPBACK6 | POLICY_FLAG.OUT_INCLUDE_ALL), POLICY_FLAG.KEEP_LOOPBACK4);
  t.deepEqual(e.cidrs.map((c) => c.key.cidr), ['127.0.0.0/8', '10.2.0.0/16', 'fd00:2::/64']);
});

test('an empty CIDR list is a flag, so the programs skip its lookup; a list or \'*\' is not', (t) => {
  const NO = POLICY_FLAG.NO_OUT_EXCLUDE_CIDRS | POLICY_FLAG.NO_OUT_INCLUDE_CIDRS;
  const flags = (o: Parameters<typeof makePolicy>[0]) => encodePolicy(makePolicy(o), 1, NETNS).value.flags & (NO | POLICY_FLAG.OUT_INCLUDE_ALL);
  t.is(flags({}), POLICY_FLAG.OUT_INCLUDE_ALL | POLICY_FLAG.NO_OUT_EXCLUDE_CIDRS, "include '*', no excludes");
  t.is(flags({ includeOutboundIPRanges: [] }), NO, 'include empty: no CIDR capture, nothing to look up');
  t.is(flags({ includeOutboundIPRanges: ['10.2.0.0/16'], excludeOutboundIPRanges: ['10.2.3.0/24'] }), 0, 'both lists looked up');
  t.is(flags({ excludeOutboundIPRanges: ['10.2.3.0/24'] }), POLICY_FLAG.OUT_INCLUDE_ALL);
});

test('excluded interfaces: lo as a flag, others as interface and route sets', (t) => {
  const e = encodePolicy(makePolicy({ excludeInterfaces: ['lo', 'net1'], rerouteInterfaces: ['eth9'] }), 1, NETNS);
  const f = e.value.flags;
  t.truthy(f & POLICY_FLAG.EXCLUDE_LOOPBACK_IF);
  t.truthy(f & POLICY_FLAG.ROUTE_CHECK);
  t.truthy(f & POLICY_FLAG.HAS_INTERFACES);
  t.deepEqual(e.ifaces, [{ podId: 1, set: IFACE_SET.EXCLUDE, ifindex: 3 }], 'lo never gets inbound traffic; eth9 does not exist');
  const routes = e.cidrs.filter((c) => c.key.set === CIDR_SET.ROUTE).map((c) => [c.key.cidr, c.value]);
  t.deepEqual(routes, [['0.0.0.0/0', 0], ['10.1.0.0/24', 0], ['192.168.0.0/16', 1], ['::/0', 0]]);
});

test('no inbound capture, DNS capture and Sidecar binds become flags', (t) => {
  const e = encodePolicy(makePolicy({ includeInboundPorts: [], dnsCapture: true, excludeOutboundBinds: [{ address: '10.9.0.1', port: null }] }), 1, NETNS);
  t.is(e.value.flags & (POLICY_FLAG.IN_INCLUDE_ALL | POLICY_FLAG.IN_INCLUDE_LIST), 0);
  t.truthy(e.value.flags & POLICY_FLAG.DNS_CAPTURE);
  t.truthy(e.value.flags & POLICY_FLAG.HAS_BINDS);
  t.deepEqual(e.binds, [{ podId: 1, address: '10.9.0.1', port: null }]);
  const listed = encodePolicy(makePolicy({ includeInboundPorts: [8080, 8080] }), 1, NETNS);
  t.truthy(listed.value.flags & POLICY_FLAG.IN_INCLUDE_LIST);
  t.deepEqual(listed.ports.filter((p) => p.set === PORT_SET.IN_INCLUDE).map((p) => p.port), [8080], 'duplicates collapse');
});
