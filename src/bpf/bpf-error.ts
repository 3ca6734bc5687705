// BpfError: a failed libbpf or bpf(2) call, with the operation, the errno name as its code
// and what to do about it. No libbpf here, so the fake maps (fake/maps.ts) raise it too.
import { SluiceError } from '../errors.js';
import { constants as osConstants } from 'node:os';

export const ERRNO = osConstants.errno;

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
