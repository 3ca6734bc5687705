// The bench's two processes, native/bench.c: a server that plays the proxy (asks
// SO_ORIGINAL_DST, replies with it) and a client that opens connections back to back and
// reports their rate and latency, or streams over one connection (`stream`). Both run in
// a cgroup, so the cgroup programs of the eBPF backend see them, and inside a netns given
// by path.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runInCgroup, spawnInCgroup, type TestCgroup } from '../test/kernel/bpf-fixture.js';
import { REPO_ROOT } from '../test/kernel/harness/requirements.js';

export const BENCH_PATH = join(REPO_ROOT, 'native', 'build', 'sluice-bench');

export function benchBinaryMissing(): string | null {
  return existsSync(BENCH_PATH) ? null : `the load generator ${BENCH_PATH}: run \`make -C native\``;
}

export interface Percentiles {
  p50: number;
  p99: number;
  mean: number;
}

/** One client run, as native/bench.c prints it. Latencies in microseconds. */
export interface LoadResult {
  connections: number;
  errors: number;
  /** Replies that differ from what the capture should have produced. */
  mismatches: number;
  seconds: number;
  /** Connections per second, over the measured window. */
  rate: number;
  /** connect() to writable. */
  connectUs: Percentiles;
  /** connect() to reply read and socket closed. */
  cycleUs: Percentiles;
  /** CPU time client, server and the pinned CPU's kernel threads used per connection (-1 when not measured). */
  cpuUsPerConnection: number;
  /** The kernel threads' part of it (ksoftirqd/N, kworker/N:*; 0 when unpinned). */
  kthreadUsPerConnection: number;
  firstReply: string;
  firstError: string;
}

export type CloseMode = 'rst' | 'fin';

export interface LoadOptions {
  netnsPath: string;
  dst: string;
  /** The reply every connection must get: "<proxy port> <original destination>". */
  expect?: string;
  uid?: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  close: CloseMode;
  /** Pin to this CPU, or run where the scheduler likes (null). */
  cpu: number | null;
  /** The server's pid, whose CPU time the client adds to its own. */
  serverPid?: number;
  /** A request to write on each connection; the reply is then read to EOF (a real proxy's). */
  send?: string;
  /** Text the whole reply must contain (for replies longer than --expect's one line). */
  expectIn?: string;
  /** Take the processes' CPU time from this cgroup's cpu.stat (all of it: client, proxies, apps). */
  cgroupCpu?: string;
  /** Exactly this many connections, then stop (durationMs is then a time limit). */
  count?: number;
}

export class LoadError extends Error {
  override readonly name = 'LoadError';
  readonly code = 'BENCH_LOAD_FAILED';
}

export async function runLoad(cgroup: TestCgroup, o: LoadOptions): Promise<LoadResult> {
  const args = ['run', '--netns', o.netnsPath, '--dst', o.dst, ...(o.expect !== undefined ? ['--expect', o.expect] : []), '--concurrency', String(o.concurrency), '--warmup-ms', String(o.warmupMs), '--duration-ms', String(o.durationMs), '--close', o.close];
  if (o.uid !== undefined) args.push('--uid', String(o.uid));
  if (o.cpu !== null) args.push('--cpu', String(o.cpu));
  if (o.serverPid !== undefined) args.push('--server-pid', String(o.serverPid));
  if (o.send !== undefined) args.push('--send', o.send);
  if (o.expectIn !== undefined) args.push('--expect-in', o.expectIn);
  if (o.cgroupCpu !== undefined) args.push('--cgroup-cpu', o.cgroupCpu);
  if (o.count !== undefined) args.push('--count', String(o.count));
  return runBench<LoadResult>(cgroup, args);
}

/** Runs sluice-bench in the cgroup; its one JSON line is the result. */
async function runBench<T>(cgroup: TestCgroup, args: string[]): Promise<T> {
  const r = await runInCgroup(cgroup, BENCH_PATH, args);
  try {
    return JSON.parse(r.stdout.trim()) as T;
  } catch {
    throw new LoadError(`sluice-bench ${args.join(' ')} exited ${r.code} without a result: ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

/** One stream phase: `bytes` moved (round trips for ping) in `seconds`, CPU of both ends. */
export interface StreamPhase {
  /** Write size, or the message size of a round trip. */
  write: number;
  bytes: number;
  seconds: number;
  /** Client, server and the pinned CPU's kernel threads, which are also in kthreadNs. */
  cpuNs: number;
  kthreadNs: number;
  /** Stream offset of the first byte that differed from the pattern, or -1. */
  bad: number;
}

/** `sluice-bench stream`, as it prints it. */
export interface StreamResult {
  /** The proxy stand-in's reply line: "<listener port> <original destination>". */
  reply: string;
  mismatch: boolean;
  /** Empty when every phase ran. */
  error: string;
  /** Every byte of the connection, both ways (what a redirect counter should see). */
  bytesSent: number;
  bytesReceived: number;
  /** Client to proxy, one per write size. */
  up: StreamPhase[];
  /** Proxy to client. */
  down: StreamPhase[];
  ping: { size: number; roundTrips: number; seconds: number; cpuNs: number; kthreadNs: number; bad: number; us: Percentiles };
}

export interface StreamOptions {
  netnsPath: string;
  dst: string;
  expect: string;
  uid?: number;
  writes: number[];
  pingSize: number;
  warmupMs: number;
  durationMs: number;
  cpu: number | null;
  serverPid: number;
}

export async function runStream(cgroup: TestCgroup, o: StreamOptions): Promise<StreamResult> {
  const args = ['stream', '--netns', o.netnsPath, '--dst', o.dst, '--expect', o.expect, '--writes', o.writes.join(','), '--ping-size', String(o.pingSize), '--warmup-ms', String(o.warmupMs), '--duration-ms', String(o.durationMs), '--server-pid', String(o.serverPid)];
  if (o.uid !== undefined) args.push('--uid', String(o.uid));
  if (o.cpu !== null) args.push('--cpu', String(o.cpu));
  return runBench<StreamResult>(cgroup, args);
}

export interface BenchServer {
  /** The server process itself (spawnInCgroup's shell execs it). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * The proxy stand-in, listening on `ports` (IPv4 and IPv6) in the netns; resolves once it
 * listens. A connection whose original destination port is in `streamPorts` is a stream
 * session instead of a one-line reply.
 */
export function startBenchServer(cgroup: TestCgroup, netnsPath: string, ports: number[], streamPorts: number[], cpu: number | null): Promise<BenchServer> {
  const args = ['serve', '--netns', netnsPath, '--tcp', ports.join(',')];
  if (streamPorts.length) args.push('--stream-ports', streamPorts.join(','));
  if (cpu !== null) args.push('--cpu', String(cpu));
  const child = spawnInCgroup(cgroup, BENCH_PATH, args);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const server: BenchServer = {
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new LoadError(`sluice-bench serve not ready after 5s: ${stderr}`)), 5000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new LoadError(`sluice-bench serve exited (${code}): ${stderr}`));
    });
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      if (line.trim() === 'ready') resolve(server);
      else reject(new LoadError(`sluice-bench serve: ${line}`));
    });
  });
}
