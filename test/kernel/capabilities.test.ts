// The DaemonSet's capability set, measured: `sluice run` started (as uid 0) under setpriv
// with exactly the manifest's capabilities in its bounding, inheritable and so permitted
// and effective sets, against a pod that is named by /proc/PID/ns/net of a process with
// full capabilities, as the kubernetes source finds pods. With them it attaches and
// captures; without one of them it fails, and says why.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { kernelFallbacks } from '../../src/bpf/fallbacks.js';
import { CGROUP_PROGRAMS } from '../../src/bpf/loader.js';
import { DAEMON_CAPABILITIES, MOUNT_BPFFS_CAPABILITIES } from '../../src/deploy/manifest.js';
import { bpfRequirementsMissing, connect, reapStale } from './bpf-fixture.js';
import { CLI, cgroupPrograms, createWorld, killAllDaemons, lsPinDir, REMOTE, reapStaleWorkDirs, sourceYaml, startDaemon, waitFor, type Daemon, type World } from './harness/daemon.js';
import { findTool, REPO_ROOT } from './harness/requirements.js';
import { reapStaleNamespaces } from './harness/topology.js';
import type { PodState } from '../../src/daemon/reconcile.js';

const missing = bpfRequirementsMissing() ?? (findTool('setpriv') && findTool('nsenter') && findTool('unshare') ? null : '`setpriv`, `nsenter` and `unshare` (util-linux) start processes with a chosen capability set');
const PROGRAMS = CGROUP_PROGRAMS.map((p) => p.program as string).sort();
/** linux/capability.h numbers of the capabilities these tests name. */
const CAP_NUMBER: Record<string, number> = { NET_ADMIN: 12, SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 };

/** setpriv options that leave uid 0 with exactly `caps` (a root exec gets bounding ∪ inheritable). */
function onlyCaps(caps: readonly string[]): string[] {
  const list = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return [`--bounding-set=${list}`, `--inh-caps=${list}`];
}

function capMask(caps: readonly string[]): bigint {
  return caps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBER[c]!)), 0n);
}

