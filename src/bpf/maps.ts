// Typed access to the maps of an installation: by name from the table (map-table.ts),
// read and written with the codecs, the per-CPU counters summed. The maps are RawMaps:
// the pinned ones (fd-map.ts), or in memory for unit tests (fake/maps.ts).
import { join } from 'node:path';
import { MapFullError } from '../dataplane/errors.js';
import type { Endpoint } from '../policy/types.js';
import { COUNTER, counterNames, decodeOrigDst, encodeConnKey, encodeU32, type OrigDst } from './codec.js';
import { FdMap, type RawMap } from './fd-map.js';
import * as bpf from './libbpf.js';
import { capacityFlag, MAP_NAMES, SIZED_MAPS, type MapName } from './map-table.js';
import { LoaderError } from './objects.js';
import { sumPerCpu } from './per-cpu.js';
import { DEFAULT_BPFFS_DIR, pinLayout } from './pins.js';

export { possibleCpus } from './per-cpu.js';
export type { RawMap } from './fd-map.js';

export interface MapInfo {
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** The errnos of an update that found the map full. */
const FULL = new Set(['E2BIG', 'ENOSPC', 'ENOMEM']);
const SIZED = new Set<string>(SIZED_MAPS);

/** The maps of one installation. Close it when done. */
export class SluiceMaps {
  constructor(
    readonly bpffsDir: string,
    private readonly raw: Map<MapName, RawMap>,
  ) {}

  /** The pinned maps under `bpffsDir`. */
  static open(bpffsDir: string = DEFAULT_BPFFS_DIR): SluiceMaps {
    const raw = new Map<MapName, RawMap>();
    try {
      for (const name of MAP_NAMES) raw.set(name, openPinned(bpffsDir, name));
    } catch (err) {
      for (const m of raw.values()) m.close();
      throw err;
    }
    return new SluiceMaps(bpffsDir, raw);
  }

  /** Opens `name` again from its pin: after the loader replaced the map (map-pins.ts). */
  reopen(name: MapName): void {
    const fresh = openPinned(this.bpffsDir, name);
    this.raw.get(name)?.close();
    this.raw.set(name, fresh);
  }

  private map(name: MapName): RawMap {
    const m = this.raw.get(name);
    if (!m) throw new LoaderError('NOT_INSTALLED', `map ${name} is not open (closed, or not installed)`);
    return m;
  }

  info(name: MapName): MapInfo {
    const { keySize, valueSize, maxEntries } = this.map(name).shape;
    return { keySize, valueSize, maxEntries };
  }

  close(): void {
    for (const m of this.raw.values()) m.close();
    this.raw.clear();
  }

  /** Writes one entry; a full map becomes MapFullError. */
  update(name: MapName, key: Buffer, value: Buffer, flags = bpf.BPF_ANY): void {
    const m = this.map(name);
    // A newer build's value may be longer (migrate.ts): its tail is zero, as the kernel
    // must not read past the buffer.
    if (value.length < m.shape.valueSize) value = Buffer.concat([value, Buffer.alloc(m.shape.valueSize - value.length)]);
    try {
      m.update(key, value, flags);
    } catch (err) {
      // Only a sized map is full; E2BIG from an array is an index past its end.
      if (err instanceof bpf.BpfError && FULL.has(err.code) && SIZED.has(name)) throw new MapFullError(name, m.shape.maxEntries, capacityFlag(name));
      throw err;
    }
  }

  lookup(name: MapName, key: Buffer): Buffer | null {
    return this.map(name).lookup(key);
  }

  delete(name: MapName, key: Buffer): boolean {
    return this.map(name).delete(key);
  }

  keys(name: MapName): Buffer[] {
    return this.map(name).keys();
  }

  count(name: MapName): number {
    return this.map(name).count();
  }

  /** The recorded original destination of a captured connection, as its proxy sees it. */
  originalDestination(client: Endpoint, listener: Endpoint, netnsCookie = 0n): OrigDst | null {
    const v = this.lookup('sluice_conns', encodeConnKey({ client, listener, netnsCookie }));
    return v ? decodeOrigDst(v) : null;
  }

  /** One counter, summed over CPUs. */
  counter(index: number): bigint {
    return sumPerCpu(this.lookup('sluice_counters', encodeU32(index)), this.map('sluice_counters').shape.valueSize);
  }

  /** Every counter by name (see codec.counterNames), summed over CPUs. */
  counters(): Record<string, bigint> {
    const names = counterNames();
    const out: Record<string, bigint> = {};
    for (let idx = 0; idx < COUNTER.MAX; idx++) out[names[idx]!] = this.counter(idx);
    return out;
  }
}

function openPinned(bpffsDir: string, name: MapName): RawMap {
  const path = join(pinLayout(bpffsDir).maps, name);
  const m = FdMap.openPinned(name, path);
  if (!m) throw new LoaderError('NOT_INSTALLED', `map ${path} is not pinned: install the data plane first (sluice run)`);
  return m;
}
