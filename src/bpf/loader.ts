// The loader: opens and loads the BPF objects, pins every map and link under one bpffs
// directory, attaches the cgroup programs to one cgroup v2 directory and the sk_lookup
// program to each captured pod's netns. It is level-triggered: on a restart it adopts
// what is pinned (maps keep their contents, links stay attached, and the programs are
// swapped in place with bpf_link_update, so interception never stops).
//
//   <bpffs>/maps/<map>            every map of bpf/maps.h
//   <bpffs>/links/<program>       cgroup links, and the sk_msg link on sluice_accel
//   <bpffs>/links/netns/<cookie>  sk_lookup link of one pod netns
//   <bpffs>/progs/<cookie>/<prog> tc reroute programs of one pod netns (attached by tc.ts)
import { SluiceError } from '../errors.js';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, realpathSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSkLookupConfig } from './codec.js';
import { applyFallbacks } from './fallbacks.js';
import * as bpf from './libbpf.js';
import { mapInfoOf } from './map-info.js';
import { ATTACH_TYPES } from './probe-facts.js';
import { builtShapes, Migration, recoverMigration } from './migrate.js';
import { ensureBpffs, findCgroup2Mount } from './system.js';
import { unpinRerouteInstances } from './tc-pins.js';

export const DEFAULT_BPFFS_DIR = '/sys/fs/bpf/sluice';
export const DEFAULT_OBJECT_DIR = fileURLToPath(new URL('../../bpf/build/', import.meta.url));

export const MAP_NAMES = [
  'sluice_pods',
  'sluice_ports',
  'sluice_cidrs',
  'sluice_ifaces',
  'sluice_binds',
  'sluice_conns',
  'sluice_socks',
  'sluice_dns',
  'sluice_listen',
  'sluice_counters',
  'sluice_global',
  'sluice_accel',
  'sluice_addrs',
  'sluice_conn_count',
  'sluice_pending',
] as const;
export type MapName = (typeof MAP_NAMES)[number];

/** The cgroup programs: object file (bpf/build/<object>.bpf.o) and program name. */
export const CGROUP_PROGRAMS = [
  { object: 'connect', program: 'sluice_connect4' },
  { object: 'connect', program: 'sluice_connect6' },
  { object: 'getpeername', program: 'sluice_getpeername4' },
  { object: 'getpeername', program: 'sluice_getpeername6' },
  { object: 'sockops', program: 'sluice_sockops' },
  { object: 'getsockopt', program: 'sluice_getsockopt' },
  // UDP DNS capture: datagrams sent with an address, and the replies' source.
  { object: 'dns', program: 'sluice_sendmsg4' },
  { object: 'dns', program: 'sluice_sendmsg6' },
  { object: 'dns', program: 'sluice_recvmsg4' },
  { object: 'dns', program: 'sluice_recvmsg6' },
] as const;

export const SK_LOOKUP_OBJECT = 'sk_lookup';
/** The per-netns entry; it tail-calls the steering program through SK_LOOKUP_PROG_MAP. */
export const SK_LOOKUP_PROGRAM = 'sluice_sk_lookup';
export const SK_LOOKUP_STEER_PROGRAM = 'sluice_sk_lookup_steer';
const SK_LOOKUP_PROG_MAP = 'sluice_lookup_prog';

/** The acceleration program, attached to the sluice_accel sockhash (not to a cgroup). */
export const SK_MSG_OBJECT = 'sk_msg';
export const SK_MSG_PROGRAM = 'sluice_sk_msg';
export const ACCEL_MAP = 'sluice_accel';

/** tc programs for reroute (KubeVirt) interfaces: one instance per pod netns, attached by tc.ts. */
export const TC_REROUTE_OBJECT = 'tc_reroute';

/** The pinned tc programs of one pod netns: <bpffs>/progs/<cookie>/<program>. */
export interface Capacity {
  /** Captured pods per node. */
  pods: number;
  /** Concurrent captured connections (original-destination records). */
  connections: number;
  /** Entries of each set map (ports, CIDRs, interfaces, binds), all pods together. */
  setEntries: number;
}

export const DEFAULT_CAPACITY: Capacity = Object.freeze({ pods: 512, connections: 262144, setEntries: 65536 });

