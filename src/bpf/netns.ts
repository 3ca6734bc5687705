// Network-namespace facts read through native/build/libsluice-netns.so, which enters the
// namespace on a private thread: the daemon's own threads never move.
//
// A netns path comes from the pod (an annotation, or /proc/PID/ns/net found for it), so
// openPodNetns trusts nothing: the native side opens only an nsfs file of a network
// namespace (never a FIFO or a device, and with O_NONBLOCK), and this side refuses the
// host's and the daemon's own namespace, compared by inode and device.
import { SluiceError } from '../errors.js';
import { closeSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { NetnsError, NetnsRefusedError } from '../dataplane/errors.js';

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
const EMEDIUMTYPE = 124;

export const NETNS_LIBRARY = fileURLToPath(new URL('../../native/build/libsluice-netns.so', import.meta.url));

/** The host's netns as the daemon sees it: PID 1's (configurable for tests in a stand-in). */
export const DEFAULT_HOST_NETNS = '/proc/1/ns/net';
/** The daemon's own netns. */
const OWN_NETNS = '/proc/self/ns/net';

export class NativeHelperError extends SluiceError {
  constructor(path: string) {
    super('NATIVE_HELPER_MISSING', `the native helper ${path} is missing`, { hint: 'run `make -C native` (or `npm run build`)' });
  }
}

interface Native {
  open: (path: string, fd: number[], cookie: bigint[], ino: bigint[], dev: bigint[]) => number;
  ifindex: (path: string, name: string, out: number[]) => number;
}

let native: Native | null = null;

function load(): Native {
  if (native) return native;
  if (!existsSync(NETNS_LIBRARY)) throw new NativeHelperError(NETNS_LIBRARY);
  const lib = koffi.load(NETNS_LIBRARY);
  native = {
    open: lib.func('int sluice_netns_open(const char *path, _Out_ int *fd, _Out_ uint64_t *cookie, _Out_ uint64_t *ino, _Out_ uint64_t *dev)'),
    ifindex: lib.func('int sluice_netns_ifindex(const char *path, const char *ifname, _Out_ uint32_t *ifindex)'),
  };
  return native;
}

/** Who a netns is: its cookie, and the nsfs inode and device of the file that names it. */
export interface PodNetnsId {
  cookie: bigint;
  ino: bigint;
  dev: bigint;
}

export interface NetnsGuard {
  /** Paths of namespaces never captured besides the daemon's own; default PID 1's. */
  hostNetns?: string[];
}

function refused(path: string, id: PodNetnsId, guard: NetnsGuard): string | null {
  const others: [string, string][] = [[OWN_NETNS, "the daemon's own network namespace"], ...(guard.hostNetns ?? [DEFAULT_HOST_NETNS]).map((p): [string, string] => [p, `the host's network namespace (${p})`])];
  for (const [p, what] of others) {
    let st;
    try {
      st = statSync(p, { bigint: true });
    } catch {
      continue; // a host netns path that does not exist names nothing to protect
    }
    if (st.ino === id.ino && st.dev === id.dev) return `it is ${what}`;
  }
  return null;
}

function fail(path: string, rc: number): never {
  if (rc === EMEDIUMTYPE) throw new NetnsRefusedError(path, 'it is not a network namespace file (nsfs)');
  throw new NetnsError(path, ERRNO_NAMES.get(rc) ?? `errno ${rc}`);
}

/**
 * Opens a pod's netns with every check, runs `use` with the open fd (so what is checked is
 * what is used), and closes it. Throws NetnsRefusedError or NetnsError.
 */
export function withPodNetns<T>(path: string, guard: NetnsGuard, use: (fd: number, id: PodNetnsId) => T): T {
  const fd = [-1];
  const cookie = [0n];
  const ino = [0n];
  const dev = [0n];
  const rc = load().open(path, fd, cookie, ino, dev);
  if (rc !== 0) fail(path, rc);
  try {
    const id = { cookie: BigInt(cookie[0]!), ino: BigInt(ino[0]!), dev: BigInt(dev[0]!) };
    const why = refused(path, id, guard);
    if (why) throw new NetnsRefusedError(path, why);
    return use(fd[0]!, id);
  } finally {
    closeSync(fd[0]!);
  }
}

/** The identity of a pod's netns (see withPodNetns for the checks). */
export function openPodNetns(path: string, guard: NetnsGuard = {}): PodNetnsId {
  return withPodNetns(path, guard, (_fd, id) => id);
}

/** The netns cookie of the namespace at `path`, with the checks of openPodNetns. */
export function netnsCookie(path: string, guard: NetnsGuard = {}): bigint {
  return openPodNetns(path, guard).cookie;
}

/** The ifindex of interface `name` inside the namespace, or null when it has none. */
export function netnsIfindex(path: string, name: string): number | null {
  const out: number[] = [0];
  const rc = load().ifindex(path, name, out);
  if (rc === osConstants.errno.ENODEV || rc === osConstants.errno.ENXIO) return null;
  if (rc !== 0) fail(path, rc);
  return out[0]!;
}
