// Whether a pinned map can be reused by this build, and at what size. libbpf reuses a
// pinned map only when type, key size, value size and max_entries all match, so the
// loader decides first and says why by name, rather than let the load fail with EINVAL.
// decidePinned is pure (unit-tested with the fake maps); the rest reads the pins.
import { existsSync, unlinkSync } from 'node:fs';
import * as bpf from './libbpf.js';
import { mapShapeOf } from './map-info.js';
import { capacityOf, isMapName, MAPS, type AnyMapName, type Capacity, type Shape } from './map-table.js';
import { LoaderError } from './objects.js';
import { mapPinPath, type Pins } from './pins.js';

const FIELDS = ['type', 'keySize', 'valueSize', 'maxEntries'] as const;

export interface PinnedDecision {
  /** The max_entries to open the map with (the pinned map's, when it is reused). */
  maxEntries: number;
  /** For the log: a configured size that the pinned map does not have. */
  note?: string;
  /** The pinned map is the minimal one and the capacity wants more: unpin it, make a new one. */
  replace?: boolean;
}

/**
 * How to open map `name`: `built` is the object's own shape, `pinned` the pinned map's
 * (null: none). Sized maps keep the pinned capacity (changing it needs an uninstall),
 * except a minimal one, which nothing can be using (see MAPS.sluice_accel). Throws
 * PINNED_MAP_INCOMPATIBLE for any other difference.
 */
export function decidePinned(name: string, pinned: Shape | null, built: Shape, cap: Capacity, where: { pinPath: string; bpffsDir: string }): PinnedDecision {
  const wanted = capacityOf(name, cap);
  if (pinned === null) return { maxEntries: wanted ?? built.maxEntries };
  if (outgrown(name, pinned.maxEntries, cap)) return { maxEntries: wanted!, replace: true };
  const want = { ...built, ...(wanted !== null ? { maxEntries: pinned.maxEntries } : {}) };
  const diff = FIELDS.filter((k) => pinned[k] !== want[k]);
  if (diff.length > 0) {
    const what = diff.map((k) => `${k} ${pinned[k]} pinned, ${want[k]} in this build`).join(', ');
    throw new LoaderError(
      'PINNED_MAP_INCOMPATIBLE',
      `map ${name} pinned at ${where.pinPath} was made by another sluice version (${what}); nothing was changed. Run \`sluice uninstall --bpffs ${where.bpffsDir}\` and start again (new connections are not captured until the daemon is back), or keep running the version that made it`,
    );
  }
  const note = wanted !== null && wanted !== pinned.maxEntries ? `map ${name}: keeping the pinned capacity ${pinned.maxEntries} (configured ${wanted}); uninstall to change it` : undefined;
  return { maxEntries: pinned.maxEntries, ...(note ? { note } : {}) };
}

/** A minimal map (MapSpec.minimal) whose capacity now wants more entries. */
function outgrown(name: string, pinnedEntries: number, cap: Capacity): boolean {
  const minimal = isMapName(name) ? MAPS[name].minimal : undefined;
  const wanted = capacityOf(name, cap);
  return minimal !== undefined && wanted !== null && pinnedEntries === minimal && wanted > minimal;
}

/** type, key_size, value_size, max_entries of the map pinned at `path`; null when none is. */
export function pinnedShape(path: string): Shape | null {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return null;
  try {
    return mapShapeOf(fd, path);
  } finally {
    bpf.closeFd(fd);
  }
}

/**
 * Unpins the minimal maps this capacity wants larger, before anything loads: the objects
 * then make and pin full-size ones, and the old map goes with the programs that still use
 * it once their links are swapped. Returns the names, for the log.
 */
export function unpinOutgrown(pins: Pins, cap: Capacity): AnyMapName[] {
  const out: AnyMapName[] = [];
  for (const name of Object.keys(MAPS) as AnyMapName[]) {
    const path = mapPinPath(pins, name);
    if (MAPS[name].minimal === undefined || !existsSync(path)) continue;
    const pinned = pinnedShape(path);
    if (pinned && outgrown(name, pinned.maxEntries, cap)) {
      unlinkSync(path);
      out.push(name);
    }
  }
  return out;
}
