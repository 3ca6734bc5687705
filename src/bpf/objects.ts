// The BPF objects the loader opens (bpf/build/<object>.bpf.o) and the programs in them.
import { SluiceError } from '../errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_OBJECT_DIR = fileURLToPath(new URL('../../bpf/build/', import.meta.url));

/** The cgroup programs: object file and program name. */
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
export const SK_LOOKUP_PROG_MAP = 'sluice_lookup_prog';

/** The acceleration program, attached to the sluice_accel sockhash (not to a cgroup). */
export const SK_MSG_OBJECT = 'sk_msg';
export const SK_MSG_PROGRAM = 'sluice_sk_msg';
export const ACCEL_MAP = 'sluice_accel';

/** tc programs for reroute (KubeVirt) interfaces: one instance per pod netns, attached by tc.ts. */
export const TC_REROUTE_OBJECT = 'tc_reroute';

/** Every object an install loads. */
export const LOADER_OBJECTS: readonly string[] = [...new Set<string>([...CGROUP_PROGRAMS.map((p) => p.object), SK_MSG_OBJECT, TC_REROUTE_OBJECT, SK_LOOKUP_OBJECT])];

export type LoaderErrorCode = 'CGROUP_NOT_V2' | 'CGROUP_ROOT_REFUSED' | 'OBJECT_MISSING' | 'PINNED_ELSEWHERE' | 'PINNED_MAP_INCOMPATIBLE' | 'NOT_INSTALLED';

export class LoaderError extends SluiceError {
  declare readonly code: LoaderErrorCode;
  constructor(code: LoaderErrorCode, message: string) {
    super(code, message);
  }
}

export function objectPath(dir: string, object: string): string {
  const p = join(dir, `${object}.bpf.o`);
  if (!existsSync(p)) throw new LoaderError('OBJECT_MISSING', `BPF object ${p} is missing: run \`make -C bpf\``);
  return p;
}
