// Where an installation lives on bpffs:
//
//   <bpffs>/maps/<map>            every map of the table (map-table.ts)
//   <bpffs>/links/<program>       cgroup links, and the sk_msg link on sluice_accel
//   <bpffs>/links/netns/<cookie>  sk_lookup link of one pod netns
//   <bpffs>/progs/<cookie>/<prog> tc reroute programs of one pod netns (tc.ts, tc-pins.ts)
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MAP_NAMES } from './map-table.js';
import { CGROUP_PROGRAMS } from './objects.js';

export const DEFAULT_BPFFS_DIR = '/sys/fs/bpf/sluice';

export interface Pins {
  root: string;
  maps: string;
  links: string;
  netnsLinks: string;
  /** Maps an upgrade is migrating (migrate.ts): their new build's pin, until the commit. */
  staged?: Map<string, string>;
}

export function pinLayout(bpffsDir: string = DEFAULT_BPFFS_DIR): Pins {
  return { root: bpffsDir, maps: join(bpffsDir, 'maps'), links: join(bpffsDir, 'links'), netnsLinks: join(bpffsDir, 'links', 'netns') };
}

/** Where a map is pinned: its migration's new pin while one is staged, else maps/<name>. */
export function mapPinPath(pins: Pins, name: string): string {
  return pins.staged?.get(name) ?? join(pins.maps, name);
}

export function netnsLinkPath(bpffsDir: string, netnsCookie: bigint): string {
  return join(pinLayout(bpffsDir).netnsLinks, netnsCookie.toString());
}

/** Cookies of the netns that have an sk_lookup link pinned. */
export function linkedNetns(bpffsDir: string = DEFAULT_BPFFS_DIR): bigint[] {
  const dir = pinLayout(bpffsDir).netnsLinks;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => /^\d+$/.test(n))
    .map((n) => BigInt(n));
}

/** True when every cgroup link and map of an installation is pinned under `bpffsDir`. */
export function isInstalled(bpffsDir: string = DEFAULT_BPFFS_DIR): boolean {
  const pins = pinLayout(bpffsDir);
  return CGROUP_PROGRAMS.every(({ program }) => existsSync(join(pins.links, program))) && MAP_NAMES.every((m) => existsSync(join(pins.maps, m)));
}
