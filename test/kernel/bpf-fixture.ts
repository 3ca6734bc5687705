// Fixtures for the BPF kernel tests: a private cgroup, a private bpffs directory, and
// probe servers and clients started inside that cgroup (a program attached to the test
// cgroup only sees sockets of processes in it). Nothing here touches the host's root
// cgroup, its network namespace or its pins.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_OBJECT_DIR, CGROUP_PROGRAMS, SK_LOOKUP_OBJECT, SK_MSG_OBJECT, uninstall } from '../../src/bpf/loader.js';
import { NETNS_LIBRARY } from '../../src/bpf/netns.js';
import { bpffsMountFor, ensureBpffs, findCgroup2Mount } from '../../src/bpf/system.js';
import type { ProbeResult, ServerReply } from './harness/probe.js';
import { findTool, PROBE_PATH } from './harness/requirements.js';

export const TEST_PREFIX = 'sluice-test-';
export const BPFFS_ROOT = '/sys/fs/bpf';

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
  if (!existsSync(NETNS_LIBRARY)) missing.push(`${NETNS_LIBRARY}: run \`make -C native -f netns.mk\``);
  if (!existsSync(PROBE_PATH)) missing.push(`the probe ${PROBE_PATH}: run \`make -C native\``);
  if (!findTool('ip')) missing.push('`ip` from iproute2');
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

function procsOf(path: string): number[] {
  try {
    return readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function createCgroup(): TestCgroup {
  const mount = findCgroup2Mount();
  if (!mount) throw new Error('no cgroup2 mount');
  const path = join(mount, uniqueName());
  mkdirSync(path);
  let destroyed = false;
  return {
    path,
    async destroy() {
      if (destroyed) return;
      for (let i = 0; i < 50; i++) {
        const pids = procsOf(path);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      try {
        rmdirSync(path);
        destroyed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') destroyed = true;
        else throw err;
      }
    },
  };
}

/** A fresh bpffs directory for one test; removal detaches whatever is pinned in it. */
export function createBpffsDir(): { path: string; destroy(): void } {
  const path = join(BPFFS_ROOT, uniqueName());
  return {
    path,
    destroy() {
      if (!existsSync(path)) return;
      try {
        uninstall(path);
      } finally {
        // Pins of an unexpected shape: removing them drops the last reference anyway.
        if (existsSync(path)) rmSync(path, { recursive: true, force: true });
      }
    },
  };
}

/** Removes sluice-test-<pid>-* cgroups and pins left by dead test processes. */
export function reapStale(): string[] {
  const reaped: string[] = [];
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const stale = (name: string) => {
    const m = new RegExp(`^${TEST_PREFIX}(\\d+)-`).exec(name);
    return m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]));
  };
  const mount = findCgroup2Mount();
  if (mount) {
    for (const name of readdirSync(mount).filter(stale)) {
      const p = join(mount, name);
      if (procsOf(p).length === 0 && statSync(p).isDirectory()) {
        rmdirSync(p);
        reaped.push(p);
      }
    }
  }
  if (existsSync(BPFFS_ROOT)) {
    for (const name of readdirSync(BPFFS_ROOT).filter(stale)) {
      const p = join(BPFFS_ROOT, name);
      try {
        uninstall(p);
      } finally {
        rmSync(p, { recursive: true, force: true });
      }
      reaped.push(p);
    }
  }
  return reaped;
}

/** Runs `cmd args` as a process of `cgroup`: it joins the cgroup before exec. */
export function spawnInCgroup(cgroup: TestCgroup, cmd: string, args: string[]): ChildProcess {
  const script = 'echo $$ > "$0/cgroup.procs" && exec "$@"';
  return spawn('/bin/sh', ['-c', script, cgroup.path, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface TestServer {
  name: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** A probe server in `cgroup` and netns `netnsPath`; resolves once it listens. */
export function startServer(cgroup: TestCgroup, name: string, netnsPath: string, tcp: number[], udp: number[] = []): Promise<TestServer> {
  const args = ['serve', '--name', name, '--netns', netnsPath, '--tcp', tcp.join(','), '--udp', udp.join(',')];
  const child = spawnInCgroup(cgroup, PROBE_PATH, args);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const server: TestServer = {
    name,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server ${name} not ready: ${stderr}`)), 5000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${name} exited (${code}): ${stderr}`));
    });
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      if (line.trim() === 'ready') resolve(server);
      else reject(new Error(`server ${name}: ${line}`));
    });
  });
}

export interface ClientOptions {
  netnsPath: string;
  dst: string;
  src?: string;
  uid?: number;
  gid?: number;
  tag?: string;
  udp?: boolean;
  timeoutMs?: number;
}

/** One probe client connection from inside `cgroup`. */
export function connect(cgroup: TestCgroup, o: ClientOptions): Promise<ProbeResult> {
  const args = ['connect', '--netns', o.netnsPath, '--dst', o.dst, '--timeout-ms', String(o.timeoutMs ?? 2000)];
  if (o.src !== undefined) args.push('--src', o.src);
  if (o.uid !== undefined) args.push('--uid', String(o.uid));
  if (o.gid !== undefined) args.push('--gid', String(o.gid));
  if (o.tag !== undefined) args.push('--tag', o.tag);
  if (o.udp) args.push('--udp');
  const child = spawnInCgroup(cgroup, PROBE_PATH, args);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(stdout.trim()) as ProbeResult);
      } catch {
        reject(new Error(`probe connect ${o.dst} exited ${code}: ${stderr || stdout}`));
      }
    });
  });
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
  const script = 'echo $$ > "$0/cgroup.procs" && exec "$@"';
  const child = spawn('/bin/sh', ['-c', script, cgroup.path, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
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
