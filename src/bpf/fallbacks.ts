// Load-time fallbacks: where a kernel lacks something newer that bpf/ prefers, the same
// program takes an older path. The choice is a .rodata.fallback constant set before load
// from a probe of this kernel; the verifier drops the path not taken (bpf/owner.h).
import { SluiceError } from '../errors.js';
import { CAP, hasCapability } from '../system/caps.js';
import * as bpf from './libbpf.js';
import { btfAvailableForProbe, kernelHasFunc } from './libbpf-probes.js';

export const FALLBACK_SECTION = '.rodata.fallback';

/** kfuncs the objects may call, and what a kernel without them gets instead. */
export const KFUNC_FALLBACKS: Readonly<Record<string, { since: string; instead: string }>> = {
  bpf_rdonly_cast: { since: '6.2', instead: 'the UDP socket owner is read with bpf_probe_read_kernel (CAP_PERFMON, no kernel lockdown)' },
};

export interface Fallbacks {
  /** bpf_rdonly_cast is there (else bpf_probe_read_kernel reads the UDP socket owner). */
  rdonlyCast: boolean;
}

let probed: Fallbacks | null = null;

/** Probed once per process: the kernel does not change under it. */
export function kernelFallbacks(): Fallbacks {
  probed ??= { rdonlyCast: btfAvailableForProbe() && kernelHasFunc('bpf_rdonly_cast') };
  return probed;
}

/** The section's bytes: `const volatile __u32 sluice_have_rdonly_cast` (bpf/owner.h). */
export function encodeFallbacks(f: Fallbacks): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(f.rdonlyCast ? 1 : 0, 0);
  return b;
}

/**
 * Sets the fallback constants of an opened, not yet loaded object (no-op for objects
 * without them). An object with them declares the weak kfuncs; where the kernel lacks
 * one, libbpf 1.1 looks for it in the modules' BTF, and listing those needs
 * CAP_SYS_ADMIN (BPF_BTF_GET_NEXT_ID): without it the load would fail with a bare EINVAL.
 */
export function applyFallbacks(obj: bpf.BpfObject, what: string, f: Fallbacks = kernelFallbacks(), canListModuleBtf = () => hasCapability(CAP.SYS_ADMIN)): void {
  for (const m of bpf.maps(obj)) {
    if (!bpf.mapIsInternal(m) || !bpf.mapName(m).endsWith(FALLBACK_SECTION)) continue;
    if (!f.rdonlyCast && !canListModuleBtf()) {
      throw new SluiceError('KFUNC_NEEDS_CAP_SYS_ADMIN', `${what}: this kernel has no bpf_rdonly_cast (${KFUNC_FALLBACKS.bpf_rdonly_cast!.since}+), and without CAP_SYS_ADMIN libbpf cannot look for it in the kernel modules' BTF, so the object cannot load`, {
        hint: 'give the daemon CAP_SYS_ADMIN, as the DaemonSet manifest does (it needs it for setns into pods anyway), or run a kernel with bpf_rdonly_cast (6.2+)',
      });
    }
    bpf.setMapInitialValue(m, encodeFallbacks(f));
  }
}
