// Load-time fallbacks: where a kernel lacks something newer that bpf/ prefers, the same
// program takes an older path. The choice is a .rodata.fallback constant set before load
// from a probe of this kernel; the verifier drops the path not taken (bpf/owner.h).
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

/** Sets the fallback constants of an opened, not yet loaded object (no-op for objects without them). */
export function applyFallbacks(obj: bpf.BpfObject, f: Fallbacks = kernelFallbacks()): void {
  for (const m of bpf.maps(obj)) {
    if (bpf.mapIsInternal(m) && bpf.mapName(m).endsWith(FALLBACK_SECTION)) bpf.setMapInitialValue(m, encodeFallbacks(f));
  }
}
