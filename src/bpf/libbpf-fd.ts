// The fd-based libbpf calls: pins, object info, map elements, feature probes, and the
// pidfd syscalls that copy a socket out of another process.
import koffi from 'koffi';
import { BpfError, ERRNO, ERRNO_NAMES } from './bpf-error.js';
import { c, check, errnoOf } from './libbpf-ffi.js';

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
 * to the first bucket (get_next_key restarts when its key is gone). `valueBytes` is what
 * one lookup writes (per-CPU maps: every CPU's slot). Null for a map type without batch
 * operations (LPM tries, sockhashes): use mapCount then.
 */
export function mapCountBatch(fd: number, keySize: number, valueBytes: number, what: string): number | null {
  const token = Buffer.alloc(Math.max(keySize, 8)); // hash maps' cursor is a bucket index
  const keys = Buffer.allocUnsafe(keySize * BATCH);
  const values = Buffer.allocUnsafe(valueBytes * BATCH);
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
