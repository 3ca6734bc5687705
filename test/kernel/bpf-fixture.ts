// Fixtures for the BPF kernel tests: a private cgroup, a private bpffs directory, and
// probe servers and clients started inside that cgroup (a program attached to the test
// cgroup only sees sockets of processes in it). Nothing here touches the host's root
// cgroup, its network namespace or its pins.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_OBJECT_DIR, CGROUP_PROGRAMS, SK_LOOKUP_OBJECT, SK_MSG_OBJECT } from '../../src/bpf/loader.js';
import { destroyCgroup, removeEmptyCgroupTree } from '../../src/lab/cgroup.js';
import { pidAlive } from '../../src/lab/netns.js';
import { BPFFS_ROOT, reapStalePinDirs, removePinDir } from '../../src/lab/pins.js';

export { BPFFS_ROOT } from '../../src/lab/pins.js';
import { NETNS_LIBRARY } from '../../src/bpf/netns.js';
import { kernelFeatures } from '../../src/bpf/object-probes.js';
import { featureChecks } from '../../src/cli/doctor.js';
import { bpffsMountFor, ensureBpffs, findCgroup2Mount } from '../../src/bpf/system.js';
import { CGROUP_EXEC, probeConnect, startServer as startProbeServer, type ConnectOptions, type ProbeResult, type ProbeServer, type ServerReply } from './harness/probe.js';
import { findTool, PROBE_PATH } from './harness/requirements.js';
import { createTopology, type Topology, type TopologyOptions } from './harness/topology.js';

export const TEST_PREFIX = 'sluice-test-';

/** Everything the BPF kernel tests need, as one message; null when all is there. */
export function bpfRequirementsMissing(): string | null {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root: run the kernel tests as root (BPF, cgroups and namespaces)');
  if (!findCgroup2Mount()) missing.push('a cgroup2 mount (none in /proc/mounts): mount -t cgroup2 none /sys/fs/cgroup');
  try {
    ensureBpffs(BPFFS_ROOT);
  } catch (err) {
    missing.push(`bpffs at ${BPFFS_ROOT}: ${(err as Error).message}`);
  }
  if (!bpffsMountFor(BPFFS_ROOT)) missing.push(`bpffs at ${BPFFS_ROOT}: mount -t bpf bpf ${BPFFS_ROOT}`);
  const objects = new Set([...CGROUP_PROGRAMS.map((p) => p.object), SK_LOOKUP_OBJECT, SK_MSG_OBJECT]);
  for (const o of objects) {
    const p = join(DEFAULT_OBJECT_DIR, `${o}.bpf.o`);
    if (!existsSync(p)) missing.push(`clang output ${p}: run \`make -C bpf\``);
  }
  if (!existsSync(NETNS_LIBRARY)) missing.push(`${NETNS_LIBRARY}: run \`make -C native\``);
  if (!existsSync(PROBE_PATH)) missing.push(`the probe ${PROBE_PATH}: run \`make -C native\``);
  if (!findTool('ip')) missing.push('`ip` from iproute2');
  // A kernel without a hook the programs need: the test fails naming it, as doctor does.
  if (missing.length === 0) for (const c of featureChecks(kernelFeatures(DEFAULT_OBJECT_DIR)).filter((x) => x.status === 'fail')) missing.push(`${c.name}: ${c.detail}`);
  return missing.length ? `BPF kernel test requirements missing:\n  - ${missing.join('\n  - ')}` : null;
}

function uniqueName(): string {
  return `${TEST_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface TestCgroup {
  path: string;
  /** Kills what still runs in it and removes it. Idempotent. */
  destroy(): Promise<void>;
}

export function createCgroup(): TestCgroup {
  const mount = findCgroup2Mount();
  if (!mount) throw new Error('no cgroup2 mount');
  const path = join(mount, uniqueName());
  mkdirSync(path);
  return { path, destroy: () => destroyCgroup(path) };
}

/** A fresh bpffs directory for one test; removal detaches whatever is pinned in it. */
export function createBpffsDir(): { path: string; destroy(): void } {
  const path = join(BPFFS_ROOT, uniqueName());
  return { path, destroy: () => removePinDir(path) };
}

export interface BpfSandbox {
  topo: Topology;
  cg: TestCgroup;
  bpffs: { path: string; destroy(): void };
  /** Unpins (so detaches) everything, then removes the cgroup and the namespaces. */
  destroy(): Promise<void>;
}

/** A topology, a private cgroup and a private pin dir: what every BPF kernel test stands on. */
export async function createBpfSandbox(opts: TopologyOptions = {}): Promise<BpfSandbox> {
  const topo = await createTopology(opts);
  const cg = createCgroup();
  const bpffs = createBpffsDir();
  return {
    topo,
    cg,
    bpffs,
    async destroy() {
      bpffs.destroy();
      await cg.destroy();
      await topo.destroy();
    },
  };
}

/** Removes sluice-test-<pid>-* cgroups and pins left by dead test processes. */
export function reapStale(): string[] {
  const reaped: string[] = [];
  const mount = findCgroup2Mount();
  if (mount) {
    for (const name of readdirSync(mount)) {
      const m = new RegExp(`^${TEST_PREFIX}(\\d+)-`).exec(name);
      if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
      const p = join(mount, name);
      if (statSync(p).isDirectory() && removeEmptyCgroupTree(p)) reaped.push(p);
    }
  }
  return [...reaped, ...reapStalePinDirs(BPFFS_ROOT)];
}

/** Runs `cmd args` as a process of `cgroup`: it joins the cgroup before exec. */
export function spawnInCgroup(cgroup: TestCgroup, cmd: string, args: string[]): ChildProcess {
  return spawn('/bin/sh', ['-c', CGROUP_EXEC, cgroup.path, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export type TestServer = ProbeServer;

/** A probe server in `cgroup` and netns `netnsPath`; resolves once it listens. */
export function startServer(cgroup: TestCgroup, name: string, netnsPath: string, tcp: number[], udp: number[] = []): Promise<TestServer> {
  return startProbeServer({ name, netnsPath, tcp, udp, cgroupPath: cgroup.path });
}

export type ClientOptions = Omit<ConnectOptions, 'cgroupPath'>;

/** One probe client connection from inside `cgroup`. */
export function connect(cgroup: TestCgroup, o: ClientOptions): Promise<ProbeResult> {
  return probeConnect({ ...o, cgroupPath: cgroup.path });
}

export function serverOf(r: ProbeResult): ServerReply {
  if (!r.ok) throw new Error(`connection failed: ${r.error}`);
  return r.server;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion as a process of `cgroup`. */
export function runInCgroup(cgroup: TestCgroup, cmd: string, args: string[], input = ''): Promise<RunResult> {
  const child = spawn('/bin/sh', ['-c', CGROUP_EXEC, cgroup.path, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** `cmd args` inside the netns at `netnsPath` (nsenter), as a process of `cgroup`. */
export function runInNetns(cgroup: TestCgroup, netnsPath: string, cmd: string, args: string[], input = ''): Promise<RunResult> {
  return runInCgroup(cgroup, 'nsenter', [`--net=${netnsPath}`, cmd, ...args], input);
}