/** CapEff and CapBnd of a live process, from /proc/PID/status. */
function capsOf(pid: number): { eff: bigint; bnd: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status)![1]}`);
  return { eff: field('CapEff'), bnd: field('CapBnd') };
}

function run(argv: string[]): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr, stdout });
    });
  });
}

test.before(async () => {
  if (missing) return;
  await reapStaleNamespaces();
  reapStale();
  reapStaleWorkDirs();
});

test.after.always(killAllDaemons);

/** One pod named by /proc/PID/ns/net of its (root, full-capability) sidecar probe. */
async function withPod(body: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld(1);
  try {
    w.write(sourceYaml([{ name: 'pod0', netns: `/proc/${w.servers[0]!.pid}/ns/net` }]));
    await body(w);
  } finally {
    await killAllDaemons();
    await w.destroy();
  }
}

const daemonWith = (w: World, caps: readonly string[]) => startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, setpriv: onlyCaps(caps) });

/** The pod's state once it is no longer pending. */
const settled = (d: Daemon) =>
  waitFor('pod0 applied or rejected', async () => {
    const p = (await d.json<PodState[]>('/v1/pods')).find((s) => s.name === 'pod0');
    return p && p.status !== 'pending' ? p : undefined;
  }, 10_000);

const appConnect = (w: World) => connect(w.cg, { netnsPath: w.pods[0]!.pod.path, dst: REMOTE, uid: 1000 });

test.serial('capability test requirements are met', (t) => {
  t.is(missing, null);
});

test.serial("with exactly the manifest's capabilities the daemon attaches, captures, and holds nothing more", async (t) => {
  if (missing) return t.fail(missing);
  await withPod(async (w) => {
    const d = await daemonWith(w, DAEMON_CAPABILITIES);
    const caps = capsOf(d.child.pid!);
    t.is(caps.eff, capMask(DAEMON_CAPABILITIES), `CapEff is SYS_ADMIN+SYS_PTRACE+NET_ADMIN, got ${caps.eff.toString(16)}`);
    t.is(caps.bnd, capMask(DAEMON_CAPABILITIES), 'the bounding set is dropped to the same three');
    t.like(await settled(d), { status: 'applied', error: null });
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS);
    const r = await appConnect(w);
    t.true(r.ok && r.server.server === 'pod0' && r.server.port === 15001 && r.server.origDst === REMOTE, `captured to 15001 with the original destination: ${JSON.stringify(r)}`);
    t.is((await d.get('/readyz')).status, 200);
    await d.stop();

    // `sluice uninstall` as the uninstall DaemonSet runs it: no capability at all.
    const u = await run([findTool('setpriv')!, ...onlyCaps([]), process.execPath, '--import', 'tsx', CLI, 'uninstall', '--bpffs', w.bpffs]);
    t.is(u.code, 0, u.out);
    t.regex(u.out, /detached \d+ links/);
    t.deepEqual(await cgroupPrograms(w.cg.path), [], 'uninstall without capabilities detached every program');
    t.is((await lsPinDir(w.bpffs)).stdout.trim(), '', 'and removed every pin');
  });
});

test.serial('without CAP_SYS_PTRACE the pod is rejected, naming its netns and EACCES, and is not captured', async (t) => {
  if (missing) return t.fail(missing);
  await withPod(async (w) => {
    const d = await daemonWith(w, DAEMON_CAPABILITIES.filter((c) => c !== 'SYS_PTRACE'));
    const p = await settled(d);
    t.is(p.status, 'rejected');
    t.regex(p.error ?? '', new RegExp(`/proc/${w.servers[0]!.pid}/ns/net .*EACCES`));
    t.regex(d.output(), /"reason":"netns_unavailable"/);
    const r = await appConnect(w);
    t.true(r.ok && r.server.server === 'peer0', `not captured: ${JSON.stringify(r)}`);
  });
});

test.serial('without CAP_SYS_ADMIN nothing works: CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON load the programs but cannot enter a pod', async (t) => {
  if (missing) return t.fail(missing);
  await withPod(async (w) => {
    // SYS_PTRACE alone: the first program load fails and the daemon exits, attaching nothing.
    const err = await t.throwsAsync(daemonWith(w, ['SYS_PTRACE']));
    t.regex(err?.message ?? '', /exited \(exit 1\)[\s\S]*EPERM/);
    t.deepEqual(await cgroupPrograms(w.cg.path), []);

    const bpfOnly = ['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_PTRACE'];
    if (!kernelFallbacks().rdonlyCast) {
      // 6.1: no bpf_rdonly_cast, and libbpf cannot look for it in the modules' BTF
      // without CAP_SYS_ADMIN: refused by name before any load, nothing attached.
      const refused = await t.throwsAsync(daemonWith(w, bpfOnly));
      t.regex(refused?.message ?? '', /exited \(exit 1\)[\s\S]*no bpf_rdonly_cast[\s\S]*CAP_SYS_ADMIN/);
      t.deepEqual(await cgroupPrograms(w.cg.path), []);
      return;
    }
    // The BPF-specific capabilities attach the programs, but setns(2) into the pod's netns
    // needs CAP_SYS_ADMIN: the pod is rejected with EPERM.
    const d = await daemonWith(w, bpfOnly);
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS);
    const p = await settled(d);
    t.is(p.status, 'rejected');
    t.regex(p.error ?? '', /EPERM/);
  });
});

test.serial("the init container's nsenter into another mount namespace works with its three capabilities, and not with two", async (t) => {
  if (missing) return t.fail(missing);
  // The target stands in for the host's PID 1: a full-capability root process in a mount
  // namespace of its own (private propagation, so nothing reaches the host's mounts). The
  // command is only `mountpoint`, never `mount`.
  const target = spawn(findTool('unshare')!, ['--mount', '--propagation', 'private', 'sleep', '60'], { stdio: 'ignore' });
  try {
    const ns = `/proc/${target.pid}/ns/mnt`;
    await waitFor('the target in its own mount namespace', async () => (readlinkSync(ns) !== readlinkSync('/proc/self/ns/mnt') ? true : undefined));
    const nsenter = (caps: readonly string[]) => run([findTool('setpriv')!, ...onlyCaps(caps), findTool('nsenter')!, `--mount=${ns}`, '--', 'mountpoint', '-q', '/sys/fs/bpf']);
    const ok = await nsenter(MOUNT_BPFFS_CAPABILITIES);
    t.is(ok.code, 0, ok.out);
    for (const drop of MOUNT_BPFFS_CAPABILITIES) {
      const r = await nsenter(MOUNT_BPFFS_CAPABILITIES.filter((c) => c !== drop));
      t.not(r.code, 0, `without ${drop}`);
      t.regex(r.out, /nsenter: (cannot open|reassociate to namespace)[^\n]*(Permission denied|Operation not permitted)/, `without ${drop}: ${r.out}`);
    }
  } finally {
    target.kill('SIGKILL');
  }
});

const withoutNetAdmin = DAEMON_CAPABILITIES.filter((c) => c !== 'NET_ADMIN');

test.serial("CAP_NET_ADMIN: --accelerate's live sockmap check brings lo up in a private netns", async (t) => {
  if (missing) return t.fail(missing);
  const live = async (caps: readonly string[]) => {
    const r = await run([findTool('setpriv')!, ...onlyCaps(caps), process.execPath, '--import', 'tsx', CLI, 'doctor', '--json']);
    const report = JSON.parse(r.stdout) as { checks: { name: string; detail: string }[] };
    return report.checks.find((c) => c.name === 'sockmap-regression (live)')!.detail;
  };
  // doctor's details per verdict: ok "--accelerate is safe here: ...", "regressed: ...", "limited: ..." (6.1's older FIONREAD); never "unknown: ...".
  t.regex(await live(DAEMON_CAPABILITIES), /^(--accelerate is safe here|regressed|limited): /, "with the manifest's capabilities the check reaches a verdict");
  t.regex(await live(withoutNetAdmin), /^unknown: SIOCSIFFLAGS lo: Operation not permitted/, 'without NET_ADMIN it cannot run, and --accelerate would be refused');
});

test.serial("CAP_NET_ADMIN: with the manifest's capabilities the daemon sees istio-init's chains in a pod and leaves that pod to them", async (t) => {
  if (missing) return t.fail(missing);
  if (!findTool('iptables')) return t.fail('`iptables` (the iptables package) writes the ISTIO_OUTPUT chain into the test pod');
  await withPod(async (w) => {
    // Inside the test pod's own netns only: an empty chain with istio-init's name.
    const add = await run([findTool('nsenter')!, `--net=${w.pods[0]!.pod.path}`, findTool('iptables')!, '-t', 'nat', '-N', 'ISTIO_OUTPUT']);
    t.is(add.code, 0, add.out);
    const d = await daemonWith(w, DAEMON_CAPABILITIES);
    const p = await waitFor('pod0 istioIptables present', async () => {
      const s = (await d.json<PodState[]>('/v1/pods')).find((x) => x.name === 'pod0');
      return s?.istioIptables === 'present' ? s : undefined;
    }, 10_000);
    t.is(p.istioIptables, 'present');
    const r = await appConnect(w);
    t.true(r.ok && r.server.server === 'peer0', `left to iptables, not captured by sluice: ${JSON.stringify(r)}`);
  });
});