/** A map's size for this capacity; null for the fixed-size ones (socket storage, counters, flags). */
export function capacityOf(name: MapName, cap: Capacity): number | null {
  switch (name) {
    case 'sluice_pods':
      return cap.pods;
    case 'sluice_listen':
      return 4 * cap.pods; // P_IN and P_OUT, IPv4 and IPv6
    case 'sluice_conns':
    case 'sluice_accel': // two entries per accelerated connection; a full map is counted, the pair stays on TCP
      return cap.connections;
    case 'sluice_addrs':
      return 8 * cap.pods; // SLUICE_MAX_POD_IPS per family
    case 'sluice_conn_count':
      return 2 * cap.pods; // counts of removed pods linger until their connections close
    case 'sluice_pending':
      return cap.pods;
    case 'sluice_ports':
    case 'sluice_cidrs':
    case 'sluice_ifaces':
    case 'sluice_binds':
      return cap.setEntries;
    default:
      return null; // socket storage and counters have fixed sizes
  }
}

/** The `sluice run` flag of each capacity; the set maps' size has none. */
const CAPACITY_FLAGS: Partial<Record<keyof Capacity, string>> = { pods: '--max-pods', connections: '--max-connections' };

/** The `sluice run` flag that sizes `name`, read off capacityOf: the one whose change changes the size. */
export function capacityFlag(name: MapName): string | undefined {
  const base = capacityOf(name, DEFAULT_CAPACITY);
  for (const [key, flag] of Object.entries(CAPACITY_FLAGS) as [keyof Capacity, string][]) {
    if (capacityOf(name, { ...DEFAULT_CAPACITY, [key]: DEFAULT_CAPACITY[key] + 1 }) !== base) return flag;
  }
  return undefined;
}

export interface LoaderOptions {
  /** A directory on bpffs; created (and bpffs mounted at /sys/fs/bpf) when missing. */
  bpffsDir?: string;
  objectDir?: string;
  capacity?: Partial<Capacity>;
  log?: (message: string) => void;
}

export interface InstallOptions extends LoaderOptions {
  /** The cgroup v2 directory the programs attach to. */
  cgroupDir: string;
  /** The cgroup2 root itself (production). Refused unless set, so a test never does it. */
  allowCgroupRoot?: boolean;
}

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

export type LoaderErrorCode = 'CGROUP_NOT_V2' | 'CGROUP_ROOT_REFUSED' | 'OBJECT_MISSING' | 'PINNED_ELSEWHERE' | 'PINNED_MAP_INCOMPATIBLE' | 'NOT_INSTALLED';

export class LoaderError extends SluiceError {
  declare readonly code: LoaderErrorCode;
  constructor(code: LoaderErrorCode, message: string) {
    super(code, message);
  }
}

export interface InstallReport {
  /** Programs attached by this call. */
  attached: string[];
  /** Programs whose pinned link was adopted and given the newly loaded program. */
  updated: string[];
  /** Maps that were pinned before this install and were reused (their contents survive). */
  adoptedMaps: string[];
}

/** Resolves `dir` and checks it is a cgroup v2 directory this loader may attach to. */
export function checkCgroupDir(dir: string, allowRoot = false): string {
  const mount = findCgroup2Mount();
  if (!mount) throw new LoaderError('CGROUP_NOT_V2', 'no cgroup2 filesystem is mounted (see /proc/mounts); mount one: mount -t cgroup2 none /sys/fs/cgroup');
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new LoaderError('CGROUP_NOT_V2', `cgroup directory ${dir} does not exist; create it under ${mount}`);
  }
  const rootReal = realpathSync(mount);
  const rel = relative(rootReal, real);
  if (rel.startsWith('..') || rel.startsWith(sep)) throw new LoaderError('CGROUP_NOT_V2', `${dir} is not under the cgroup2 mount ${mount}`);
  if (rel === '' && !allowRoot) throw new LoaderError('CGROUP_ROOT_REFUSED', `refusing to attach to the cgroup2 root ${mount} without allowCgroupRoot (sluice run --cgroup ${mount} sets it)`);
  return real;
}

