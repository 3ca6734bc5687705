// A thin koffi binding to libbpf.so.1 (and the few libc calls the loader needs). Every
// call that can fail goes through a checker that throws BpfError with the operation, the
// errno and what to do about it. Nothing here knows about sluice's maps or programs.
import { SluiceError } from '../errors.js';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

const ERRNO = osConstants.errno;

/** What to tell the operator for an errno, per kind of operation. */
function hintFor(op: string, errno: number): string {
  if (errno === ERRNO.EPERM || errno === ERRNO.EACCES) return 'run as root (CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON are needed)';
  if (errno === ERRNO.ENOENT && op.startsWith('bpf_obj_get')) return 'the pin does not exist: install first, or check the bpffs directory';
  if (errno === ERRNO.ENOENT && op.startsWith('bpf_object__open')) return 'the BPF object is missing: run `make -C bpf`';
  if (errno === ERRNO.EEXIST) return 'a pin already exists at that path: uninstall, or let the loader adopt it';
  if ((errno === ERRNO.E2BIG || errno === ERRNO.ENOSPC) && op.startsWith('bpf_map_update')) return 'the map is full: raise its capacity';
  if (errno === ERRNO.EINVAL && op.startsWith('bpf_object__load')) return 'the kernel rejected a program or map: the verifier log is on stderr above';
  if (errno === ERRNO.EINVAL && op.startsWith('bpf_map__set_pin_path')) return 'the pin path is not on a bpffs mount';
  if (errno === ERRNO.EBADF) return 'a file descriptor was closed under the loader: this is a sluice bug';
  if (errno === ERRNO.ENOTSUP || errno === ERRNO.EOPNOTSUPP) return 'this kernel lacks the feature: run `sluice doctor`';
  return 'run `sluice doctor` to check the kernel and the bpffs';
}

export const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, n]) => [n, name]));

export class BpfError extends SluiceError {
  /** `code` is the errno name, e.g. `EPERM`: stable for callers to switch on. */
  constructor(
    /** The libbpf call and its subject, e.g. `bpf_obj_get(/sys/fs/bpf/sluice/maps/x)`. */
    readonly op: string,
    readonly errno: number,
    hint?: string,
  ) {
    const code = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
    super(code, `${op} failed: ${code}`, { hint: hint ?? hintFor(op, errno) });
  }
}

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

const bpfObject = koffi.opaque('bpf_object');
const bpfProgram = koffi.opaque('bpf_program');
const bpfMap = koffi.opaque('bpf_map');
const bpfLink = koffi.opaque('bpf_link');
koffi.pointer(bpfObject);
koffi.pointer(bpfProgram);
koffi.pointer(bpfMap);
koffi.pointer(bpfLink);

/** Opaque libbpf handles; only this module looks inside. */
export type BpfObject = { readonly __brand: 'bpf_object' };
export type BpfProgram = { readonly __brand: 'bpf_program' };
export type BpfMap = { readonly __brand: 'bpf_map' };
export type BpfLink = { readonly __brand: 'bpf_link' };

const c = {
  open_file: lib.func('bpf_object *bpf_object__open_file(const char *path, const void *opts)'),
  load: lib.func('int bpf_object__load(bpf_object *obj)'),
  close: lib.func('void bpf_object__close(bpf_object *obj)'),
  next_program: lib.func('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),
  find_program: lib.func('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
  program_name: lib.func('const char *bpf_program__name(const bpf_program *prog)'),
  program_fd: lib.func('int bpf_program__fd(const bpf_program *prog)'),
  set_autoload: lib.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
  next_map: lib.func('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
  map_name: lib.func('const char *bpf_map__name(const bpf_map *map)'),
  map_fd: lib.func('int bpf_map__fd(const bpf_map *map)'),
  map_is_internal: lib.func('bool bpf_map__is_internal(const bpf_map *map)'),
  map_value_size: lib.func('uint32_t bpf_map__value_size(const bpf_map *map)'),
  map_key_size: lib.func('uint32_t bpf_map__key_size(const bpf_map *map)'),
  map_type: lib.func('int bpf_map__type(const bpf_map *map)'),
  map_max_entries: lib.func('uint32_t bpf_map__max_entries(const bpf_map *map)'),
  map_set_pin_path: lib.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
  map_set_max_entries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)'),
  map_set_initial_value: lib.func('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),
  attach_cgroup: lib.func('bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)'),
  attach_netns: lib.func('bpf_link *bpf_program__attach_netns(const bpf_program *prog, int netns_fd)'),
  link_pin: lib.func('int bpf_link__pin(bpf_link *link, const char *path)'),
  link_fd: lib.func('int bpf_link__fd(const bpf_link *link)'),
  link_disconnect: lib.func('void bpf_link__disconnect(bpf_link *link)'),
  link_destroy: lib.func('int bpf_link__destroy(bpf_link *link)'),
  obj_get: lib.func('int bpf_obj_get(const char *pathname)'),
  obj_pin: lib.func('int bpf_obj_pin(int fd, const char *pathname)'),
  link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
  link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
  prog_attach: lib.func('int bpf_prog_attach(int prog_fd, int attachable_fd, int type, unsigned int flags)'),
  probe_prog_type: lib.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
  probe_map_type: lib.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),
  probe_helper: lib.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),
  link_detach: lib.func('int bpf_link_detach(int link_fd)'),
  obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ void *info, _Inout_ uint32_t *info_len)'),
  map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
  map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
  map_lookup_batch: lib.func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)'),
  libc_close: libc.func('int close(int fd)'),
  libc_syscall: libc.func('long syscall(long number, ...)'),
};

