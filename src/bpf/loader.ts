// The loader: opens and loads the BPF objects, pins every map and link under one bpffs
// directory (pins.ts), attaches the cgroup programs to one cgroup v2 directory and the
// sk_lookup program to each captured pod's netns (netns-links.ts). It is level-triggered:
// on a restart it adopts what is pinned (maps keep their contents, links stay attached,
// and the programs are swapped in place with bpf_link_update, so interception never stops).
// This module is the loader's entry point; the other concerns live beside it.
import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { attachSkMsg, type LinkReport } from './accel-link.js';
import { checkCgroupDir, checkLinksServe } from './cgroup.js';
import { encodeSkLookupConfig } from './codec.js';
import * as bpf from './libbpf.js';
import { updateOrAttach } from './links.js';
import { unpinOutgrown } from './map-pins.js';
import { capacityOf, MAP_NAMES } from './map-table.js';
import { builtShapes, Migration, recoverMigration } from './migrate.js';
import { loadNetnsEntry } from './netns-links.js';
import { CGROUP_PROGRAMS, LOADER_OBJECTS, objectPath, SK_LOOKUP_OBJECT, SK_LOOKUP_PROG_MAP, SK_LOOKUP_STEER_PROGRAM, SK_MSG_OBJECT, SK_MSG_PROGRAM, TC_REROUTE_OBJECT } from './objects.js';
import { installation, openObject, type Installation, type LoaderOptions } from './open-object.js';
import { ensureBpffs } from './system.js';
import { relinkRerouteFilters, unpinReroutePrograms } from './tc-pins.js';

export * from './map-table.js';
export * from './objects.js';
export { checkCgroupDir } from './cgroup.js';
export { attachNetns, detachNetns, netnsLinkAlive } from './netns-links.js';
export { installation, openObject, openPrivate, type Installation, type LoaderOptions, type OpenOptions } from './open-object.js';
export { DEFAULT_BPFFS_DIR, isInstalled, linkedNetns, netnsLinkPath, pinLayout, type Pins } from './pins.js';
export { uninstall, type UninstallReport } from './uninstall.js';

export interface InstallOptions extends LoaderOptions {
  /** The cgroup v2 directory the programs attach to. */
  cgroupDir: string;
  /** The cgroup2 root itself (production). Refused unless set, so a test never does it. */
  allowCgroupRoot?: boolean;
}

export type InstallReport = LinkReport;

/**
 * The steering program every pod netns tail-calls, put in its prog array: swapped in place
 * on each start, so an upgrade reaches every netns at once; the pinned prog array keeps it
 * loaded. `beforeSwap` runs once its object (the last to make maps) is loaded.
 */
function installSteering(o: Installation, beforeSwap: () => void): void {
  const lookup = openObject({ ...o, object: SK_LOOKUP_OBJECT, rodata: encodeSkLookupConfig(0n) });
  try {
    beforeSwap();
    const value = Buffer.alloc(4);
    value.writeUInt32LE(bpf.programFd(bpf.findProgram(lookup, SK_LOOKUP_STEER_PROGRAM)));
    bpf.mapUpdate(bpf.mapFd(bpf.findMap(lookup, SK_LOOKUP_PROG_MAP)), Buffer.alloc(4), value, 0, `${SK_LOOKUP_PROG_MAP}[0]`);
  } finally {
    bpf.closeObject(lookup);
  }
}

/**
 * Installs the data plane, or adopts the installed one: maps are reused from their pins,
 * and each pinned link is kept and switched to the newly loaded program.
 */
export function install(opts: InstallOptions): InstallReport {
  const shared: Installation = { ...installation(opts), warned: new Set<string>() };
  const { pins, capacity: cap, objectDir, log } = shared;
  const cgroupDir = checkCgroupDir(opts.cgroupDir, opts.allowCgroupRoot);
  ensureBpffs(pins.root);
  for (const d of [pins.maps, pins.links, pins.netnsLinks]) mkdirSync(d, { recursive: true });
  checkLinksServe(pins, cgroupDir, statSync(cgroupDir, { bigint: true }).ino);

  // Maps of another layout move to this build's in place (migrate.ts), under the pin lock.
  const recovered = recoverMigration(pins.root, pins.maps);
  if (recovered !== 'none') log(`an interrupted map migration was ${recovered}`);
  for (const name of unpinOutgrown(pins, cap)) log(`map ${name}: replacing the minimal pinned map with one of ${capacityOf(name, cap)} entries`);
  const migration = Migration.stage(pins.root, pins.maps, builtShapes(LOADER_OBJECTS.map((o) => objectPath(objectDir, o)), (n) => capacityOf(n, cap) !== null));
  if (migration) pins.staged = migration.staged;
  const report: InstallReport = { attached: [], updated: [], adoptedMaps: MAP_NAMES.filter((m) => existsSync(join(pins.maps, m))) };
  const objects = new Map<string, bpf.BpfObject>();
  const cgroupFd = openSync(cgroupDir, 'r');
  try {
    for (const object of [...CGROUP_PROGRAMS.map((p) => p.object), SK_MSG_OBJECT]) {
      if (!objects.has(object)) objects.set(object, openObject({ ...shared, object }));
    }
    // The tc reroute programs are loaded per pod (tc.ts); load them once here too, so a
    // broken object fails the install, and drop old builds' pins (see pinRerouteInstance).
    bpf.closeObject(openObject({ ...shared, object: TC_REROUTE_OBJECT, rodata: encodeSkLookupConfig(0n) }));
    unpinReroutePrograms(pins.root);
    installSteering(shared, () => migration?.copy()); // the copy comes before the first swap
    for (const { object, program } of CGROUP_PROGRAMS) {
      const prog = bpf.findProgram(objects.get(object)!, program);
      report[updateOrAttach(join(pins.links, program), bpf.programFd(prog), () => bpf.attachCgroup(prog, cgroupFd))].push(program);
    }
    attachSkMsg(bpf.findProgram(objects.get(SK_MSG_OBJECT)!, SK_MSG_PROGRAM), pins, report, log);
    if (migration) {
      const m = migration.finish(pins.netnsLinks, (cookie) => {
        const { obj, progFd } = loadNetnsEntry(shared, cookie);
        return { progFd, close: () => bpf.closeObject(obj) };
      }, () => relinkRerouteFilters(pins.root, (cookie) => openObject({ ...shared, object: TC_REROUTE_OBJECT, rodata: encodeSkLookupConfig(cookie) })));
      log(`migrated maps ${m.maps.join(', ')} in place: ${m.entries} entries copied, ${m.caughtUp} caught up, ${m.netnsLinks} netns links and ${m.rerouteFilters} tc reroute filters moved`);
    }
  } catch (err) {
    migration?.abandon();
    throw err;
  } finally {
    closeSync(cgroupFd);
    for (const obj of objects.values()) bpf.closeObject(obj);
  }
  return report;
}