function objectPath(dir: string, object: string): string {
  const p = join(dir, `${object}.bpf.o`);
  if (!existsSync(p)) throw new LoaderError('OBJECT_MISSING', `BPF object ${p} is missing: run \`make -C bpf\``);
  return p;
}

const LINK_INFO_SIZE = 64;
const LINK_INFO_CGROUP_ID = 16;
const LINK_INFO_SOCKMAP_MAP_ID = 16;
const LINK_INFO_NETNS_INO = 16;

type MapShape = ReturnType<typeof bpf.mapShape>;

/** struct bpf_map_info of a pinned map: type, key_size, value_size, max_entries. */
function pinnedShape(path: string): MapShape | null {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return null;
  try {
    const { type, keySize, valueSize, maxEntries } = mapInfoOf(fd, path);
    return { type, keySize, valueSize, maxEntries };
  } finally {
    bpf.closeFd(fd);
  }
}

/**
 * A pinned map libbpf cannot reuse (another sluice version's layout): say so by name, rather
 * than let the load fail with a bare EINVAL.
 */
function checkReusable(name: string, pinPath: string, pinned: MapShape, wanted: MapShape, bpffsDir: string): void {
  const diff = (['type', 'keySize', 'valueSize', 'maxEntries'] as const).filter((k) => pinned[k] !== wanted[k]);
  if (diff.length === 0) return;
  const what = diff.map((k) => `${k} ${pinned[k]} pinned, ${wanted[k]} in this build`).join(', ');
  throw new LoaderError(
    'PINNED_MAP_INCOMPATIBLE',
    `map ${name} pinned at ${pinPath} was made by another sluice version (${what}); nothing was changed. Run \`sluice uninstall --bpffs ${bpffsDir}\` and start again (new connections are not captured until the daemon is back), or keep running the version that made it`,
  );
}

/**
 * Opens and loads one object so that its maps are the shared, pinned ones. A pinned map
 * keeps the capacity it was created with (changing it needs an uninstall).
 */
export interface OpenExtras {
  /** The object's .rodata (the sk_lookup entry's netns cookie). */
  rodata?: Buffer;
  /** Programs of the object not to load. */
  skip?: string[];
}

export function openShared(objectDir: string, object: string, pins: Pins, cap: Capacity, warned: Set<string>, log: (m: string) => void, extras: OpenExtras = {}): bpf.BpfObject {
  const { rodata, skip = [] } = extras;
  const obj = bpf.openObject(objectPath(objectDir, object));
  try {
    for (const name of skip) bpf.skipProgram(bpf.findProgram(obj, name));
    for (const m of bpf.maps(obj)) {
      const name = bpf.mapName(m);
      if (bpf.mapIsInternal(m)) {
        if (rodata && name.endsWith('.rodata')) bpf.setMapInitialValue(m, rodata);
        continue;
      }
      const pinPath = pins.staged?.get(name) ?? join(pins.maps, name);
      const shape = pinnedShape(pinPath);
      const pinned = shape?.maxEntries ?? null;
      const wanted = capacityOf(name as MapName, cap);
      if (shape !== null) {
        // Sized maps take the pinned capacity below; everything else must match as built.
        checkReusable(name, pinPath, shape, { ...bpf.mapShape(m), ...(wanted !== null ? { maxEntries: shape.maxEntries } : {}) }, pins.root);
        if (wanted !== null && pinned !== wanted && !warned.has(name)) {
          warned.add(name);
          log(`map ${name}: keeping the pinned capacity ${pinned} (configured ${wanted}); uninstall to change it`);
        }
        if (wanted !== null) bpf.setMapMaxEntries(m, shape.maxEntries);
      } else if (wanted !== null) {
        bpf.setMapMaxEntries(m, wanted);
      }
      bpf.setMapPinPath(m, pinPath);
    }
    applyFallbacks(obj);
    bpf.loadObject(obj, object);
    return obj;
  } catch (err) {
    bpf.closeObject(obj);
    throw err;
  }
}

function linkCgroupId(fd: number, what: string): bigint {
  const info = Buffer.alloc(LINK_INFO_SIZE);
  bpf.objInfo(fd, info, what);
  return info.readBigUInt64LE(LINK_INFO_CGROUP_ID);
}

function mapId(fd: number, what: string): number {
  return mapInfoOf(fd, what).id;
}

