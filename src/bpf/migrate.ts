// In-place map migration for an upgrade whose maps differ from the pinned ones (a counter
// more, a grown value struct). Instead of "uninstall and start again" (a window with no
// capture), the new build's maps are made beside the old ones, filled from them, the
// programs are swapped with bpf_link_update (the per-netns sk_lookup entries too; the
// pods' tc reroute filters by tc filter replace), and only then do the new maps take the
// old pins.
//
//   <bpffs>/migrate/<map>       the new map, until the commit
//   <bpffs>/migrate/committed   pinned once every link runs the new programs
//
// Crash safety (the caller holds the pin lock, pin-lock.ts): a start that finds
// migrate/ without `committed` rolls back (drops the new maps: the old ones are still
// pinned, and the migration runs again from them); with `committed` it rolls forward
// (the new maps take the pins). Either way every link ends on one build's maps.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as bpf from './libbpf.js';
import { mapShapeOf } from './map-info.js';
import { pinnedShape } from './map-pins.js';
import type { Shape } from './map-table.js';
import { perCpuStride, possibleCpus } from './per-cpu.js';
import { MAP_TYPES } from './probe-facts.js';

const COMMITTED = 'committed';

// Map types whose entries can be read and written back from user space.
const { BPF_MAP_TYPE_HASH: HASH, BPF_MAP_TYPE_ARRAY: ARRAY, BPF_MAP_TYPE_PERCPU_HASH: PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY: PERCPU_ARRAY, BPF_MAP_TYPE_LRU_HASH: LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH: LRU_PERCPU_HASH, BPF_MAP_TYPE_LPM_TRIE: LPM_TRIE } = MAP_TYPES;
const COPYABLE = new Set<number>([HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE]);
const PER_CPU = new Set<number>([PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH]);
const ARRAYS = new Set<number>([ARRAY, PERCPU_ARRAY]);

/** The maps the objects at `paths` declare, as built; `sized` ones take their capacity at load. */
export function builtShapes(paths: string[], sized: (name: string) => boolean): Map<string, Shape & { sized: boolean }> {
  const out = new Map<string, Shape & { sized: boolean }>();
  for (const path of paths) {
    const obj = bpf.openObject(path);
    try {
      for (const m of bpf.maps(obj)) if (!bpf.mapIsInternal(m)) out.set(bpf.mapName(m), { ...bpf.mapShape(m), sized: sized(bpf.mapName(m)) });
    } finally {
      bpf.closeObject(obj);
    }
  }
  return out;
}

export function migrateDir(root: string): string {
  return join(root, 'migrate');
}

/**
 * Finishes or undoes a migration a crash interrupted. Returns what it did, for the log.
 * Call it before anything loads, with the pin lock held.
 */
export function recoverMigration(root: string, mapsDir: string): 'none' | 'rolled-back' | 'rolled-forward' {
  const dir = migrateDir(root);
  if (!existsSync(dir)) return 'none';
  const forward = existsSync(join(dir, COMMITTED));
  if (forward) {
    commit(dir, mapsDir);
    return 'rolled-forward';
  }
  for (const name of readdirSync(dir)) unlinkSync(join(dir, name));
  rmdirSync(dir);
  return 'rolled-back';
}

// The new maps take the old pins; the old maps go with their last program.
function commit(dir: string, mapsDir: string): void {
  for (const name of readdirSync(dir)) {
    if (name === COMMITTED) continue;
    const old = join(mapsDir, name);
    if (existsSync(old)) unlinkSync(old);
    renameSync(join(dir, name), old);
  }
  unlinkSync(join(dir, COMMITTED));
  rmdirSync(dir);
}

/** Whether a pinned map of shape `pinned` can be carried into a map of shape `wanted`. */
export function migratable(pinned: Shape, wanted: Shape): boolean {
  return pinned.type === wanted.type && pinned.keySize === wanted.keySize && COPYABLE.has(pinned.type);
}

