// The CLI's error printer: every SluiceError, the kernel side's included, ends as its
// message plus its hint, never under a stack trace.
import { constants } from 'node:os';
import test from 'ava';
import { BpfError } from '../../src/bpf/libbpf.js';
import { NativeHelperError } from '../../src/bpf/netns.js';
import { BpffsError } from '../../src/bpf/system.js';
import { reportError } from '../../src/cli/report-error.js';
import { MapFullError } from '../../src/dataplane/index.js';
import { SluiceError } from '../../src/errors.js';
import { InputError } from '../../src/policy/errors.js';

function printed(e: unknown): { lines: string[]; code: number } {
  const lines: string[] = [];
  const code = reportError(e, (l) => lines.push(l));
  return { lines, code };
}

const cases: [string, SluiceError, RegExp, RegExp][] = [
  ['BpfError', new BpfError('bpf_obj_get(/sys/fs/bpf/x)', constants.errno.EPERM), /^sluice: bpf_obj_get\(\/sys\/fs\/bpf\/x\) failed: EPERM$/, /run as root/],
  ['BpffsError', new BpffsError('/tmp/x is not on a bpffs mount', 'use a directory under /sys/fs/bpf'), /^sluice: \/tmp\/x is not on a bpffs mount$/, /use a directory under \/sys\/fs\/bpf/],
  ['NativeHelperError', new NativeHelperError('/x/netns.so'), /^sluice: the native helper \/x\/netns.so is missing$/, /make -C native/],
  ['MapFullError', new MapFullError('sluice_pods', 512, '--max-pods'), /^sluice: BPF map sluice_pods is full \(512 entries\)$/, /raise sluice run --max-pods/],
];

for (const [name, err, message, hint] of cases) {
  test(`a ${name} prints as message plus hint, without a stack`, (t) => {
    const { lines, code } = printed(err);
    t.is(code, 1);
    t.is(lines.length, 1);
    const [first, ...rest] = lines[0]!.split('\n');
    t.regex(first!, message);
    t.is(rest.length, 1, 'one hint line');
    t.regex(rest[0]!, /^ {2}hint: /);
    t.regex(rest[0]!, hint);
    t.notRegex(lines[0]!, /\n\s+at /, 'no stack frames');
  });
}

test('bad input exits 2 and prints only its message', (t) => {
  const { lines, code } = printed(new InputError('BAD_LISTEN', '--listen x is not HOST:PORT'));
  t.is(code, 2);
  t.deepEqual(lines, ['sluice: --listen x is not HOST:PORT']);
});

test('anything else is a bug: printed with its stack', (t) => {
  const { lines, code } = printed(new TypeError('boom'));
  t.is(code, 1);
  t.regex(lines[0]!, /^sluice: TypeError: boom\n\s+at /);
});

test('a full map names its flag in one line for the pod status', (t) => {
  t.is(new MapFullError('sluice_conns', 8, '--max-connections').summary(), 'BPF map sluice_conns is full (8 entries); raise sluice run --max-connections (a pinned map keeps its size until `sluice uninstall`)');
});
