// struct bpf_map_info and struct bpf_link_info (uapi/linux/bpf.h), read in one place. The
// kernel fills them little-endian on the only architectures sluice runs on (x86_64, arm64).
import * as bpf from './libbpf.js';

type Field = readonly [offset: number, kind: 'u32' | 'u64'];
type Fields<F extends Record<string, Field>> = { [K in keyof F]: F[K][1] extends 'u64' ? bigint : number };

/** Reads the info of an open BPF fd into the named fields; `what` names it in the error. */
export function readInfo<F extends Record<string, Field>>(fd: number, what: string, size: number, fields: F): Fields<F> {
  const info = Buffer.alloc(size);
  bpf.objInfo(fd, info, what);
  const out: Record<string, number | bigint> = {};
  for (const [name, [off, kind]] of Object.entries(fields)) out[name] = kind === 'u64' ? info.readBigUInt64LE(off) : info.readUInt32LE(off);
  return out as Fields<F>;
}
