// Drives native/build/sluice-probe: servers that report what they saw, and one-shot clients.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { stopChild } from '../../../src/lab/pod-process.js';
import { exec, ExecError } from './exec.js';
import { PROBE_PATH } from './requirements.js';

/** What a probe server saw for one connection or datagram. */
export interface ServerReply {
  server: string;
  port: number;
  peer: string;
  local: string;
  origDst: string | null;
  origDstErrno: number;
  tag: string;
}

export type ProbeResult =
  | { ok: true; server: ServerReply; clientPeer: string; clientLocal: string; replyFrom?: string }
  | { ok: false; error: string; errno: number };

export interface ProbeServer {
  name: string;
  netnsPath: string;
  pid: number;
  stop(): Promise<void>;
}

const servers = new Set<ProbeServer>();

/** Spawns `cmd args`, first moving it into the cgroup at `cgroupPath` when one is given. */
function spawnIn(cgroupPath: string | undefined, cmd: string, args: string[]): ChildProcess {
  if (cgroupPath === undefined) return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // A cgroup program only sees sockets of processes in its cgroup: join it before exec.
  return spawn('/bin/sh', ['-c', CGROUP_EXEC, cgroupPath, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `sh -c CGROUP_EXEC CGROUP CMD ARGS...`: joins CGROUP, then execs CMD. */
export const CGROUP_EXEC = 'echo $$ > "$0/cgroup.procs" && exec "$@"';

export interface ServeOptions {
  /** Reported as `server` in every reply, e.g. `pod` or `peer`. */
  name: string;
  netnsPath: string;
  /** Run inside this cgroup (the eBPF backend attaches to a private one). */
  cgroupPath?: string;
  tcp: number[];
  udp: number[];
  readyTimeoutMs?: number;
}

/** Starts a server and resolves once every listener is bound. */
export function startServer(opts: ServeOptions): Promise<ProbeServer> {
  const args = ['serve', '--name', opts.name, '--netns', opts.netnsPath, '--tcp', opts.tcp.join(','), '--udp', opts.udp.join(',')];
  const child = spawnIn(opts.cgroupPath, PROBE_PATH, args);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const server: ProbeServer = {
    name: opts.name,
    netnsPath: opts.netnsPath,
    pid: child.pid ?? -1,
    stop: () => stopChild(child).then(() => void servers.delete(server)),
  };
  servers.add(server);
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      void server.stop();
      reject(new Error(`probe server ${opts.name} in ${opts.netnsPath}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail('not ready after timeout'), opts.readyTimeoutMs ?? 5000);
    child.on('error', (err) => fail(err.message));
    child.on('exit', (code, signal) => fail(`exited (${code ?? signal}) before ready`));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      if (line.trim() !== 'ready') return fail(`unexpected output ${JSON.stringify(line)}`);
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve(server);
    });
  });
}


export async function stopAllServers(): Promise<void> {
  await Promise.all([...servers].map((s) => s.stop()));
}

export interface ConnectOptions {
  netnsPath: string;
  /** `IP:PORT` or `[IPv6]:PORT`. */
  dst: string;
  src?: string;
  udp?: boolean;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
  tag?: string;
  cgroupPath?: string;
}

/** Runs one probe client: connect, send the tag, read the server's reply. */
export async function probeConnect(opts: ConnectOptions): Promise<ProbeResult> {
  const args = ['connect', '--netns', opts.netnsPath, '--dst', opts.dst, '--timeout-ms', String(opts.timeoutMs ?? 2000)];
  if (opts.src !== undefined) args.push('--src', opts.src);
  if (opts.udp) args.push('--udp');
  if (opts.uid !== undefined) args.push('--uid', String(opts.uid));
  if (opts.gid !== undefined) args.push('--gid', String(opts.gid));
  if (opts.tag !== undefined) args.push('--tag', opts.tag);
  let stdout: string;
  try {
    const timeoutMs = (opts.timeoutMs ?? 2000) * 3 + 2000;
    if (opts.cgroupPath === undefined) ({ stdout } = await exec(PROBE_PATH, args, { timeoutMs }));
    else ({ stdout } = await exec('/bin/sh', ['-c', CGROUP_EXEC, opts.cgroupPath, PROBE_PATH, ...args], { timeoutMs }));
  } catch (err) {
    // Exit 1 is a reported failure (JSON on stdout); anything else is a harness problem.
    if (!(err instanceof ExecError) || err.status !== 1 || !err.stdout.trim()) throw err;
    stdout = err.stdout;
  }
  return JSON.parse(stdout.trim()) as ProbeResult;
}
