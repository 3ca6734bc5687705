// `sluice doctor` with injected probes: the output shape (lines and --json), the exit code
// (non-zero only for a missing required feature), how feature probes and the live sockmap
// check become checks, the sockmap verdict rules, and the uapi numbers the probes use.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATTACH_TYPES, HELPERS, judgeWakeup, MAP_TYPES, PROG_TYPES, type WakeupObservation, type WakeupReport, type WakeupStress } from '../../src/bpf/probe-facts.js';
import type { Feature } from '../../src/bpf/probes.js';
import { sockmapRegressionByVersion, upstreamKernelVersion } from '../../src/bpf/system.js';
import { featureChecks, KernelUnsupportedError, objectChecks, refuseUnsupportedKernel, runDoctor, SOCKMAP_CHECK, sockmapCheck, type Check, type DoctorReport, type Probe } from '../../src/cli/doctor.js';

async function doctor(probes: Probe[], json = false): Promise<{ code: number; text: string }> {
  let text = '';
  const code = await runDoctor({ json }, probes, (t) => (text += t));
  return { code, text };
}

const ok: Check = { name: 'cgroup2', status: 'ok', detail: 'mounted at /sys/fs/cgroup' };
const warn: Check = { name: 'btf', status: 'warn', detail: 'no kernel BTF' };
const fail: Check = { name: 'program sk_lookup', status: 'fail', detail: 'not supported by this kernel' };

test('readable output: one line per check, then the verdicts; warnings alone exit 0', async (t) => {
  const { code, text } = await doctor([() => ok, () => [warn]]);
  t.is(code, 0);
  t.deepEqual(text.split('\n'), ['OK   cgroup2: mounted at /sys/fs/cgroup', 'WARN btf: no kernel BTF', 'sluice can run on this node', '--accelerate: not checked']);
});

test('--json: ok, the --accelerate verdict and every check', async (t) => {
  const live = sockmapCheck(async () => ({ verdict: 'regressed', summary: 'FIONREAD said 0', observations: [], stress: [], redirected: 1 }));
  const { code, text } = await doctor([() => ok, live], true);
  t.is(code, 0, 'the regression only refuses --accelerate');
  const report = JSON.parse(text) as DoctorReport;
  t.is(report.ok, true);
  t.is(report.accelerate, 'refused');
  t.deepEqual(
    report.checks.map((c) => [c.name, c.status]),
    [
      ['cgroup2', 'ok'],
      [SOCKMAP_CHECK, 'warn'],
    ],
  );
  t.regex(report.checks[1]!.detail, /FIONREAD said 0.*--accelerate is refused.*--accelerate-force/);
  for (const c of report.checks) t.deepEqual(Object.keys(c).sort(), ['detail', 'name', 'status']);
});

test('a missing required feature fails the doctor; a probe that throws becomes a failed check', async (t) => {
  t.is((await doctor([() => ok, () => fail])).code, 1);
  const broken = async function bpffsProbe(): Promise<Check> {
    throw new Error('boom');
  };
  const { code, text } = await doctor([broken], true);
  t.is(code, 1);
  t.deepEqual((JSON.parse(text) as DoctorReport).checks, [{ name: 'bpffsProbe', status: 'fail', detail: 'boom' }]);
});

test('the live check allows --accelerate only when it says ok', async (t) => {
  const run = (verdict: WakeupReport['verdict']) => sockmapCheck(async () => ({ verdict, summary: 's', observations: [], stress: [], redirected: 1 }));
  const accelerate = async (p: Probe) => (JSON.parse((await doctor([p], true)).text) as DoctorReport).accelerate;
  t.is(await accelerate(run('ok')), 'allowed');
  t.is(await accelerate(run('regressed')), 'refused');
  t.is(await accelerate(run('limited')), 'refused', 'the older FIONREAD limitation refuses too (fail-safe)');
  t.regex(((await run('limited')()) as Check).detail, /^limited: s\. FIONREAD readers \(nginx, Java NIO\) would read 0/);
  t.is(await accelerate(run('unknown: root is needed')), 'refused');
});

test('feature probes: required and missing fails, optional and missing warns, a probe error counts as missing', (t) => {
  const f = (name: string, required: boolean, answer: boolean | string): Feature => ({ kind: 'program', name, use: 'x', required, probe: () => answer });
  const checks = featureChecks([f('sock_ops', true, true), f('sk_lookup', true, false), f('sk_msg', false, false), f('cgroup_sockopt', true, 'EPERM')], true);
  t.deepEqual(
    checks.map((c) => [c.name, c.status]),
    [
      ['program sock_ops', 'ok'],
      ['program sk_lookup', 'fail'],
      ['program sk_msg', 'warn'],
      ['program cgroup_sockopt', 'fail'],
    ],
  );
  t.regex(checks[3]!.detail, /EPERM/);
  t.regex(checks[2]!.detail, /--accelerate is not available/);
  const unprivileged = featureChecks([f('sock_ops', true, false)], false);
  t.deepEqual(unprivileged.map((c) => [c.name, c.status]), [['bpf features', 'fail']], 'not root: one failure that says so, not a wrong "not supported"');
  t.regex(unprivileged[0]!.detail, /without root/);
});

