// The part of the kernel matrix CI runs (scripts/test-vm; the whole matrix is
// `npm run test:vm -- --kernel all`, see the README). TCG is slow: each kernel gets a
// focused subset and up to 15 minutes (package.json's ava timeout). On Debian 12's 6.1,
// the kernel-support checks plus the capture tests that go through the bpf_rdonly_cast fallback (UDP DNS
// owner) and the outbound path; on Debian 11's 5.10, that doctor and run refuse it by
// naming the missing hooks. Needs qemu-system-x86, busybox-static and Debian's apt
// mirror (scripts/setup installs the first two).
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findTool, REPO_ROOT } from './harness/requirements.js';

const missing = ['qemu-system-x86_64', 'busybox'].filter((t) => !findTool(t));

async function testVm(kernel: string, args: string[]): Promise<{ code: number; out: string; console: string }> {
  const run = promisify(execFile)(join(REPO_ROOT, 'scripts/test-vm'), ['--kernel', kernel, '--no-build', '--timeout', '840', ...args], { cwd: REPO_ROOT, maxBuffer: 64 << 20 });
  const { code, out } = await run.then(
    ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: (e.stdout ?? '') + (e.stderr ?? '') }),
  );
  const log = readFileSync(join(REPO_ROOT, `.cache/kernels/last-${kernel}.log`), 'utf8');
  return { code, out, console: log };
}

/** The kernel the guest booted, from its own uname and /proc/version, for CI's log. */
function ranKernel(t: { log: (...a: string[]) => void }, consoleLog: string): void {
  const line = /SLUICE-VM-KERNEL (\S+) .*(Debian \S+)/.exec(consoleLog);
  t.log(`kernel that ran: ${line ? `${line[1]} (${line[2]})` : 'none (the guest never reached its test script)'}`);
}

test.serial('Debian 12 (6.1): sluice loads and captures, the UDP owner through the bpf_probe_read_kernel fallback', async (t) => {
  if (missing.length) return t.fail(`the kernel matrix needs ${missing.join(', ')}: run ./scripts/setup`);
  t.timeout(900_000);
  const r = await testVm('6.1', ['--tests', 'test/kernel/{kernel-support,bpf-capture,bpf-capture-dns}.test.ts', '--match', '*doctor*', '--match', '*DNS capture*', '--match', '*reaches the outbound listener*', '--match', "*proxy's own connection*"]);
  ranKernel(t, r.console);
  t.log(r.out.split('\n').filter((l) => l.includes('test-vm:') || l.startsWith('  6.1')).join('\n'));
  t.regex(r.console, /SLUICE-VM-KERNEL 6\.1\.\S+ .*Debian 6\.1\.\d+/, 'the guest ran Debian 6.1');
  t.regex(r.console, /\b5 tests passed/, 'the five chosen tests ran and passed');
  t.is(r.code, 0, r.out);
});

test.serial('Debian 11 (5.10): doctor and sluice run refuse it, naming the missing hooks', async (t) => {
  if (missing.length) return t.fail(`the kernel matrix needs ${missing.join(', ')}: run ./scripts/setup`);
  t.timeout(900_000);
  const r = await testVm('5.10', ['--tests', 'test/kernel/kernel-support.test.ts']);
  ranKernel(t, r.console);
  t.log(r.out.split('\n').filter((l) => l.includes('test-vm:') || l.startsWith('  5.10')).join('\n'));
  t.regex(r.console, /SLUICE-VM-KERNEL 5\.10\.\S+ /);
  t.regex(r.console, /missing here: .*bpf_get_netns_cookie in sock_ops.*ctx->ingress_ifindex in sk_lookup/);
  t.regex(r.console, /\b2 tests passed/);
  t.is(r.code, 0, r.out);
});