/** The errno of a failed libbpf call: libbpf 1.x returns -errno and also sets errno. */
function errnoOf(ret: number): number {
  return ret < 0 ? -ret : koffi.errno() || ERRNO.EINVAL;
}

function check(op: string, ret: number): number {
  if (ret < 0) throw new BpfError(op, errnoOf(ret));
  return ret;
}

function checkPtr<T>(op: string, ptr: unknown): T {
  if (ptr === null) throw new BpfError(op, koffi.errno() || ERRNO.EINVAL);
  return ptr as T;
}

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

/** Detaches a link from its hook even while pins or other fds still refer to it. */
export function linkDetach(linkFd: number, what: string): void {
  check(`bpf_link_detach(${what})`, c.link_detach(linkFd));
}

// ----------------------------------------------------------------- fd-based

export function objGet(path: string): number {
  return check(`bpf_obj_get(${path})`, c.obj_get(path));
}

/** bpf_obj_get, or null when nothing is pinned there. */
export function objGetIfPinned(path: string): number | null {
  const ret = c.obj_get(path) as number;
  if (ret >= 0) return ret;
  if (errnoOf(ret) === ERRNO.ENOENT) return null;
  throw new BpfError(`bpf_obj_get(${path})`, errnoOf(ret));
}

export function objPin(fd: number, path: string): void {
  check(`bpf_obj_pin(${path})`, c.obj_pin(fd, path));
}

/** Fills `info` (a struct bpf_*_info buffer) and returns how many bytes the kernel wrote. */
export function objInfo(fd: number, info: Buffer, what: string): number {
  const len = [info.length];
  check(`bpf_obj_get_info_by_fd(${what})`, c.obj_get_info_by_fd(fd, info, len));
  return len[0]!;
}

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number, what: string): void {
  check(`bpf_map_update_elem(${what})`, c.map_update_elem(fd, key, value, flags));
}

/** The value, or null when the key is absent. */
export function mapLookup(fd: number, key: Buffer, valueSize: number, what: string): Buffer | null {
  const value = Buffer.alloc(valueSize);
  const ret = c.map_lookup_elem(fd, key, value) as number;
  if (ret >= 0) return value;
  if (errnoOf(ret) === ERRNO.ENOENT) return null;
  throw new BpfError(`bpf_map_lookup_elem(${what})`, errnoOf(ret));
}

/** True when the key was there. */
export function mapDelete(fd: number, key: Buffer, what: string): boolean {
  const ret = c.map_delete_elem(fd, key) as number;
  if (ret >= 0) return true;
  if (errnoOf(ret) === ERRNO.ENOENT) return false;
  throw new BpfError(`bpf_map_delete_elem(${what})`, errnoOf(ret));
}

/** Every key of a map (a snapshot: concurrent updates may be missed or repeated). */
export function mapKeys(fd: number, keySize: number, what: string): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const ret = c.map_get_next_key(fd, prev, next) as number;
    if (ret < 0) {
      if (errnoOf(ret) === ERRNO.ENOENT) return keys;
      throw new BpfError(`bpf_map_get_next_key(${what})`, errnoOf(ret));
    }
    keys.push(next);
    prev = next;
  }
}

