// Opening and loading one BPF object, the one way every caller does it: the installation's
// (maps shared through their pins, sized by the capacity) or a private one (probes: small,
// unpinned maps). The load-time fallbacks are applied either way.
import { join } from 'node:path';
import { applyFallbacks } from './fallbacks.js';
import * as bpf from './libbpf.js';
import { decidePinned, pinnedShape } from './map-pins.js';
import { capacityOf, DEFAULT_CAPACITY, type Capacity } from './map-table.js';
import { DEFAULT_OBJECT_DIR, objectPath } from './objects.js';
import { DEFAULT_BPFFS_DIR, mapPinPath, pinLayout, type Pins } from './pins.js';

export interface LoaderOptions {
  /** A directory on bpffs; created (and bpffs mounted at /sys/fs/bpf) when missing. */
  bpffsDir?: string;
  objectDir?: string;
  capacity?: Partial<Capacity>;
  log?: (message: string) => void;
}

export interface OpenOptions {
  objectDir: string;
  object: string;
  /** The installation's pins (maps reused from them, or made and pinned there); null: private maps. */
  pins: Pins | null;
  capacity: Capacity;
  log?: (message: string) => void;
  /** Maps whose kept capacity was logged already, so each is logged once per install. */
  warned?: Set<string>;
  /** The object's .rodata (the netns cookie of an sk_lookup entry or a tc instance). */
  rodata?: Buffer;
  /** Programs of the object not to load. */
  skip?: string[];
  /** Names the object in errors. */
  what?: string;
}

/** How every object of one installation is opened: OpenOptions but the object. */
export type Installation = Omit<OpenOptions, 'object' | 'pins' | 'log'> & { pins: Pins; log: (message: string) => void };

/** The installation `opts` name, with the defaults filled in. */
export function installation(opts: LoaderOptions): Installation {
  return {
    objectDir: opts.objectDir ?? DEFAULT_OBJECT_DIR,
    pins: pinLayout(opts.bpffsDir ?? DEFAULT_BPFFS_DIR),
    capacity: { ...DEFAULT_CAPACITY, ...opts.capacity },
    log: opts.log ?? (() => {}),
  };
}

/** Opens and loads one object. A pinned map keeps the capacity it was made with (map-pins.ts). */
export function openObject(o: OpenOptions): bpf.BpfObject {
  const obj = bpf.openObject(o.pins ? objectPath(o.objectDir, o.object) : join(o.objectDir, `${o.object}.bpf.o`));
  try {
    for (const name of o.skip ?? []) bpf.skipProgram(bpf.findProgram(obj, name));
    for (const m of bpf.maps(obj)) {
      const name = bpf.mapName(m);
      if (bpf.mapIsInternal(m)) {
        if (o.rodata && name.endsWith('.rodata')) bpf.setMapInitialValue(m, o.rodata);
        continue;
      }
      if (!o.pins) {
        const size = capacityOf(name, o.capacity);
        if (size !== null) bpf.setMapMaxEntries(m, size);
        continue;
      }
      const pinPath = mapPinPath(o.pins, name);
      const built = bpf.mapShape(m);
      const d = decidePinned(name, pinnedShape(pinPath), built, o.capacity, { pinPath, bpffsDir: o.pins.root });
      if (d.note && !o.warned?.has(name)) {
        o.warned?.add(name);
        o.log?.(d.note);
      }
      if (d.maxEntries !== built.maxEntries) bpf.setMapMaxEntries(m, d.maxEntries);
      bpf.setMapPinPath(m, pinPath);
    }
    applyFallbacks(obj, o.what ?? o.object);
    bpf.loadObject(obj, o.what ?? o.object);
    return obj;
  } catch (err) {
    bpf.closeObject(obj);
    throw err;
  }
}

/** Small maps for an object loaded only to probe (nothing pinned, nothing attached). */
export const PROBE_CAPACITY: Capacity = Object.freeze({ pods: 16, connections: 16, setEntries: 16, accelerate: true });

/** Opens an object with small, private (unpinned) maps and its load-time fallbacks, and loads it. */
export function openPrivate(objectDir: string, object: string, what: string): bpf.BpfObject {
  return openObject({ objectDir, object, pins: null, capacity: PROBE_CAPACITY, what });
}