// Per-CPU values are an array of 8-byte-aligned slots, one per possible CPU.
function valueBytes(s: Shape, cpus: number): number {
  return PER_CPU.has(s.type) ? perCpuStride(s.valueSize) * cpus : s.valueSize;
}

/** Old value bytes in the new layout: the old bytes first, the new tail zero (per CPU). */
function convert(v: Buffer, from: Shape, to: Shape, cpus: number): Buffer {
  const out = Buffer.alloc(valueBytes(to, cpus));
  if (!PER_CPU.has(from.type)) {
    v.copy(out, 0, 0, Math.min(from.valueSize, to.valueSize));
    return out;
  }
  const a = perCpuStride(from.valueSize);
  const b = perCpuStride(to.valueSize);
  for (let cpu = 0; cpu < cpus; cpu++) v.copy(out, cpu * b, cpu * a, cpu * a + Math.min(from.valueSize, to.valueSize));
  return out;
}

interface Moved {
  name: string;
  oldFd: number;
  newFd: number;
  from: Shape;
  to: Shape;
  /** What the old map held when it was copied, key hex -> value, for the catch-up. */
  snapshot: Map<string, Buffer>;
}

export interface MigrationReport {
  maps: string[];
  entries: number;
  netnsLinks: number;
  rerouteFilters: number;
  caughtUp: number;
}

/**
 * One migration: `stage` names the maps to move and where the new ones get pinned (the
 * loader pins the newly built maps there), `copy` fills them before any program is
 * swapped, `finish` runs once every cgroup link runs the new build.
 */
export class Migration {
  private moved: Moved[] = [];
  private readonly cpus = possibleCpus();
  readonly report: MigrationReport = { maps: [], entries: 0, netnsLinks: 0, rerouteFilters: 0, caughtUp: 0 };

  private constructor(
    private readonly dir: string,
    private readonly mapsDir: string,
    readonly staged: Map<string, string>,
  ) {}

  /** Null when every pinned map fits this build (or nothing is pinned yet). */
  static stage(root: string, mapsDir: string, built: Map<string, Shape & { sized: boolean }>): Migration | null {
    const staged = new Map<string, string>();
    const dir = migrateDir(root);
    for (const [name, want] of built) {
      const pinned = pinnedShape(join(mapsDir, name));
      if (pinned === null) continue;
      const same = pinned.type === want.type && pinned.keySize === want.keySize && pinned.valueSize === want.valueSize && (want.sized || pinned.maxEntries === want.maxEntries);
      // A layout that cannot be copied is left to the loader, which refuses it by name.
      if (!same && migratable(pinned, want)) staged.set(name, join(dir, name));
    }
    if (staged.size === 0) return null;
    mkdirSync(dir, { recursive: true });
    return new Migration(dir, mapsDir, staged);
  }

  /** Copies every moved map into its new one (the new build's maps, pinned by its load). */
  copy(): void {
    for (const [name, path] of this.staged) {
      const oldFd = bpf.objGet(join(this.mapsDir, name));
      const newFd = bpf.objGet(path);
      const m: Moved = { name, oldFd, newFd, from: mapShapeOf(oldFd, name), to: mapShapeOf(newFd, path), snapshot: new Map() };
      this.moved.push(m);
      for (const key of bpf.mapKeys(oldFd, m.from.keySize, name)) {
        const v = bpf.mapLookup(oldFd, key, valueBytes(m.from, this.cpus), name);
        if (!v) continue; // deleted since the walk saw it
        m.snapshot.set(key.toString('hex'), v);
        bpf.mapUpdate(newFd, key, convert(v, m.from, m.to, this.cpus), bpf.BPF_ANY, path);
        this.report.entries++;
      }
      this.report.maps.push(name);
    }
  }

