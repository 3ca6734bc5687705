// Processes inside a mesh pod: each one joins the mesh's cgroup, enters the pod's netns
// with `ip netns exec`, and drops to its uid/gid with `setpriv` before exec'ing the real
// program. Every step execs, so the child's pid is the program's pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { exec } from './exec.js';
import type { Netns } from './netns.js';
import { tool } from '../system/tools.js';

export interface Identity {
  uid: number;
  gid: number;
}

export interface PodProcessOptions {
  netns: Netns;
  cgroupDir: string;
  who: Identity;
  cwd: string;
}

/** A clean environment: no NODE_OPTIONS, no tsx loader, nothing from the test runner. */
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/nonexistent' };

/** argv for `cmd args` run in the pod as `who`, joining `cgroupDir` first. */
function podArgv(o: PodProcessOptions, cmd: string, args: string[]): [string, string[]] {
  const script = 'echo $$ > "$0/cgroup.procs" && exec "$@"';
  const setpriv = [tool('setpriv'), '--reuid', String(o.who.uid), '--regid', String(o.who.gid), '--clear-groups'];
  return ['/bin/sh', ['-c', script, o.cgroupDir, tool('ip'), 'netns', 'exec', o.netns.name, ...setpriv, cmd, ...args]];
}

export function spawnInPod(o: PodProcessOptions, cmd: string, args: string[]): ChildProcess {
  const [file, argv] = podArgv(o, cmd, args);
  return spawn(file, argv, { cwd: o.cwd, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface PodRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion in the pod (a client); kills it after timeoutMs. */
export function runInPod(o: PodProcessOptions, cmd: string, args: string[], timeoutMs: number): Promise<PodRunResult> {
  const child = spawnInPod(o, cmd, args);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: stderr + err.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running process in a pod (an app or HAProxy), with its output kept for diagnostics. */
export interface PodProcess {
  label: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

export function startPodProcess(label: string, o: PodProcessOptions, cmd: string, args: string[]): PodProcess {
  const child = spawnInPod(o, cmd, args);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.on('error', (err) => (out += `\n[spawn error] ${err.message}`));
  return {
    label,
    child,
    pid: child.pid ?? -1,
    output: () => out,
    stop: () => stopChild(child),
  };
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
export function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (exited(child) || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Resolves when the process prints `line` on stdout; rejects if it exits or times out first. */
export function waitForLine(p: PodProcess, line: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`${p.label}: ${why}${p.output() ? `; output:\n${p.output().trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail(`no "${line}" after ${timeoutMs}ms`), timeoutMs);
    p.child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before "${line}"`));
    createInterface({ input: p.child.stdout! }).on('line', (l) => {
      if (l.trim() !== line) return;
      clearTimeout(timer);
      p.child.removeAllListeners('exit');
      resolve();
    });
  });
}

/** TCP listeners of a netns, as `ADDR:PORT` strings the way `ss` prints them (`0.0.0.0:15001`, `[::]:15001`). */
export async function tcpListeners(ns: Netns): Promise<Set<string>> {
  const { stdout } = await exec(tool('ip'), ['netns', 'exec', ns.name, tool('ss'), '-Htln']);
  return new Set(stdout.split('\n').map((l) => l.trim().split(/\s+/)[3] ?? '').filter(Boolean));
}

/** Waits until every `want` listener exists in the netns, while `p` keeps running. */
export async function waitListening(p: PodProcess, ns: Netns, want: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited(p.child)) throw new Error(`${p.label} exited (${p.child.exitCode ?? p.child.signalCode}) before listening; output:\n${p.output().trim()}`);
    const have = await tcpListeners(ns);
    const missing = want.filter((w) => !have.has(w));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${p.label}: not listening on ${missing.join(', ')} after ${timeoutMs}ms; output:\n${p.output().trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The real uid and gid of a running process, from /proc. */
export async function processIdentity(pid: number): Promise<Identity> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { uid: field('Uid'), gid: field('Gid') };
}
