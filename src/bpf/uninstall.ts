// Removing an installation: every link detached, every pin removed; the maps go with
// their last user.
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { detachPinnedLink } from './links.js';
import { detachNetns } from './netns-links.js';
import { DEFAULT_BPFFS_DIR, linkedNetns, pinLayout } from './pins.js';
import { unpinRerouteInstances } from './tc-pins.js';

export interface UninstallReport {
  detached: string[];
  unpinnedMaps: string[];
}

/** Detaches every link and removes every pin under `bpffsDir`. */
export function uninstall(bpffsDir: string = DEFAULT_BPFFS_DIR): UninstallReport {
  const pins = pinLayout(bpffsDir);
  const report: UninstallReport = { detached: [], unpinnedMaps: [] };
  if (!existsSync(pins.root)) return report;
  for (const cookie of linkedNetns(bpffsDir)) if (detachNetns(cookie, bpffsDir)) report.detached.push(`netns/${cookie}`);
  if (existsSync(pins.links)) {
    for (const name of readdirSync(pins.links)) {
      if (name !== 'netns' && detachPinnedLink(join(pins.links, name))) report.detached.push(name);
    }
  }
  unpinRerouteInstances(pins.root);
  if (existsSync(pins.maps)) {
    for (const name of readdirSync(pins.maps)) {
      unlinkSync(join(pins.maps, name));
      report.unpinnedMaps.push(name);
    }
  }
  for (const d of [pins.netnsLinks, pins.links, pins.maps, pins.root]) if (existsSync(d)) rmdirSync(d);
  return report;
}
