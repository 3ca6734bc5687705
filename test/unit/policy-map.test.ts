// PolicyMaps (src/bpf/policy-map.ts) against the fake maps: what the kernel maps hold after
// each apply, stage/rollback, removal, a full set map and garbage collection.
import test from 'ava';
import { decodePodPolicy, decodePortKey, decodeU32, decodeU64, encodeAddrKey, encodePortKey, encodeU32, encodeU64, LAYOUTS, PORT_SET } from '../../src/bpf/codec.js';
import { fakeMaps } from '../../src/bpf/fake/maps.js';
import { MAPS, SET_MAPS } from '../../src/bpf/map-table.js';
import type { SluiceMaps } from '../../src/bpf/maps.js';
import { PolicyMaps, type PodNetns } from '../../src/bpf/policy-map.js';
import { MapFullError } from '../../src/dataplane/errors.js';
import { makePolicy } from '../support/policy.js';

const NETNS: PodNetns = { ifindex: (name) => (name === 'lo' ? 1 : name === 'eth0' ? 2 : null), routes: () => [] };
const A = 0x1111n;
const B = 0x2222n;

/** The pod id of every set entry, by map. */
function sets(maps: SluiceMaps): Record<string, number[]> {
  const podId = (m: (typeof SET_MAPS)[number], k: Buffer) => decodeU32(k.subarray((LAYOUTS[MAPS[m].key as keyof typeof LAYOUTS].offsets as Record<string, number>).pod_id));
  return Object.fromEntries(SET_MAPS.map((m) => [m, maps.keys(m).map((k) => podId(m, k)).sort()]));
}

const podIdsIn = (maps: SluiceMaps) => new Set(Object.values(sets(maps)).flat());
const addrs = (maps: SluiceMaps) => maps.keys('sluice_addrs').length;

test('apply writes the pod entry and its sets under a fresh pod id, and the pod addresses', (t) => {
  const { maps } = fakeMaps();
  const p = new PolicyMaps(maps);
  const r = p.apply(A, makePolicy({ excludeOutboundPorts: [22, 23] }), NETNS);
  t.true(r.written);
  t.true(r.podId > 0);
  t.is(p.get(A)!.podId, r.podId);
  const ports = maps.keys('sluice_ports').map(decodePortKey);
  t.deepEqual(ports.filter((k) => k.set === PORT_SET.OUT_EXCLUDE).map((k) => k.port).sort(), [22, 23]);
  t.true(ports.every((k) => k.podId === r.podId));
  t.is(addrs(maps), 2, 'one IPv4 and one IPv6 pod address');
  t.is(decodeU64(maps.lookup('sluice_addrs', encodeAddrKey(makePolicy().podIPs[0]!))!), A);
});

test('the same policy again writes nothing; a changed one moves to a new pod id and drops the old sets', (t) => {
  const { maps, raw } = fakeMaps();
  const p = new PolicyMaps(maps);
  const first = p.apply(A, makePolicy({ excludeOutboundPorts: [22] }), NETNS);
  const writes = raw.get('sluice_pods')!.updates;
  t.false(p.apply(A, makePolicy({ excludeOutboundPorts: [22] }), NETNS).written);
  t.is(raw.get('sluice_pods')!.updates, writes, 'no write for an unchanged policy');
  const second = p.apply(A, makePolicy({ excludeOutboundPorts: [80] }), NETNS);
  t.not(second.podId, first.podId);
  t.deepEqual([...podIdsIn(maps)], [second.podId], 'only the new id has set entries');
  t.truthy(maps.lookup('sluice_ports', encodePortKey({ podId: second.podId, set: PORT_SET.OUT_EXCLUDE, port: 80 })));
});

test('rollback puts the pod back exactly as it was: entry, sets and addresses', (t) => {
  const { maps } = fakeMaps();
  const p = new PolicyMaps(maps);
  p.apply(A, makePolicy({ excludeOutboundPorts: [22] }), NETNS);
  const before = { pod: maps.lookup('sluice_pods', encodeU64(A))!, sets: sets(maps), addrs: maps.keys('sluice_addrs').map((k) => k.toString('hex')).sort() };
  const staged = p.stage(A, makePolicy({ excludeOutboundPorts: [80, 81], podIPs: ['10.9.9.9'] }), NETNS);
  t.true(staged.written);
  staged.rollback();
  t.deepEqual(maps.lookup('sluice_pods', encodeU64(A)), before.pod);
  t.deepEqual(sets(maps), before.sets);
  t.deepEqual(maps.keys('sluice_addrs').map((k) => k.toString('hex')).sort(), before.addrs);
});

test('a full set map fails the apply with MapFullError and leaves the previous policy in force', (t) => {
  const { maps } = fakeMaps({ setEntries: 4 });
  const p = new PolicyMaps(maps);
  const first = p.apply(A, makePolicy({ excludeOutboundPorts: [22] }), NETNS);
  const err = t.throws(() => p.apply(A, makePolicy({ excludeOutboundPorts: [1, 2, 3, 4, 5] }), NETNS), { instanceOf: MapFullError });
  t.regex(err!.message, /sluice_ports is full \(4 entries\)/);
  t.regex((err as MapFullError).hint!, /port, CIDR, interface and bind sets/, 'the set maps have no flag: the hint says to shorten the lists');
  t.is(p.get(A)!.podId, first.podId);
  t.deepEqual([...podIdsIn(maps)], [first.podId], 'the new sets written before the failure were deleted');
});

test('remove deletes the entry, then the sets and the addresses of that pod only', (t) => {
  const { maps } = fakeMaps();
  const p = new PolicyMaps(maps);
  p.apply(A, makePolicy({ excludeOutboundPorts: [22] }), NETNS);
  const b = p.apply(B, makePolicy({ excludeOutboundPorts: [22], podIPs: ['10.1.0.9'] }), NETNS);
  t.true(p.remove(A));
  t.false(p.remove(A));
  t.deepEqual([...p.entries().keys()], [B]);
  t.deepEqual([...podIdsIn(maps)], [b.podId]);
  t.is(addrs(maps), 1);
});

test('garbage of a crash is collected, and its pod ids are not reused before that', (t) => {
  const { maps } = fakeMaps();
  const p = new PolicyMaps(maps);
  const live = p.apply(A, makePolicy(), NETNS);
  // What a writer killed mid-apply leaves: sets under an id no pod entry names, and an
  // address of a netns without a policy.
  const orphanId = live.podId + 1;
  maps.update('sluice_ports', encodePortKey({ podId: orphanId, set: PORT_SET.OUT_EXCLUDE, port: 9 }), encodeU32(1));
  maps.update('sluice_addrs', encodeAddrKey('10.7.7.7'), encodeU64(0x9999n));
  // A restarted writer reads the ids in use from the maps: the orphan's id is skipped.
  const again = new PolicyMaps(maps);
  const next = again.apply(B, makePolicy({ podIPs: ['10.1.0.9'] }), NETNS);
  t.not(next.podId, orphanId);
  t.deepEqual(again.collectGarbage(), { sets: 1, addrs: 1 });
  t.deepEqual(again.collectGarbage(), { sets: 0, addrs: 0 });
  t.deepEqual([...podIdsIn(maps)].sort(), [live.podId, next.podId].sort());
  t.is(decodePodPolicy(maps.lookup('sluice_pods', encodeU64(A))!).podId, live.podId);
});