/**
 * Attaches the sk_msg program to the pinned sluice_accel sockhash with a pinned link
 * (kernel 6.10+), or adopts that link and gives it the new program. Sockets already in the
 * map keep the program they were enrolled with until they close. Kernels without sockmap
 * links get bpf_prog_attach, which lives as long as the map.
 */
function attachSkMsg(prog: bpf.BpfProgram, pins: Pins, report: InstallReport, log: (m: string) => void): void {
  const mapPath = join(pins.maps, ACCEL_MAP);
  const linkPath = join(pins.links, SK_MSG_PROGRAM);
  const progFd = bpf.programFd(prog);
  const mapFd = bpf.objGet(mapPath);
  try {
    const fd = bpf.objGetIfPinned(linkPath);
    if (fd !== null) {
      let current: boolean;
      try {
        const info = Buffer.alloc(LINK_INFO_SIZE);
        bpf.objInfo(fd, info, linkPath);
        current = info.readUInt32LE(LINK_INFO_SOCKMAP_MAP_ID) === mapId(mapFd, mapPath);
        if (current) bpf.linkUpdate(fd, progFd, linkPath);
      } finally {
        bpf.closeFd(fd);
      }
      if (current) {
        report.updated.push(SK_MSG_PROGRAM);
        return;
      }
      log(`${linkPath} served another ${ACCEL_MAP}; replacing it`);
      detachPinnedLink(linkPath);
    }
    let linkFd: number;
    try {
      linkFd = bpf.linkCreate(progFd, mapFd, ATTACH_TYPES.BPF_SK_MSG_VERDICT, `${SK_MSG_PROGRAM} on ${mapPath}`);
    } catch (err) {
      if (!(err instanceof bpf.BpfError) || err.code !== 'EINVAL') throw err;
      bpf.progAttach(progFd, mapFd, ATTACH_TYPES.BPF_SK_MSG_VERDICT, `${SK_MSG_PROGRAM} on ${mapPath}`);
      log(`this kernel has no sockmap links: ${SK_MSG_PROGRAM} is attached to ${ACCEL_MAP} directly and stays until the map is removed`);
      // A map of an earlier install already had one; the attach replaced it, in place.
      (report.adoptedMaps.includes(ACCEL_MAP) ? report.updated : report.attached).push(SK_MSG_PROGRAM);
      return;
    }
    try {
      bpf.objPin(linkFd, linkPath);
    } finally {
      bpf.closeFd(linkFd); // unpinned, closing detaches it
    }
    report.attached.push(SK_MSG_PROGRAM);
  } finally {
    bpf.closeFd(mapFd);
  }
}

/**
 * Installs the data plane, or adopts the installed one: maps are reused from their pins,
 * and each pinned link is kept and switched to the newly loaded program.
 */
