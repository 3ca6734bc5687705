// The loader's decisions about pinned maps (map-pins.ts decidePinned) and SluiceMaps'
// own logic (maps.ts), against the fake maps: the pinned map is a fake made at some
// capacity, the build's shape is the table's.
import test from 'ava';
import { COUNTER, decodeOrigDst, encodeConnKey, encodeOrigDst, encodeU32, OUTCOME } from '../../src/bpf/codec.js';
import { fakeMaps } from '../../src/bpf/fake/maps.js';
import { decidePinned } from '../../src/bpf/map-pins.js';
import { DEFAULT_CAPACITY, MAPS, shapeOf, type AnyMapName, type Capacity } from '../../src/bpf/map-table.js';
import { LoaderError } from '../../src/bpf/objects.js';
import { MapFullError } from '../../src/dataplane/errors.js';

const where = { pinPath: '/sys/fs/bpf/t/maps/x', bpffsDir: '/sys/fs/bpf/t' };
const cap = (c: Partial<Capacity> = {}): Capacity => ({ ...DEFAULT_CAPACITY, ...c });
/** The build's shape: the object as built (bpf/maps.h sizes). */
const built = (name: AnyMapName) => shapeOf(name, cap({ accelerate: true }));
/** The shape of a map an earlier install pinned at capacity `c`. */
const pinnedAt = (name: 'sluice_pods' | 'sluice_accel' | 'sluice_counters' | 'sluice_conns', c: Partial<Capacity>) => fakeMaps(c).raw.get(name)!.shape;

test('nothing pinned: the map is made at the configured capacity, fixed maps as built', (t) => {
  t.deepEqual(decidePinned('sluice_pods', null, built('sluice_pods'), cap({ pods: 64 }), where), { maxEntries: 64 });
  t.deepEqual(decidePinned('sluice_addrs', null, built('sluice_addrs'), cap({ pods: 64 }), where), { maxEntries: 2 * 4 * 64 });
  t.deepEqual(decidePinned('sluice_counters', null, built('sluice_counters'), cap(), where), { maxEntries: COUNTER.MAX });
});

test('a pinned map keeps its capacity, and a configured change is logged, not applied', (t) => {
  const d = decidePinned('sluice_pods', pinnedAt('sluice_pods', { pods: 100 }), built('sluice_pods'), cap({ pods: 200 }), where);
  t.is(d.maxEntries, 100);
  t.regex(d.note!, /keeping the pinned capacity 100 \(configured 200\); uninstall to change it/);
  t.deepEqual(decidePinned('sluice_pods', pinnedAt('sluice_pods', { pods: 100 }), built('sluice_pods'), cap({ pods: 100 }), where), { maxEntries: 100 });
});

test('a pinned map of another layout is refused by name, with what differs', (t) => {
  const pinned = { ...pinnedAt('sluice_conns', {}), valueSize: 24 };
  const err = t.throws(() => decidePinned('sluice_conns', pinned, built('sluice_conns'), cap(), where), { instanceOf: LoaderError });
  t.is((err as LoaderError).code, 'PINNED_MAP_INCOMPATIBLE');
  t.regex(err!.message, /map sluice_conns pinned at \/sys\/fs\/bpf\/t\/maps\/x .*valueSize 24 pinned, 32 in this build.*sluice uninstall --bpffs \/sys\/fs\/bpf\/t/);
  // A fixed-size map must match in size too: counters of another build.
  const fewer = { ...pinnedAt('sluice_counters', {}), maxEntries: COUNTER.MAX - 1 };
  t.throws(() => decidePinned('sluice_counters', fewer, built('sluice_counters'), cap(), where), { message: /maxEntries \d+ pinned, \d+ in this build/ });
});

