// The load-time fallbacks' refusal where libbpf could not resolve a missing weak kfunc:
// on a kernel without bpf_rdonly_cast (6.1), libbpf 1.1 lists the modules' BTF to look
// for it, which needs CAP_SYS_ADMIN. Opening an object parses the ELF only (no privileges).
import test from 'ava';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyFallbacks } from '../../src/bpf/fallbacks.js';
import * as bpf from '../../src/bpf/libbpf.js';
import { SluiceError } from '../../src/errors.js';
import { hasCapability } from '../../src/system/caps.js';

const BUILD = join(fileURLToPath(new URL('../../bpf/build/', import.meta.url)));

function withObject(object: string, fn: (obj: bpf.BpfObject) => void): void {
  const obj = bpf.openObject(join(BUILD, `${object}.bpf.o`));
  try {
    fn(obj);
  } finally {
    bpf.closeObject(obj);
  }
}

test('no bpf_rdonly_cast and no CAP_SYS_ADMIN: connect is refused by name before libbpf fails with EINVAL', (t) => {
  withObject('connect', (obj) => {
    const err = t.throws(() => applyFallbacks(obj, 'connect', { rdonlyCast: false }, () => false));
    t.true(err instanceof SluiceError);
    t.is((err as SluiceError).code, 'KFUNC_NEEDS_CAP_SYS_ADMIN');
    t.regex(err!.message, /^connect: this kernel has no bpf_rdonly_cast \(6\.2\+\).*CAP_SYS_ADMIN/);
    t.regex((err as SluiceError).hint ?? '', /CAP_SYS_ADMIN/);
  });
});

test('with CAP_SYS_ADMIN, or with the kfunc in the kernel, the fallback constant is set and nothing is refused', (t) => {
  withObject('connect', (obj) => {
    t.notThrows(() => applyFallbacks(obj, 'connect', { rdonlyCast: false }, () => true));
    t.notThrows(() => applyFallbacks(obj, 'connect', { rdonlyCast: true }, () => false));
  });
});

test('an object without the fallback section never needs it', (t) => {
  withObject('sk_msg', (obj) => t.notThrows(() => applyFallbacks(obj, 'sk_msg', { rdonlyCast: false }, () => false)));
});

test('CapEff decides the capability; a status without the line (not Linux /proc) counts as having it', (t) => {
  const status = (hex: string) => `Name:\tnode\nCapEff:\t${hex}\n`;
  t.true(hasCapability(21, status('0000000000200000')));
  t.false(hasCapability(21, status('0000008000000000')));
  t.true(hasCapability(39, status('0000008000000000')));
  t.true(hasCapability(21, 'Name:\tnode\n'));
});