  /**
   * After the cgroup links: moves each per-netns sk_lookup link to an entry program of the
   * new build (`entry` loads one for a netns cookie) and every tc reroute filter
   * (`relinkReroute`, which returns how many it moved), carries over what the old
   * programs wrote since the copy, then commits.
   */
  finish(netnsLinksDir: string, entry: (cookie: bigint) => { progFd: number; close: () => void }, relinkReroute: () => number): MigrationReport {
    for (const name of existsSync(netnsLinksDir) ? readdirSync(netnsLinksDir) : []) {
      if (!/^\d+$/.test(name)) continue;
      const path = join(netnsLinksDir, name);
      const linkFd = bpf.objGet(path);
      const e = entry(BigInt(name));
      try {
        bpf.linkUpdate(linkFd, e.progFd, path);
        this.report.netnsLinks++;
      } catch (err) {
        // A link whose netns is gone is defunct; reconcile removes it.
        if (!(err instanceof bpf.BpfError) || (err.code !== 'ENOLINK' && err.code !== 'EINVAL')) throw err;
      } finally {
        e.close();
        bpf.closeFd(linkFd);
      }
    }
    // Before the catch-up, so that what the old filters recorded is carried over too.
    this.report.rerouteFilters = relinkReroute();
    for (const m of this.moved) this.catchUp(m);
    // The point of no return: from here a crash rolls forward.
    bpf.objPin(this.moved[0]!.newFd, join(this.dir, COMMITTED));
    for (const m of this.moved) {
      bpf.closeFd(m.oldFd);
      bpf.closeFd(m.newFd);
    }
    commit(this.dir, this.mapsDir);
    return this.report;
  }

  /** Closes the maps of a migration that failed before its commit (the next start rolls back). */
  abandon(): void {
    for (const m of this.moved) {
      bpf.closeFd(m.oldFd);
      bpf.closeFd(m.newFd);
    }
    this.moved = [];
  }

  // What the old programs wrote between the copy and their swap: counters keep their
  // increments (added, per CPU), records made then are added, records closed then removed.
  private catchUp(m: Moved): void {
    const oldBytes = valueBytes(m.from, this.cpus);
    const seen = new Set<string>();
    for (const key of bpf.mapKeys(m.oldFd, m.from.keySize, m.name)) {
      const hex = key.toString('hex');
      seen.add(hex);
      const now = bpf.mapLookup(m.oldFd, key, oldBytes, m.name);
      const then = m.snapshot.get(hex);
      if (!now || (then && now.equals(then))) continue;
      if (m.from.type === PERCPU_ARRAY && m.from.valueSize % 8 === 0 && then) {
        const cur = bpf.mapLookup(m.newFd, key, valueBytes(m.to, this.cpus), m.name)!;
        const sa = perCpuStride(m.from.valueSize);
        const sb = perCpuStride(m.to.valueSize);
        for (let cpu = 0; cpu < this.cpus; cpu++) {
          for (let off = 0; off < Math.min(m.from.valueSize, m.to.valueSize); off += 8) {
            const d = now.readBigUInt64LE(cpu * sa + off) - then.readBigUInt64LE(cpu * sa + off);
            cur.writeBigUInt64LE(BigInt.asUintN(64, cur.readBigUInt64LE(cpu * sb + off) + d), cpu * sb + off);
          }
        }
        bpf.mapUpdate(m.newFd, key, cur, bpf.BPF_ANY, m.name);
      } else if (!then || ARRAYS.has(m.from.type)) {
        try {
          bpf.mapUpdate(m.newFd, key, convert(now, m.from, m.to, this.cpus), ARRAYS.has(m.from.type) ? bpf.BPF_ANY : bpf.BPF_NOEXIST, m.name);
        } catch (err) {
          if (!(err instanceof bpf.BpfError) || err.code !== 'EEXIST') throw err;
        }
      }
      this.report.caughtUp++;
    }
    if (ARRAYS.has(m.from.type)) return;
    for (const hex of m.snapshot.keys()) {
      if (seen.has(hex)) continue;
      bpf.mapDelete(m.newFd, Buffer.from(hex, 'hex'), m.name);
      this.report.caughtUp++;
    }
  }
}