/** How many keys a map holds: the same walk as mapKeys, without keeping a buffer per key. */
export function mapCount(fd: number, keySize: number, what: string): number {
  const bufs = [Buffer.alloc(keySize), Buffer.alloc(keySize)];
  let n = 0;
  for (let prev: Buffer | null = null; ; n++) {
    const next = bufs[n % 2]!;
    const ret = c.map_get_next_key(fd, prev, next) as number;
    if (ret < 0) {
      if (errnoOf(ret) === ERRNO.ENOENT) return n;
      throw new BpfError(`bpf_map_get_next_key(${what})`, errnoOf(ret));
    }
    prev = next;
  }
}

/** The kernel's ENOTSUPP (not in os.constants): a map type without batch operations. */
const ENOTSUPP = 524;
const BATCH = 1024;

/**
 * How many keys a map holds, read with BPF_MAP_LOOKUP_BATCH: one syscall per BATCH
 * entries instead of one per entry, and a walk that a concurrent delete cannot send back
 * to the first bucket (get_next_key restarts when its key is gone). Null for a map type
 * without batch operations (LPM tries, sockhashes): use mapCount then.
 */
export function mapCountBatch(fd: number, keySize: number, valueSize: number, what: string): number | null {
  const token = Buffer.alloc(Math.max(keySize, 8)); // hash maps' cursor is a bucket index
  const keys = Buffer.allocUnsafe(keySize * BATCH);
  const values = Buffer.allocUnsafe(valueSize * BATCH);
  let n = 0;
  for (let first = true; ; first = false) {
    const count = [BATCH];
    const ret = c.map_lookup_batch(fd, first ? null : token, token, keys, values, count, null) as number;
    if (ret >= 0) {
      n += count[0]!;
      continue;
    }
    const errno = errnoOf(ret);
    if (errno === ERRNO.ENOENT) return n + count[0]!; // the last (possibly empty) batch
    if (first && (errno === ENOTSUPP || errno === ERRNO.EINVAL || errno === ERRNO.EOPNOTSUPP)) return null;
    throw new BpfError(`bpf_map_lookup_batch(${what})`, errno);
  }
}

export function closeFd(fd: number): void {
  c.libc_close(fd);
}

// -------------------------------------------------------------------- probes

/** libbpf's answer to "does this kernel support it": true, false, or the errno name when the probe itself failed. */
export type ProbeAnswer = boolean | string;

function probeAnswer(ret: number): ProbeAnswer {
  if (ret === 1) return true;
  if (ret === 0) return false;
  return ERRNO_NAMES.get(-ret) ?? `errno ${-ret}`;
}

/** libbpf_probe_bpf_prog_type: loads a trivial program of that type. */
export function probeProgType(progType: number): ProbeAnswer {
  return probeAnswer(c.probe_prog_type(progType, null) as number);
}

/** libbpf_probe_bpf_map_type: creates a small map of that type. */
export function probeMapType(mapType: number): ProbeAnswer {
  return probeAnswer(c.probe_map_type(mapType, null) as number);
}

/** libbpf_probe_bpf_helper: whether programs of that type may call the helper. */
export function probeHelper(progType: number, helperId: number): ProbeAnswer {
  return probeAnswer(c.probe_helper(progType, helperId, null) as number);
}

// ------------------------------------------------------------------- syscalls

const SYS_PIDFD_OPEN = 434; // x86_64 and aarch64 share the new-syscall numbers
const SYS_PIDFD_GETFD = 438;

export function pidfdOpen(pid: number): number {
  koffi.errno(0);
  const ret = Number(c.libc_syscall(SYS_PIDFD_OPEN, 'int', pid, 'uint', 0));
  if (ret < 0) throw new BpfError(`pidfd_open(${pid})`, koffi.errno(), 'the process is gone, or this kernel is older than 5.3');
  return ret;
}

/** A duplicate, in this process, of file descriptor `fd` of the process behind `pidfd`. */
export function pidfdGetfd(pidfd: number, fd: number): number {
  koffi.errno(0);
  const ret = Number(c.libc_syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', fd, 'uint', 0));
  if (ret < 0) throw new BpfError(`pidfd_getfd(${fd})`, koffi.errno(), 'the socket was closed meanwhile, or ptrace access is denied (root needed)');
  return ret;
}

