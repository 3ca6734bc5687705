// A thin binding to libbpf: objects, programs, maps and links (this file), fd-based calls
// (libbpf-fd.ts). Every call that can fail throws BpfError with the operation, the errno
// and what to do about it. Nothing here knows about sluice's maps or programs.
import koffi from 'koffi';
import { BpfError, ERRNO } from './bpf-error.js';
import { c, check, checkPtr, type BpfLink, type BpfMap, type BpfObject, type BpfProgram } from './libbpf-ffi.js';

export { BpfError, ERRNO_NAMES } from './bpf-error.js';
export type { BpfLink, BpfMap, BpfObject, BpfProgram } from './libbpf-ffi.js';
export * from './libbpf-fd.js';

// ------------------------------------------------------------------- objects

export function openObject(path: string): BpfObject {
  koffi.errno(0);
  return checkPtr(`bpf_object__open_file(${path})`, c.open_file(path, null));
}

export function loadObject(obj: BpfObject, what: string): void {
  check(`bpf_object__load(${what})`, c.load(obj));
}

export function closeObject(obj: BpfObject): void {
  c.close(obj);
}

export function programs(obj: BpfObject): BpfProgram[] {
  const out: BpfProgram[] = [];
  for (let p = c.next_program(obj, null); p !== null; p = c.next_program(obj, p)) out.push(p as BpfProgram);
  return out;
}

export function findProgram(obj: BpfObject, name: string): BpfProgram {
  const p = c.find_program(obj, name);
  if (p === null) throw new BpfError(`bpf_object__find_program_by_name(${name})`, ERRNO.ENOENT, 'the BPF object does not define this program: rebuild with `make -C bpf`');
  return p as BpfProgram;
}

export function programName(p: BpfProgram): string {
  return c.program_name(p) as string;
}

export function programFd(p: BpfProgram): number {
  return check(`bpf_program__fd(${programName(p)})`, c.program_fd(p));
}

/** Leave a program of an object unloaded (before bpf_object__load). */
export function skipProgram(p: BpfProgram): void {
  check(`bpf_program__set_autoload(${programName(p)}, false)`, c.set_autoload(p, false));
}

export function maps(obj: BpfObject): BpfMap[] {
  const out: BpfMap[] = [];
  for (let m = c.next_map(obj, null); m !== null; m = c.next_map(obj, m)) out.push(m as BpfMap);
  return out;
}

export function findMap(obj: BpfObject, name: string): BpfMap {
  const m = maps(obj).find((x) => mapName(x) === name);
  if (!m) throw new BpfError(`bpf_object__find_map_by_name(${name})`, ERRNO.ENOENT, 'the BPF object does not define this map: rebuild with `make -C bpf`');
  return m;
}

export function mapName(m: BpfMap): string {
  return c.map_name(m) as string;
}

export function mapFd(m: BpfMap): number {
  return check(`bpf_map__fd(${mapName(m)})`, c.map_fd(m));
}

export function mapIsInternal(m: BpfMap): boolean {
  return c.map_is_internal(m) as boolean;
}

export function mapValueSize(m: BpfMap): number {
  return c.map_value_size(m) as number;
}

/** What the kernel checks when libbpf reuses a pinned map: type, key and value size, entries. */
export function mapShape(m: BpfMap): { type: number; keySize: number; valueSize: number; maxEntries: number } {
  return { type: c.map_type(m) as number, keySize: c.map_key_size(m) as number, valueSize: c.map_value_size(m) as number, maxEntries: c.map_max_entries(m) as number };
}

/** libbpf reuses the map pinned there at load (or creates and pins it). */
export function setMapPinPath(m: BpfMap, path: string): void {
  check(`bpf_map__set_pin_path(${mapName(m)}, ${path})`, c.map_set_pin_path(m, path));
}

export function setMapMaxEntries(m: BpfMap, n: number): void {
  check(`bpf_map__set_max_entries(${mapName(m)}, ${n})`, c.map_set_max_entries(m, n));
}

export function setMapInitialValue(m: BpfMap, data: Buffer): void {
  check(`bpf_map__set_initial_value(${mapName(m)})`, c.map_set_initial_value(m, data, data.length));
}

// --------------------------------------------------------------------- links

export function attachCgroup(p: BpfProgram, cgroupFd: number): BpfLink {
  koffi.errno(0);
  return checkPtr(`bpf_program__attach_cgroup(${programName(p)})`, c.attach_cgroup(p, cgroupFd));
}

export function attachNetns(p: BpfProgram, netnsFd: number): BpfLink {
  koffi.errno(0);
  return checkPtr(`bpf_program__attach_netns(${programName(p)})`, c.attach_netns(p, netnsFd));
}

/** Pins the link, then lets go of libbpf's handle without detaching: the pin holds it. */
export function pinAndRelease(link: BpfLink, path: string): void {
  try {
    check(`bpf_link__pin(${path})`, c.link_pin(link, path));
  } catch (err) {
    c.link_destroy(link); // not pinned: destroying detaches it, which is what we want
    throw err;
  }
  // A disconnected link is freed without closing its fd (libbpf closes it only in the
  // detach it skips): close it here, or every attach leaks one (the soak test found it).
  // The pin keeps the link attached.
  const fd = c.link_fd(link) as number;
  c.link_disconnect(link);
  c.link_destroy(link);
  if (fd >= 0) c.libc_close(fd);
}

export function linkUpdate(linkFd: number, progFd: number, what: string): void {
  check(`bpf_link_update(${what})`, c.link_update(linkFd, progFd, null));
}

/** A link of `progFd` to the object `targetFd` (a sockmap for SK_MSG_VERDICT, kernel 6.10+); returns its fd. */
export function linkCreate(progFd: number, targetFd: number, attachType: number, what: string): number {
  return check(`bpf_link_create(${what})`, c.link_create(progFd, targetFd, attachType, null));
}

/** The pre-link attachment: the program lives with the target (a sockmap) until replaced or the map goes. */
export function progAttach(progFd: number, targetFd: number, attachType: number, what: string): void {
  check(`bpf_prog_attach(${what})`, c.prog_attach(progFd, targetFd, attachType, 0));
}

/** Ids of the programs attached to `targetFd` (a sockmap: 6.0+) at `attachType`, links' included. */
export function progQuery(targetFd: number, attachType: number, what: string, max = 16): number[] {
  const ids = Buffer.alloc(4 * max);
  const cnt = [max];
  check(`bpf_prog_query(${what})`, c.prog_query(targetFd, attachType, 0, [0], ids, cnt));
  return Array.from({ length: cnt[0]! }, (_, i) => ids.readUInt32LE(4 * i));
}

/** Detaches a link from its hook even while pins or other fds still refer to it. */
export function linkDetach(linkFd: number, what: string): void {
  check(`bpf_link_detach(${what})`, c.link_detach(linkFd));
}