const obs = (path: 'redirect' | 'tcp', o: Partial<WakeupObservation> = {}): WakeupObservation => ({ path, waiter: 'epoll', sent: 64, woke: true, waitedMs: 50, fionread: 64, readableAfter: 64, errno: 0, ...o });
const stress = (o: Partial<WakeupStress> = {}): WakeupStress => ({ path: 'tcp', mode: 'ping-pong', rounds: 400, stalls: 0, maxWaitMs: 1, errno: 0, ...o });

test('sockmap verdict: ok only when every waiter woke and FIONREAD counted every byte', (t) => {
  t.is(judgeWakeup([obs('redirect'), obs('tcp')], [stress()], 3).verdict, 'ok');
  const fionread = judgeWakeup([obs('redirect'), obs('tcp', { fionread: 0 })], [stress()], 3);
  t.is(fionread.verdict, 'regressed');
  t.regex(fionread.summary, /FIONREAD said 0 for 64 readable bytes \(tcp path\): the regression of upstream 929e30f93125, fixed by 04af4efde58a; no wake-up was lost/);
  t.is(judgeWakeup([obs('redirect'), obs('tcp', { woke: false, waitedMs: 1000 })], [stress()], 3).verdict, 'regressed');
  t.regex(judgeWakeup([obs('redirect')], [stress({ stalls: 2 })], 3).summary, /2 lost wake-up\(s\) in 400 tcp ping-pong rounds/);
});

test('sockmap verdict: unknown when the setup did not test what it should', (t) => {
  t.regex(judgeWakeup([obs('redirect')], [stress()], 0).verdict, /^unknown: the sk_msg program redirected nothing/);
  t.regex(judgeWakeup([obs('tcp', { woke: false, readableAfter: 0 })], [], 3).verdict, /^unknown: no wake-up and no data/);
  t.regex(judgeWakeup([obs('tcp', { errno: 9 })], [], 3).verdict, /^unknown: the tcp\/epoll case could not run/);
  t.regex(judgeWakeup([obs('tcp')], [stress({ errno: 32 })], 3).verdict, /^unknown: the tcp ping-pong stress stopped/);
});