test('sluice_accel: minimal while acceleration is off; turned on, the minimal map is replaced; a full one is never shrunk', (t) => {
  const minimal = pinnedAt('sluice_accel', { accelerate: false });
  t.is(minimal.maxEntries, MAPS.sluice_accel.minimal ?? -1);
  t.deepEqual(decidePinned('sluice_accel', null, built('sluice_accel'), cap(), where), { maxEntries: 1 }, 'a fresh install with acceleration off');
  t.deepEqual(decidePinned('sluice_accel', minimal, built('sluice_accel'), cap(), where), { maxEntries: 1 }, 'off, and minimal: kept');
  t.deepEqual(decidePinned('sluice_accel', minimal, built('sluice_accel'), cap({ accelerate: true }), where), { maxEntries: DEFAULT_CAPACITY.connections, replace: true });
  const full = pinnedAt('sluice_accel', { accelerate: true });
  const off = decidePinned('sluice_accel', full, built('sluice_accel'), cap(), where);
  t.is(off.maxEntries, DEFAULT_CAPACITY.connections, 'sockets may be enrolled in it: kept');
  t.falsy(off.replace);
  t.deepEqual(decidePinned('sluice_accel', full, built('sluice_accel'), cap({ accelerate: true }), where), { maxEntries: DEFAULT_CAPACITY.connections });
});

test('SluiceMaps: a full map is MapFullError naming the flag that sizes it', (t) => {
  const { maps } = fakeMaps({ pods: 1 });
  maps.update('sluice_addrs', Buffer.alloc(20, 1), Buffer.alloc(8));
  for (let i = 2; i <= 8; i++) maps.update('sluice_addrs', Buffer.alloc(20, i), Buffer.alloc(8));
  const err = t.throws(() => maps.update('sluice_addrs', Buffer.alloc(20, 9), Buffer.alloc(8)), { instanceOf: MapFullError });
  t.regex(err!.message, /sluice_addrs is full \(8 entries\)/);
  t.regex((err as MapFullError).hint!, /--max-pods/);
});

test('SluiceMaps: a shorter value (an older layout) is written with a zero tail; lookups decode', (t) => {
  const { maps } = fakeMaps();
  const client = { ip: '10.1.0.2', port: 40000 };
  const listener = { ip: '10.1.0.2', port: 15001 };
  const orig = { destination: { ip: '10.2.0.5', port: 80 }, family: 4 as const, outcome: OUTCOME.OUTBOUND_PROXY, step: 13, ownerCookie: 7n };
  maps.update('sluice_conns', encodeConnKey({ client, listener, netnsCookie: 0n }), encodeOrigDst(orig).subarray(0, 24));
  t.deepEqual(maps.originalDestination(client, listener), { ...orig, ownerCookie: 0n }, 'the cut-off owner cookie reads as zero');
  t.deepEqual(decodeOrigDst(maps.lookup('sluice_conns', encodeConnKey({ client, listener, netnsCookie: 0n }))!), { ...orig, ownerCookie: 0n });
  t.is(maps.originalDestination(listener, client), null);
});

test('SluiceMaps: counters are summed over every CPU and named', (t) => {
  const { maps } = fakeMaps({}, 3);
  const v = Buffer.alloc(8 * 3);
  v.writeBigUInt64LE(2n, 0);
  v.writeBigUInt64LE(3n, 8);
  v.writeBigUInt64LE(5n, 16);
  maps.update('sluice_counters', encodeU32(COUNTER.CONN_RECORDED), v);
  const c = maps.counters();
  t.is(c.conn_recorded, 10n);
  t.is(c.conn_deleted, 0n);
  t.is(Object.keys(c).length, COUNTER.MAX);
  t.throws(() => maps.update('sluice_counters', encodeU32(COUNTER.MAX), v), { message: /E2BIG/ }, 'an array has no index past max_entries');
});

test('SluiceMaps: closed, every map refuses', (t) => {
  const { maps } = fakeMaps();
  maps.close();
  t.throws(() => maps.keys('sluice_pods'), { instanceOf: LoaderError, message: /not open/ });
});
