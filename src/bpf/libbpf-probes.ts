// The libbpf calls the kernel probes add to libbpf.ts: BTF lookups (kfuncs, an object's
// externs), loading a hand-written probe program, and silencing libbpf while probing.
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { BpfError, ERRNO, ERRNO_NAMES } from './bpf-error.js';
import { errnoOf, lib } from './libbpf-ffi.js';
import { closeFd, type ProbeAnswer } from './libbpf.js';

const c = {
  btf_load_vmlinux: lib.func('void *btf__load_vmlinux_btf()'),
  btf_parse_elf: lib.func('void *btf__parse_elf(const char *path, void *btf_ext)'),
  btf_free: lib.func('void btf__free(void *btf)'),
  btf_find_by_name_kind: lib.func('int btf__find_by_name_kind(const void *btf, const char *name, uint32_t kind)'),
  btf_type_cnt: lib.func('uint32_t btf__type_cnt(const void *btf)'),
  btf_type_by_id: lib.func('const uint32_t *btf__type_by_id(const void *btf, uint32_t id)'),
  btf_name_by_offset: lib.func('const char *btf__name_by_offset(const void *btf, uint32_t offset)'),
  prog_load: lib.func('int bpf_prog_load(int prog_type, const char *name, const char *license, const void *insns, size_t insn_cnt, const void *opts)'),
  set_print: lib.func('void *libbpf_set_print(void *fn)'),
};

/**
 * Loads `insns` (struct bpf_insn, 8 bytes each) as a program of that type, and closes it:
 * true when the verifier took it, false when it refused (EINVAL, EACCES), else the errno.
 * For what libbpf has no probe for, such as a context field.
 */
export function probeProgram(progType: number, expectedAttachType: number, insns: Buffer): ProbeAnswer {
  // struct bpf_prog_load_opts up to expected_attach_type: sz, attempts, expected_attach_type.
  const opts = Buffer.alloc(16);
  opts.writeBigUInt64LE(16n, 0);
  opts.writeUInt32LE(expectedAttachType, 12);
  const fd = c.prog_load(progType, 'sluice_probe', 'GPL', insns, insns.length / 8, opts) as number;
  if (fd >= 0) {
    closeFd(fd);
    return true;
  }
  const errno = errnoOf(fd);
  return errno === ERRNO.EINVAL || errno === ERRNO.EACCES ? false : (ERRNO_NAMES.get(errno) ?? `errno ${errno}`);
}

/** Runs `f` with libbpf's messages off (a probe's expected failure is no news). */
export function quietly<T>(f: () => T): T {
  const old = c.set_print(null);
  try {
    return f();
  } finally {
    c.set_print(old);
  }
}

// ----------------------------------------------------------------------- BTF

const BTF_KIND_FUNC = 12;
const BTF_KIND_VAR = 14;
const BTF_FUNC_EXTERN = 2;
const BTF_VAR_GLOBAL_EXTERN = 2;

function withBtf<T>(btf: unknown, what: string, use: (btf: unknown) => T): T {
  if (btf === null) throw new BpfError(what, koffi.errno() || ERRNO.ENOENT, 'no BTF to read: the kernel needs CONFIG_DEBUG_INFO_BTF (/sys/kernel/btf/vmlinux)');
  try {
    return use(btf);
  } finally {
    c.btf_free(btf);
  }
}

/** Whether the kernel exposes its BTF (without it, no kfunc can be called). */
export function btfAvailableForProbe(): boolean {
  return existsSync('/sys/kernel/btf/vmlinux');
}

/** Whether the running kernel's BTF has a function of that name (a kfunc's first condition). */
export function kernelHasFunc(name: string): boolean {
  koffi.errno(0);
  return withBtf(c.btf_load_vmlinux(), 'btf__load_vmlinux_btf', (btf) => (c.btf_find_by_name_kind(btf, name, BTF_KIND_FUNC) as number) > 0);
}

export interface ObjectExtern {
  name: string;
  kind: 'func' | 'var';
}

/** The extern functions (kfuncs) and variables (ksyms, kconfig) an object file declares, from its BTF. */
export function objectExterns(path: string): ObjectExtern[] {
  koffi.errno(0);
  return withBtf(c.btf_parse_elf(path, null), `btf__parse_elf(${path})`, (btf) => {
    const out: ObjectExtern[] = [];
    const n = c.btf_type_cnt(btf) as number;
    for (let id = 1; id < n; id++) {
      // struct btf_type { name_off; info; size_or_type }, then for a VAR its linkage.
      const t = c.btf_type_by_id(btf, id);
      const [nameOff, info] = koffi.decode(t, 'uint32_t', 2) as number[];
      const kind = (info! >>> 24) & 0x1f;
      const name = () => c.btf_name_by_offset(btf, nameOff!) as string;
      if (kind === BTF_KIND_FUNC && (info! & 0xffff) === BTF_FUNC_EXTERN) out.push({ name: name(), kind: 'func' });
      if (kind === BTF_KIND_VAR && (koffi.decode(t, 'uint32_t', 4) as number[])[3] === BTF_VAR_GLOBAL_EXTERN) out.push({ name: name(), kind: 'var' });
    }
    return out;
  });
}