test('the uapi numbers the probes and the loader use are those of <linux/bpf.h>', (t) => {
  const all: Record<string, number> = { ...PROG_TYPES, ...MAP_TYPES, ...HELPERS, ...ATTACH_TYPES };
  const dir = mkdtempSync(join(tmpdir(), 'sluice-doctor-'));
  try {
    const names = Object.keys(all);
    const src = ['#include <stdio.h>', '#include <linux/bpf.h>', 'int main(void) {', ...names.map((n) => `  printf("%s %d\\n", "${n}", (int)${n});`), '  return 0;', '}'].join('\n');
    writeFileSync(join(dir, 'uapi.c'), src);
    execFileSync(process.env.CC ?? 'cc', ['-o', join(dir, 'uapi'), join(dir, 'uapi.c')], { stdio: 'pipe' });
    const seen = Object.fromEntries(
      execFileSync(join(dir, 'uapi'), { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([n, v]) => [n!, Number(v)]),
    );
    t.deepEqual(seen, all);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the sockmap check by version reads the upstream version: Debian keeps it in /proc/version', (t) => {
  const proc61 = 'Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)';
  t.is(upstreamKernelVersion('6.1.0-57-amd64', proc61), '6.1.192', 'not 6.1.0 from the release string');
  const proc612 = 'Linux version 6.12.74+deb12-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.12.74-2~bpo12+1 (2026-02-28)';
  t.is(upstreamKernelVersion('6.12.74+deb12-amd64', proc612), '6.12.74');
  t.is(upstreamKernelVersion('5.15.0-91-generic', 'Linux version 5.15.0-91-generic (buildd@lcy02) #101-Ubuntu SMP', 'Ubuntu 5.15.0-91.101-generic 5.15.131'), '5.15.131');
  t.is(upstreamKernelVersion('6.18.44-fc-v1045', 'Linux version 6.18.44-fc-v1045 (root@build) #1 SMP'), '6.18.44');
  t.is(sockmapRegressionByVersion('6.12.74'), false);
  t.is(sockmapRegressionByVersion('6.12.95'), true);
  t.is(sockmapRegressionByVersion('6.12.75'), true, 'the first release with 929e30f93125');
  t.is(sockmapRegressionByVersion('6.12.113'), true, 'the last release without 04af4efde58a');
  t.is(sockmapRegressionByVersion('6.12.114'), false, 'the fix came in 6.12.114');
  t.is(sockmapRegressionByVersion('6.12.117'), false);
  t.is(sockmapRegressionByVersion('6.18.44'), true, 'no fixed 6.18 release is known');
  t.is(sockmapRegressionByVersion('6.1.192'), null, 'no 6.1 release is known to carry it');
});

test('a missing feature names the first kernel that has it; a missing kfunc with a fallback is not a failure', (t) => {
  const f = (kind: Feature['kind'], name: string, required: boolean, since?: string): Feature => ({ kind, name, use: 'x', required, ...(since ? { since } : {}), probe: () => false });
  const [hook, kfunc] = featureChecks([f('helper', 'bpf_get_netns_cookie in sock_ops', true, '5.15'), f('kfunc', 'bpf_rdonly_cast', false, '6.2')], true);
  t.is(hook!.status, 'fail');
  t.regex(hook!.detail, /not supported by this kernel; it came in Linux 5\.15; sluice needs it for x/);
  t.is(kfunc!.status, 'ok');
  t.regex(kfunc!.detail, /it came in Linux 6\.2; fallback in use/);
});

test('sluice run refuses a kernel without a required hook with the doctor\'s words, exit code 2', (t) => {
  const checks = featureChecks([{ kind: 'context', name: 'ctx->ingress_ifindex in sk_lookup', use: 'y', required: true, since: '5.17', probe: () => false }], true);
  const err = t.throws(() => refuseUnsupportedKernel(checks), { instanceOf: KernelUnsupportedError });
  t.is(err!.exitCode, 2);
  t.is(err!.code, 'KERNEL_UNSUPPORTED');
  t.regex(err!.message, /nothing was changed\. context ctx->ingress_ifindex in sk_lookup: not supported by this kernel; it came in Linux 5\.17/);
  t.notThrows(() => refuseUnsupportedKernel([ok, warn]));
});

test('an object that does not load is a failed check without the pointer to a verifier log', (t) => {
  const [good, bad] = objectChecks([
    { object: 'sockops', error: null },
    { object: 'connect', error: 'bpf_object__load(connect (doctor)) failed: EINVAL; the kernel rejected a program or map: the verifier log is on stderr above' },
  ]);
  t.deepEqual([good!.status, bad!.status], ['ok', 'fail']);
  t.is(bad!.detail, 'does not load into this kernel: bpf_object__load(connect (doctor)) failed: EINVAL');
});

test('sockmap verdict: FIONREAD short only for redirected bytes is the older limitation, not the regression, and refuses too', (t) => {
  const older = judgeWakeup([obs('redirect', { fionread: 0 }), obs('redirect', { waiter: 'poll', fionread: 0 }), obs('tcp')], [stress()], 3);
  t.is(older.verdict, 'limited');
  t.regex(older.summary, /^every waiter was woken .*FIONREAD said 0 for 64 readable bytes \(redirect path\): an older sockmap limitation, not the regression: .*upstream 929e30f93125 added the redirected bytes/);
  t.notRegex(older.summary, /04af4efde58a/, 'the regression fix is not what such a kernel lacks');
  const both = judgeWakeup([obs('redirect', { fionread: 0 }), obs('tcp', { fionread: 0 })], [stress()], 3);
  t.is(both.verdict, 'regressed');
  t.regex(both.summary, /^FIONREAD said 0 for 64 readable bytes \(tcp path\): the regression/);
  const lostToo = judgeWakeup([obs('redirect', { fionread: 0 }), obs('tcp', { woke: false })], [stress()], 3);
  t.is(lostToo.verdict, 'regressed', 'a lost wake-up is the regression, whatever FIONREAD said');
  t.is(judgeWakeup([obs('redirect', { fionread: 64 }), obs('tcp')], [stress()], 3).verdict, 'ok');
});

test('doctor names the pods left to istio-init, and skips pod checks with no daemon', async (t) => {
  const { podChecks } = await import('../../src/cli/doctor-pods.js');
  const pods = [
    { namespace: 'a', name: 'x', status: 'rejected', error: 'chains', istioIptables: 'present' },
    { namespace: 'a', name: 'y', status: 'applied', error: null, istioIptables: 'absent' },
  ];
  const checks = await podChecks('127.0.0.1:1', async () => pods);
  t.deepEqual(checks.map((c) => [c.name, c.status]), [['double capture', 'warn'], ['daemon pods', 'ok']]);
  t.regex(checks[0]!.detail, /a\/x/);
  const none = await podChecks('127.0.0.1:1', async () => null);
  t.is(none.length, 1);
  t.regex(none[0]!.detail, /no daemon answers/);
});