export function install(opts: InstallOptions): InstallReport {
  const log = opts.log ?? (() => {});
  const cap: Capacity = { ...DEFAULT_CAPACITY, ...opts.capacity };
  const objectDir = opts.objectDir ?? DEFAULT_OBJECT_DIR;
  const cgroupDir = checkCgroupDir(opts.cgroupDir, opts.allowCgroupRoot);
  const cgroupId = statSync(cgroupDir, { bigint: true }).ino;
  const pins = pinLayout(opts.bpffsDir);
  ensureBpffs(pins.root);
  for (const d of [pins.maps, pins.links, pins.netnsLinks]) mkdirSync(d, { recursive: true });

  // Never adopt links that serve another cgroup: that is another installation.
  for (const { program } of CGROUP_PROGRAMS) {
    const path = join(pins.links, program);
    const fd = bpf.objGetIfPinned(path);
    if (fd === null) continue;
    try {
      if (linkCgroupId(fd, path) !== cgroupId) {
        throw new LoaderError('PINNED_ELSEWHERE', `${path} is attached to another cgroup than ${cgroupDir}; run \`sluice uninstall --bpffs ${pins.root}\` first or use another --bpffs directory`);
      }
    } finally {
      bpf.closeFd(fd);
    }
  }

  // Maps of another layout move to this build's in place (migrate.ts), under the pin lock.
  const recovered = recoverMigration(pins.root, pins.maps);
  if (recovered !== 'none') log(`an interrupted map migration was ${recovered}`);
  const objectNames = [...new Set([...CGROUP_PROGRAMS.map((p) => p.object), SK_MSG_OBJECT, TC_REROUTE_OBJECT, SK_LOOKUP_OBJECT])];
  const migration = Migration.stage(pins.root, pins.maps, builtShapes(objectNames.map((o) => objectPath(objectDir, o)), (n) => capacityOf(n as MapName, cap) !== null));
  if (migration) pins.staged = migration.staged;
  const report: InstallReport = { attached: [], updated: [], adoptedMaps: MAP_NAMES.filter((m) => existsSync(join(pins.maps, m))) };
  const warned = new Set<string>();
  const objects = new Map<string, bpf.BpfObject>();
  const cgroupFd = openSync(cgroupDir, 'r');
  try {
    for (const object of [...CGROUP_PROGRAMS.map((p) => p.object), SK_MSG_OBJECT]) {
      if (!objects.has(object)) objects.set(object, openShared(objectDir, object, pins, cap, warned, log));
    }
    // The tc reroute programs are loaded per pod (tc.ts); load them once here too, so a
    // broken object fails the install, and drop old builds' pins (see pinRerouteInstance).
    bpf.closeObject(openShared(objectDir, TC_REROUTE_OBJECT, pins, cap, warned, log, { rodata: encodeSkLookupConfig(0n) }));
    unpinRerouteInstances(pins.root);
    // The steering program every pod netns tail-calls: swapped in place on each start,
    // so an upgrade reaches every netns at once. The pinned prog array keeps it loaded.
    const lookup = openShared(objectDir, SK_LOOKUP_OBJECT, pins, cap, warned, log, { rodata: encodeSkLookupConfig(0n) });
    try {
      migration?.copy(); // before the first swap (the steering program, next)
      const key = Buffer.alloc(4);
      const value = Buffer.alloc(4);
      value.writeUInt32LE(bpf.programFd(bpf.findProgram(lookup, SK_LOOKUP_STEER_PROGRAM)));
      bpf.mapUpdate(bpf.mapFd(bpf.findMap(lookup, SK_LOOKUP_PROG_MAP)), key, value, 0, `${SK_LOOKUP_PROG_MAP}[0]`);
    } finally {
      bpf.closeObject(lookup);
    }
    for (const { object, program } of CGROUP_PROGRAMS) {
      const prog = bpf.findProgram(objects.get(object)!, program);
      const path = join(pins.links, program);
      const fd = bpf.objGetIfPinned(path);
      if (fd !== null) {
        try {
          bpf.linkUpdate(fd, bpf.programFd(prog), path);
        } finally {
          bpf.closeFd(fd);
        }
        report.updated.push(program);
      } else {
        bpf.pinAndRelease(bpf.attachCgroup(prog, cgroupFd), path);
        report.attached.push(program);
      }
    }
    attachSkMsg(bpf.findProgram(objects.get(SK_MSG_OBJECT)!, SK_MSG_PROGRAM), pins, report, log);
    if (migration) {
      const m = migration.finish(pins.netnsLinks, (cookie) => {
        const obj = openShared(objectDir, SK_LOOKUP_OBJECT, pins, cap, warned, log, { rodata: encodeSkLookupConfig(cookie), skip: [SK_LOOKUP_STEER_PROGRAM] });
        return { progFd: bpf.programFd(bpf.findProgram(obj, SK_LOOKUP_PROGRAM)), close: () => bpf.closeObject(obj) };
      });
      log(`migrated maps ${m.maps.join(', ')} in place: ${m.entries} entries copied, ${m.caughtUp} caught up, ${m.netnsLinks} netns links moved`);
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

/** True when every cgroup link and map of an installation is pinned under `bpffsDir`. */
export function isInstalled(bpffsDir: string = DEFAULT_BPFFS_DIR): boolean {
  const pins = pinLayout(bpffsDir);
  return CGROUP_PROGRAMS.every(({ program }) => existsSync(join(pins.links, program))) && MAP_NAMES.every((m) => existsSync(join(pins.maps, m)));
}

export function netnsLinkPath(bpffsDir: string, netnsCookie: bigint): string {
  return join(pinLayout(bpffsDir).netnsLinks, netnsCookie.toString());
}

/**
 * Links an sk_lookup instance that knows `netnsCookie` to the netns open as `netnsFd`
 * (opened and checked by netns.ts withPodNetns: never a path here, which a pod could point
 * at a FIFO or swap). Returns false when that netns already has one (adopted as it is).
 */
export function attachNetns(netnsCookie: bigint, netnsFd: number, opts: LoaderOptions = {}): boolean {
  const bpffsDir = opts.bpffsDir ?? DEFAULT_BPFFS_DIR;
  const path = netnsLinkPath(bpffsDir, netnsCookie);
  if (existsSync(path)) return false;
  const pins = pinLayout(bpffsDir);
  if (!isInstalled(bpffsDir)) throw new LoaderError('NOT_INSTALLED', `no sluice installation under ${bpffsDir}: install first`);
  const cap: Capacity = { ...DEFAULT_CAPACITY, ...opts.capacity };
  // Only the small entry is verified per pod; the steering program is shared.
  const obj = openShared(opts.objectDir ?? DEFAULT_OBJECT_DIR, SK_LOOKUP_OBJECT, pins, cap, new Set(), opts.log ?? (() => {}), {
    rodata: encodeSkLookupConfig(netnsCookie),
    skip: [SK_LOOKUP_STEER_PROGRAM],
  });
  try {
    bpf.pinAndRelease(bpf.attachNetns(bpf.findProgram(obj, SK_LOOKUP_PROGRAM), netnsFd), path);
  } finally {
    bpf.closeObject(obj);
  }
  return true;
}

/** Whether the netns of a pinned sk_lookup link still exists; null when no link is pinned. */
export function netnsLinkAlive(netnsCookie: bigint, bpffsDir: string = DEFAULT_BPFFS_DIR): boolean | null {
  const path = netnsLinkPath(bpffsDir, netnsCookie);
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return null;
  try {
    const info = Buffer.alloc(LINK_INFO_SIZE);
    bpf.objInfo(fd, info, path);
    // struct bpf_link_info.netns.netns_ino: 0 once the namespace is gone (the link is defunct).
    return info.readUInt32LE(LINK_INFO_NETNS_INO) !== 0;
  } finally {
    bpf.closeFd(fd);
  }
}

/** Detaches and unpins the sk_lookup link of one netns. False when there was none. */
export function detachNetns(netnsCookie: bigint, bpffsDir: string = DEFAULT_BPFFS_DIR): boolean {
  return detachPinnedLink(netnsLinkPath(bpffsDir, netnsCookie));
}

/** Cookies of the netns that have an sk_lookup link pinned. */
export function linkedNetns(bpffsDir: string = DEFAULT_BPFFS_DIR): bigint[] {
  const dir = pinLayout(bpffsDir).netnsLinks;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => /^\d+$/.test(n))
    .map((n) => BigInt(n));
}

function detachPinnedLink(path: string): boolean {
  const fd = bpf.objGetIfPinned(path);
  if (fd === null) return false;
  try {
    bpf.linkDetach(fd, path);
  } catch (err) {
    // A netns link whose namespace is gone is already defunct: nothing to detach.
    if (!(err instanceof bpf.BpfError) || (err.code !== 'ENOLINK' && err.code !== 'EINVAL')) throw err;
  } finally {
    bpf.closeFd(fd);
  }
  unlinkSync(path);
  return true;
}

export interface UninstallReport {
  detached: string[];
  unpinnedMaps: string[];
}

/** Detaches every link and removes every pin under `bpffsDir`; maps go with their last user. */
export function uninstall(bpffsDir: string = DEFAULT_BPFFS_DIR): UninstallReport {
  const pins = pinLayout(bpffsDir);
  const report: UninstallReport = { detached: [], unpinnedMaps: [] };
  if (!existsSync(pins.root)) return report;
  for (const cookie of linkedNetns(bpffsDir)) if (detachNetns(cookie, bpffsDir)) report.detached.push(`netns/${cookie}`);
  if (existsSync(pins.links)) {
    for (const name of readdirSync(pins.links)) {
      const p = join(pins.links, name);
      if (name === 'netns') continue;
      if (detachPinnedLink(p)) report.detached.push(name);
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
