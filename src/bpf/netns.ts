// Network-namespace facts read through native/build/libsluice-netns.so, which enters the
// namespace on a private thread: the daemon's own threads never move.
import { constants as osConstants } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { NetnsError } from '../daemon/dataplane.js';

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

export const NETNS_LIBRARY = fileURLToPath(new URL('../../native/build/libsluice-netns.so', import.meta.url));

export class NativeHelperError extends Error {
  override readonly name = 'NativeHelperError';
  readonly code = 'NATIVE_HELPER_MISSING';
  constructor(path: string) {
    super(`the native helper ${path} is missing: run \`make -C native -f netns.mk\` (or \`npm run build\`)`);
  }
}

interface Native {
  cookie: (path: string, out: bigint[]) => number;
  ifindex: (path: string, name: string, out: number[]) => number;
}

let native: Native | null = null;

function load(): Native {
  if (native) return native;
  if (!existsSync(NETNS_LIBRARY)) throw new NativeHelperError(NETNS_LIBRARY);
  const lib = koffi.load(NETNS_LIBRARY);
  native = {
    cookie: lib.func('int sluice_netns_cookie(const char *path, _Out_ uint64_t *cookie)'),
    ifindex: lib.func('int sluice_netns_ifindex(const char *path, const char *ifname, _Out_ uint32_t *ifindex)'),
  };
  return native;
}

/** The netns cookie of the namespace at `path` (a /var/run/netns file or /proc/PID/ns/net). */
export function netnsCookie(path: string): bigint {
  const out: bigint[] = [0n];
  const rc = load().cookie(path, out);
  if (rc !== 0) throw new NetnsError(path, ERRNO_NAMES.get(rc) ?? `errno ${rc}`);
  return BigInt(out[0]!);
}

/** The ifindex of interface `name` inside the namespace, or null when it has none. */
export function netnsIfindex(path: string, name: string): number | null {
  const out: number[] = [0];
  const rc = load().ifindex(path, name, out);
  if (rc === osConstants.errno.ENODEV || rc === osConstants.errno.ENXIO) return null;
  if (rc !== 0) throw new NetnsError(path, ERRNO_NAMES.get(rc) ?? `errno ${rc}`);
  return out[0]!;
}
