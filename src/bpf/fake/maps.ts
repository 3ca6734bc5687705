// In-memory maps for unit tests, as Cilium's fake/ packages: the RawMap interface the data
// plane uses, with the kernel's semantics where the logic depends on them (key and value
// sizes, max_entries, BPF_NOEXIST/BPF_EXIST, arrays that always hold every index, per-CPU
// values). LPM tries are looked up exactly, as the writers here only look up keys they read.
import { BpfError, ERRNO } from '../bpf-error.js';
import type { RawMap } from '../fd-map.js';
import { DEFAULT_CAPACITY, MAP_NAMES, shapeOf, type Capacity, type MapName, type Shape } from '../map-table.js';
import { SluiceMaps } from '../maps.js';
import { perCpuStride } from '../per-cpu.js';
import { MAP_TYPES } from '../probe-facts.js';
import { decodeU32, encodeU32 } from '../wire.js';

const ARRAYS = new Set<number>([MAP_TYPES.BPF_MAP_TYPE_ARRAY, MAP_TYPES.BPF_MAP_TYPE_PERCPU_ARRAY]);
const PER_CPU = new Set<number>([MAP_TYPES.BPF_MAP_TYPE_PERCPU_ARRAY]);
const BPF_NOEXIST = 1;
const BPF_EXIST = 2;

export class MemoryMap implements RawMap {
  private readonly entries = new Map<string, Buffer>();
  private closed = false;
  /** Updates made, for tests that count writes. */
  updates = 0;

  constructor(
    readonly name: string,
    readonly shape: Shape,
    readonly cpus = 2,
  ) {}

  private fail(op: string, errno: number): never {
    throw new BpfError(`${op}(${this.name})`, errno);
  }

  private check(op: string, key: Buffer): string {
    if (this.closed) this.fail(op, ERRNO.EBADF);
    if (key.length !== this.shape.keySize) this.fail(op, ERRNO.EINVAL);
    if (ARRAYS.has(this.shape.type) && decodeU32(key) >= this.shape.maxEntries) this.fail(op, op === 'bpf_map_update_elem' ? ERRNO.E2BIG : ERRNO.ENOENT);
    return key.toString('hex');
  }

  /** Bytes of a value as a lookup returns it and an update takes it. */
  get valueBytes(): number {
    return PER_CPU.has(this.shape.type) ? perCpuStride(this.shape.valueSize) * this.cpus : this.shape.valueSize;
  }

  update(key: Buffer, value: Buffer, flags: number): void {
    const k = this.check('bpf_map_update_elem', key);
    if (value.length < this.valueBytes) this.fail('bpf_map_update_elem', ERRNO.EFAULT);
    const has = this.entries.has(k) || ARRAYS.has(this.shape.type);
    if (flags === BPF_NOEXIST && has) this.fail('bpf_map_update_elem', ERRNO.EEXIST);
    if (flags === BPF_EXIST && !has) this.fail('bpf_map_update_elem', ERRNO.ENOENT);
    if (!has && this.entries.size >= this.shape.maxEntries) this.fail('bpf_map_update_elem', ERRNO.E2BIG);
    this.entries.set(k, Buffer.from(value.subarray(0, this.valueBytes)));
    this.updates++;
  }

  lookup(key: Buffer): Buffer | null {
    const v = this.entries.get(this.check('bpf_map_lookup_elem', key));
    if (v) return Buffer.from(v);
    return ARRAYS.has(this.shape.type) ? Buffer.alloc(this.valueBytes) : null;
  }

  delete(key: Buffer): boolean {
    const k = this.check('bpf_map_delete_elem', key);
    if (ARRAYS.has(this.shape.type)) this.fail('bpf_map_delete_elem', ERRNO.EINVAL);
    return this.entries.delete(k);
  }

  keys(): Buffer[] {
    if (this.closed) this.fail('bpf_map_get_next_key', ERRNO.EBADF);
    if (!ARRAYS.has(this.shape.type)) return [...this.entries.keys()].map((k) => Buffer.from(k, 'hex'));
    return Array.from({ length: this.shape.maxEntries }, (_, i) => {
      return encodeU32(i);
    });
  }

  count(): number {
    return ARRAYS.has(this.shape.type) ? this.shape.maxEntries : this.entries.size;
  }

  close(): void {
    this.closed = true;
  }
}

/** Every map of the table in memory, at this capacity, as SluiceMaps. */
export function fakeMaps(cap: Partial<Capacity> = {}, cpus = 2): { maps: SluiceMaps; raw: Map<MapName, MemoryMap> } {
  const full: Capacity = { ...DEFAULT_CAPACITY, ...cap };
  const raw = new Map<MapName, MemoryMap>(MAP_NAMES.map((n) => [n, new MemoryMap(n, shapeOf(n, full), cpus)]));
  return { maps: new SluiceMaps('(fake)', raw), raw };
}
