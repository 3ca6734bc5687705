// Which kernels sluice runs on, as the user meets it: on a kernel with every hook the
// objects need, doctor says so and every object loads; on one without (5.10: no
// bpf_get_netns_cookie in sock_ops and cgroup_sockopt, no ctx->ingress_ifindex in
// sk_lookup), `sluice run` and `sluice demo` refuse with exit 2 naming each missing hook and the first
// kernel that has it, before it touches anything, and doctor names the same ones.
// scripts/test-vm runs this file on the Debian kernels of the matrix.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_OBJECT_DIR } from '../../src/bpf/loader.js';
import { kernelFeatures, loadEachObject } from '../../src/bpf/object-probes.js';
import { featureChecks } from '../../src/cli/doctor.js';
import { removePinDir } from '../../src/lab/pins.js';
import { BPFFS_ROOT } from './bpf-fixture.js';
import { REPO_ROOT, scaled } from './harness/requirements.js';

const sluice = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, timeout: scaled(240_000) }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );

const root = process.getuid?.() === 0;
const missing = root ? featureChecks(kernelFeatures(DEFAULT_OBJECT_DIR)).filter((c) => c.status === 'fail') : [];

test.serial('doctor and the objects agree: every object loads where doctor finds every hook', async (t) => {
  if (!root) return t.fail('root is needed: the probes load programs');
  t.log(`missing here: ${missing.map((c) => c.name).join(', ') || 'nothing'}`);
  const loads = loadEachObject(DEFAULT_OBJECT_DIR);
  t.is(loads.length, 7, 'every object is built');
  if (missing.length === 0) t.deepEqual(loads.filter((l) => l.error !== null), [], 'doctor found every hook, so every object must load');
  else t.true(loads.some((l) => l.error !== null), 'doctor found a hook missing, so some object must fail to load (else the probe is wrong)');
});

test.serial('doctor says can run where every hook is there; elsewhere sluice run refuses with exit 2 naming each, as doctor does', async (t) => {
  if (!root) return t.fail('root is needed');
  const bpffs = join(BPFFS_ROOT, `sluice-test-${process.pid}-refused`);
  const doctor = await sluice(['doctor', '--json']);
  const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { name: string; status: string; detail: string }[] };
  const failed = report.checks.filter((c) => c.status === 'fail');
  if (missing.length === 0) {
    t.is(doctor.code, 0, doctor.stdout);
    t.true(report.ok);
    t.deepEqual(failed, []);
    return; // nothing to refuse: the other kernel tests run sluice here
  }
  const run = await sluice(['run', '--source', 'file:/nonexistent-sluice-test', '--bpffs', bpffs, '--cgroup', '/nonexistent-sluice-test', '--listen', '127.0.0.1:0']);
  t.teardown(() => removePinDir(bpffs));
  t.is(run.code, 2, run.stderr);
  t.regex(run.stderr, /this kernel cannot run sluice; nothing was changed/);
  for (const c of missing) {
    t.true(run.stderr.includes(`${c.name}: ${c.detail}`), `run names ${c.name}`);
    t.true(failed.some((f) => f.name === c.name && f.detail === c.detail), `doctor names ${c.name} the same way`);
  }
  t.notRegex(run.stderr, /verifier|bpf_object__load/, 'a refusal, not a verifier dump');
  t.false(existsSync(bpffs), 'nothing was created');
  // The demo refuses the same way, before it makes its pods.
  const demo = await sluice(['demo']);
  t.is(demo.code, 2, demo.stderr);
  t.regex(demo.stderr, /this kernel cannot run sluice; nothing was changed/);
  for (const c of missing) t.true(demo.stderr.includes(`${c.name}: ${c.detail}`), `demo names ${c.name}`);
  t.notRegex(demo.stdout, /two pods/, 'no pod was made');
  t.is(doctor.code, 1);
  t.false(report.ok);
});
