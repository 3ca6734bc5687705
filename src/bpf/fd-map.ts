// A RawMap on a kernel map fd: what SluiceMaps uses for the pinned maps.
import * as bpf from './libbpf.js';
import { mapShapeOf } from './map-info.js';
import type { Shape } from './map-table.js';
import { perCpuStride, possibleCpus } from './per-cpu.js';
import { MAP_TYPES } from './probe-facts.js';

/** One map, key and value bytes in and out; what the data plane logic needs of a map. */
export interface RawMap {
  readonly name: string;
  readonly shape: Shape;
  update(key: Buffer, value: Buffer, flags: number): void;
  /** The value (per-CPU maps: every CPU's slot), or null when the key is absent. */
  lookup(key: Buffer): Buffer | null;
  delete(key: Buffer): boolean;
  keys(): Buffer[];
  count(): number;
  close(): void;
}

const PER_CPU = new Set<number>([MAP_TYPES.BPF_MAP_TYPE_PERCPU_ARRAY]);

/** Bytes a lookup of this map returns. */
export function lookupBytes(shape: Shape): number {
  return PER_CPU.has(shape.type) ? perCpuStride(shape.valueSize) * possibleCpus() : shape.valueSize;
}

export class FdMap implements RawMap {
  private constructor(
    readonly name: string,
    private readonly fd: number,
    readonly shape: Shape,
  ) {}

  /** The map pinned at `path`; null when nothing is pinned there. */
  static openPinned(name: string, path: string): FdMap | null {
    const fd = bpf.objGetIfPinned(path);
    if (fd === null) return null;
    try {
      return new FdMap(name, fd, mapShapeOf(fd, path));
    } catch (err) {
      bpf.closeFd(fd);
      throw err;
    }
  }

  update(key: Buffer, value: Buffer, flags: number): void {
    bpf.mapUpdate(this.fd, key, value, flags, this.name);
  }

  lookup(key: Buffer): Buffer | null {
    return bpf.mapLookup(this.fd, key, lookupBytes(this.shape), this.name);
  }

  delete(key: Buffer): boolean {
    return bpf.mapDelete(this.fd, key, this.name);
  }

  keys(): Buffer[] {
    return bpf.mapKeys(this.fd, this.shape.keySize, this.name);
  }

  count(): number {
    return bpf.mapCountBatch(this.fd, this.shape.keySize, lookupBytes(this.shape), this.name) ?? bpf.mapCount(this.fd, this.shape.keySize, this.name);
  }

  close(): void {
    bpf.closeFd(this.fd);
  }
}
