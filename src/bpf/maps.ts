// Typed access to the pinned maps of an installation: open by pin, read and write with
// the codecs, and the per-CPU counters summed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MapFullError } from '../dataplane/errors.js';
import type { Endpoint } from '../policy/types.js';
import { COUNTER, counterNames, decodeOrigDst, decodeU64, encodeConnKey, encodeU32, type OrigDst } from './codec.js';
import * as bpf from './libbpf.js';
import { mapInfoOf } from './map-info.js';
import { capacityFlag, DEFAULT_BPFFS_DIR, LoaderError, MAP_NAMES, pinLayout, type MapName } from './loader.js';

export interface MapInfo {
  fd: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export function possibleCpus(): number {
  // "0-1" or "0,2-3": the per-CPU value layout counts every possible CPU.
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  let n = 0;
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** The pinned maps of one installation. Close it when done. */
export class SluiceMaps {
  private constructor(
    readonly bpffsDir: string,
    private readonly infos: Map<MapName, MapInfo>,
  ) {}

  static open(bpffsDir: string = DEFAULT_BPFFS_DIR): SluiceMaps {
    const pins = pinLayout(bpffsDir);
    const infos = new Map<MapName, MapInfo>();
    try {
      for (const name of MAP_NAMES) {
        const path = join(pins.maps, name);
        const fd = bpf.objGetIfPinned(path);
        if (fd === null) throw new LoaderError('NOT_INSTALLED', `map ${path} is not pinned: install the data plane first (sluice run)`);
        infos.set(name, { fd, keySize: 0, valueSize: 0, maxEntries: 0 }); // closed on a throw below
        const { keySize, valueSize, maxEntries } = mapInfoOf(fd, path);
        infos.set(name, { fd, keySize, valueSize, maxEntries });
      }
    } catch (err) {
      for (const i of infos.values()) bpf.closeFd(i.fd);
      throw err;
    }
    return new SluiceMaps(bpffsDir, infos);
  }

  info(name: MapName): MapInfo {
    return this.infos.get(name)!;
  }

  close(): void {
    for (const i of this.infos.values()) bpf.closeFd(i.fd);
    this.infos.clear();
  }

  /** Writes one entry; a full map becomes MapFullError. */
  update(name: MapName, key: Buffer, value: Buffer, flags = bpf.BPF_ANY): void {
    const i = this.info(name);
    // A newer build's value may be longer (migrate.ts): its tail is zero, as the kernel
    // must not read past the buffer.
    if (value.length < i.valueSize) value = Buffer.concat([value, Buffer.alloc(i.valueSize - value.length)]);
    try {
      bpf.mapUpdate(i.fd, key, value, flags, name);
    } catch (err) {
      if (err instanceof bpf.BpfError && (err.code === 'E2BIG' || err.code === 'ENOSPC' || err.code === 'ENOMEM')) throw new MapFullError(name, i.maxEntries, capacityFlag(name));
      throw err;
    }
  }

  lookup(name: MapName, key: Buffer): Buffer | null {
    const i = this.info(name);
    return bpf.mapLookup(i.fd, key, i.valueSize, name);
  }

  delete(name: MapName, key: Buffer): boolean {
    return bpf.mapDelete(this.info(name).fd, key, name);
  }

  keys(name: MapName): Buffer[] {
    const i = this.info(name);
    return bpf.mapKeys(i.fd, i.keySize, name);
  }

  count(name: MapName): number {
    const i = this.info(name);
    return bpf.mapCountBatch(i.fd, i.keySize, i.valueSize, name) ?? bpf.mapCount(i.fd, i.keySize, name);
  }

  /** The recorded original destination of a captured connection, as its proxy sees it. */
  originalDestination(client: Endpoint, listener: Endpoint, netnsCookie = 0n): OrigDst | null {
    const v = this.lookup('sluice_conns', encodeConnKey({ client, listener, netnsCookie }));
    return v ? decodeOrigDst(v) : null;
  }

  /** Every counter by name (see codec.counterNames), summed over CPUs. */
  counters(): Record<string, bigint> {
    const i = this.info('sluice_counters');
    const cpus = possibleCpus();
    const stride = Math.ceil(i.valueSize / 8) * 8;
    const names = counterNames();
    const out: Record<string, bigint> = {};
    for (let idx = 0; idx < COUNTER.MAX; idx++) {
      const v = bpf.mapLookup(i.fd, encodeU32(idx), stride * cpus, 'sluice_counters');
      let sum = 0n;
      for (let cpu = 0; v && cpu < cpus; cpu++) sum += decodeU64(v, cpu * stride);
      out[names[idx]!] = sum;
    }
    return out;
  }
}
