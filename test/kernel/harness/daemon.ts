// `sluice run` as a real child process, as an operator starts it, and the CLI run to
// completion. The daemon runs outside the test's cgroup, as it would on a node, against a
// world (world.ts) whose pods come from a source file (source.ts); /metrics parsing is in
// metrics.ts and what bpftool shows in bpftool.ts. This module re-exports all four, the
// one import of the daemon tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { RunResult } from '../bpf-fixture.js';
import { parseMetrics, type Metrics } from './metrics.js';
import { findTool, REPO_ROOT, scaled } from './requirements.js';

export type { RunResult } from '../bpf-fixture.js';
export * from './bpftool.js';
export * from './metrics.js';
export * from './source.js';
export * from './world.js';

export const CLI = join(REPO_ROOT, 'src', 'cli', 'main.ts');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `sluice ARGS` through tsx, as an operator runs it; never rejects. */
export function sluice(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: scaled(timeoutMs) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.on('error', (err) => resolve({ code: null, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A TCP port nothing listens on now (127.0.0.1 of the host netns; the daemon binds it next). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface DaemonOptions {
  source: string;
  cgroup: string;
  bpffs: string;
  lookupSocket: string;
  /** Reused on a restart, so the address stays the same. */
  port?: number;
  extraArgs?: string[];
  /** setpriv(1) options the daemon starts under, e.g. a capability set (--bounding-set ...). */
  setpriv?: string[];
  /** Replaces `--source file:SOURCE`, e.g. the kubernetes source and its flags. */
  sourceArgs?: string[];
  /** Run the built CLI (bin/sluice.js → dist/) as production does, not the sources via tsx. */
  built?: boolean;
}

export interface Daemon {
  child: ChildProcess;
  port: number;
  options: DaemonOptions;
  /** Everything the daemon printed (pino JSON lines, and any stack trace). */
  output(): string;
  alive(): boolean;
  get(path: string): Promise<HttpAnswer>;
  json<T>(path: string): Promise<T>;
  metrics(): Promise<Metrics>;
  /** Resolves on exit with the code or signal. */
  exited: Promise<string>;
  /** SIGKILL, as the restart test needs it; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM, the orderly stop; resolves once the process is gone. */
  stop(): Promise<void>;
}

const daemons = new Set<Daemon>();

/** Starts `sluice run` and resolves once /healthz answers 200. */
export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const port = o.port ?? (await freePort());
  const args = ['run', ...(o.sourceArgs ?? ['--source', `file:${o.source}`]), '--cgroup', o.cgroup, '--bpffs', o.bpffs, '--listen', `127.0.0.1:${port}`, '--lookup-socket', o.lookupSocket, ...(o.extraArgs ?? [])];
  // setpriv execs node (so kill -9 hits the daemon itself) with a parent-death signal: a
  // test runner killed outright leaves no daemon behind.
  const node = o.built ? [process.execPath, join(REPO_ROOT, 'bin', 'sluice.js'), ...args] : [process.execPath, '--import', 'tsx', CLI, ...args];
  const setpriv = findTool('setpriv');
  if (o.setpriv && !setpriv) throw new Error('setpriv (util-linux) is needed to start the daemon with reduced privileges');
  const argv = setpriv ? [setpriv, '--pdeathsig', 'KILL', ...(o.setpriv ?? []), ...node] : node;
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `exit ${code}`)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const get = async (path: string): Promise<HttpAnswer> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };
  const d: Daemon = {
    child,
    port,
    options: { ...o, port },
    output: () => out,
    alive: () => !gone(),
    get,
    async json<T>(path: string) {
      const a = await get(path);
      if (a.status !== 200) throw new Error(`GET ${path}: ${a.status} ${a.body}`);
      return JSON.parse(a.body) as T;
    },
    metrics: async () => parseMetrics((await get('/metrics')).body),
    exited,
    async kill9() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
      daemons.delete(d);
    },
    async stop() {
      if (!gone()) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), scaled(5000));
      await exited;
      clearTimeout(timer);
      daemons.delete(d);
    },
  };
  daemons.add(d);
  const deadline = Date.now() + scaled(30_000);
  for (;;) {
    if (gone()) throw new Error(`sluice run exited (${await exited}) before /healthz answered:\n${out}`);
    try {
      if ((await get('/healthz')).status === 200) return d;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await d.kill9();
      throw new Error(`sluice run: /healthz did not answer within ${scaled(30)}s:\n${out}`);
    }
    await sleep(50);
  }
}

/** Kills every daemon this process started and has not stopped. */
export async function killAllDaemons(): Promise<void> {
  await Promise.all([...daemons].map((d) => d.kill9()));
}

/** Polls `check` every `everyMs` until it returns a value that is not undefined. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + scaled(timeoutMs);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${scaled(timeoutMs)} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}
