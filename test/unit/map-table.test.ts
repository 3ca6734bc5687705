// src/bpf/map-table.ts must describe the maps the built objects declare: the test reads
// each object's BTF (`bpftool -j btf dump file`), the way codec.test.ts compiles sluice.h
// for the structs, and compares name, type, key and value type and size, flags and the
// built max_entries with the table. Then the rules derived from the table.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYOUTS } from '../../src/bpf/abi.js';
import {
  builtEntries,
  capacityFlag,
  capacityOf,
  DEFAULT_CAPACITY,
  LAYOUT_SIZES,
  MAP_NAMES,
  MAPS,
  SET_MAPS,
  SIZED_MAPS,
  type AnyMapName,
  type Layout,
} from '../../src/bpf/map-table.js';
import { LOADER_OBJECTS } from '../../src/bpf/objects.js';
import { MAP_TYPES } from '../../src/bpf/probe-facts.js';

const BUILD = fileURLToPath(new URL('../../bpf/build/', import.meta.url));

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number }[];
  vars?: { type_id: number }[];
}

/** What one object's BTF says of a map. */
interface BtfMap {
  type: number;
  maxEntries: number;
  flags: number;
  key: { name: string; size: number };
  value: { name: string; size: number };
}

function btfMaps(object: string): Map<string, BtfMap> {
  const path = join(BUILD, `${object}.bpf.o`);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`make -C bpf\` first`);
  let out: string;
  try {
    out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', path], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (err) {
    throw new Error(`bpftool (needed to read the objects' BTF) failed: ${(err as Error).message}`);
  }
  const types = new Map((JSON.parse(out) as { types: BtfType[] }).types.map((t) => [t.id, t]));
  const at = (id: number) => types.get(id)!;
  // __uint(x, N) is a pointer to an int array of N elements.
  const uint = (id: number) => at(at(id).type_id!).nr_elems!;
  // __type(x, T) is a pointer to T: its name (the first typedef, or the struct) and size.
  const typeOf = (id: number): { name: string; size: number } => {
    let t = at(at(id).type_id!);
    const name = t.name;
    while (t.kind === 'TYPEDEF' || t.kind === 'CONST' || t.kind === 'VOLATILE') t = at(t.type_id!);
    return { name, size: t.size! };
  };
  const maps = new Map<string, BtfMap>();
  const sec = [...types.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps');
  for (const v of sec?.vars ?? []) {
    const variable = at(v.type_id);
    const members = new Map(at(variable.type_id!).members!.map((m) => [m.name, m.type_id]));
    const get = (n: string) => members.get(n);
    maps.set(variable.name, {
      type: uint(get('type')!),
      maxEntries: get('max_entries') ? uint(get('max_entries')!) : 0,
      flags: get('map_flags') ? uint(get('map_flags')!) : 0,
      key: typeOf(get('key')!),
      value: typeOf(get('value')!),
    });
  }
  return maps;
}

const BTF_NAME: Record<Layout, string> = { int: 'int', u32: '__u32', u64: '__u64', ...(Object.fromEntries(Object.keys(LAYOUTS).map((k) => [k, k])) as Record<keyof typeof LAYOUTS, string>) };

const objects = new Map(LOADER_OBJECTS.map((o) => [o, btfMaps(o)]));

test('every map an object declares is in the table, with its type, key, value, flags and built size', (t) => {
  for (const [object, maps] of objects) {
    for (const [name, btf] of maps) {
      t.true(Object.hasOwn(MAPS, name), `${object}.bpf.o declares ${name}, which map-table.ts leaves out`);
      if (!Object.hasOwn(MAPS, name)) continue;
      const spec = MAPS[name as AnyMapName];
      t.deepEqual(
        btf,
        {
          type: MAP_TYPES[spec.type],
          maxEntries: builtEntries(name as AnyMapName),
          flags: spec.noPrealloc ? 1 : 0,
          key: { name: BTF_NAME[spec.key], size: LAYOUT_SIZES[spec.key] },
          value: { name: BTF_NAME[spec.value], size: LAYOUT_SIZES[spec.value] },
        },
        `${name} in ${object}.bpf.o`,
      );
    }
  }
});

test('the maps of bpf/maps.h are in every object, the others only in theirs', (t) => {
  for (const name of Object.keys(MAPS) as AnyMapName[]) {
    const owner = MAPS[name].object;
    const declaring = [...objects].filter(([, maps]) => maps.has(name)).map(([o]) => o);
    t.deepEqual(declaring, owner ? [owner] : [...LOADER_OBJECTS], name);
  }
  t.deepEqual(MAP_NAMES, (Object.keys(MAPS) as AnyMapName[]).filter((n) => !MAPS[n].object));
});

test('the default capacity gives the sizes bpf/maps.h builds with; acceleration off makes sluice_accel minimal', (t) => {
  const on = { ...DEFAULT_CAPACITY, accelerate: true };
  const maps = objects.get('connect')!;
  for (const name of SIZED_MAPS) t.is(capacityOf(name, on), maps.get(name)!.maxEntries, name);
  t.is(capacityOf('sluice_accel', DEFAULT_CAPACITY), MAPS.sluice_accel.minimal ?? null);
  t.is(capacityOf('sluice_accel', { ...DEFAULT_CAPACITY, accelerate: true, connections: 1000 }), 1000);
  t.is(capacityOf('sluice_counters', DEFAULT_CAPACITY), null, 'fixed: the counters are as many as the enum');
});

test('each sized map names the sluice run flag that sizes it, sluice_addrs included', (t) => {
  const flags = Object.fromEntries(SIZED_MAPS.map((n) => [n, capacityFlag(n) ?? null]));
  t.deepEqual(flags, {
    sluice_pods: '--max-pods',
    sluice_ports: null,
    sluice_cidrs: null,
    sluice_ifaces: null,
    sluice_binds: null,
    sluice_conns: '--max-connections',
    sluice_listen: '--max-pods',
    sluice_accel: '--max-connections',
    sluice_addrs: '--max-pods',
    sluice_conn_count: '--max-pods',
    sluice_pending: '--max-pods',
  });
});

test('every set map is keyed by a struct with a pod_id', (t) => {
  t.deepEqual(SET_MAPS, ['sluice_ports', 'sluice_cidrs', 'sluice_ifaces', 'sluice_binds']);
  for (const name of SET_MAPS) t.true('pod_id' in LAYOUTS[MAPS[name].key as keyof typeof LAYOUTS].offsets, name);
});
