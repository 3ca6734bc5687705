// `sluice run` as a real child process, and the private world it runs against: pod
// namespaces (each with its own peer), one private cgroup holding every probe process,
// one private bpffs directory and a scratch directory for the source file and the lookup
// socket. The daemon itself runs outside the cgroup, as it would on a node.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createBpffsDir, createCgroup, startServer, TEST_PREFIX, type TestCgroup, type TestServer } from '../bpf-fixture.js';
import { exec, ExecError, tryExec } from './exec.js';
import { findTool, REPO_ROOT, scaled, tool } from './requirements.js';
import { createTopology, deleteNetns, NETNS_PREFIX, pidAlive, type Topology } from './topology.js';

export const CLI = join(REPO_ROOT, 'src', 'cli', 'main.ts');
/** Listeners of every pod: the sidecar's outbound and inbound ports. */
export const POD_TCP = [15001, 15006];
/** The "remote" service every outbound test connection goes to (on the peer's lo). */
export const REMOTE = '10.2.0.5:80';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

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

// ---------------------------------------------------------------------------- metrics

/** Prometheus text: `name{a="x",b="y"}` (labels sorted) → value. */
export type Metrics = Map<string, number>;

export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

/** The value of one series (0 when absent); labels given as an object. */
export function metric(m: Metrics, name: string, labels: Record<string, string> = {}): number {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return m.get(l.length ? `${name}{${l.join(',')}}` : name) ?? 0;
}

/** Series names present (without labels). */
export function metricNames(m: Metrics): Set<string> {
  return new Set([...m.keys()].map((k) => k.split('{')[0]!));
}

// ---------------------------------------------------------------------------- source

export interface PodSpec {
  name: string;
  namespace?: string;
  netns: string;
  ips?: string[];
  annotations?: Record<string, string>;
}

/** A meshed Pod as `kubectl get -o yaml` shows it, naming its netns for the daemon. */
export function podObject(p: PodSpec): object {
  const ips = p.ips ?? ['10.1.0.2', 'fd00::2'];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace ?? 'default',
      annotations: { 'sidecar.istio.io/status': '{"containers":["istio-proxy"]}', 'sluice.dev/netns': p.netns, ...p.annotations },
    },
    spec: {
      containers: [
        { name: 'app', image: 'app:1' },
        { name: 'istio-proxy', image: 'istio/proxyv2:1.25.0', securityContext: { runAsUser: 1337, runAsGroup: 1337 } },
      ],
    },
    status: { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

export function sourceYaml(pods: PodSpec[]): string {
  return pods.map((p) => stringify(podObject(p))).join('---\n');
}

// ---------------------------------------------------------------------------- world

export interface World {
  cg: TestCgroup;
  bpffs: string;
  dir: string;
  source: string;
  lookupSocket: string;
  /** One topology per pod: pods[i].pod is the pod's netns, pods[i].peer its remote side. */
  pods: Topology[];
  servers: TestServer[];
  /** Replaces the source file in place (write, not rename): the edit a person makes. */
  write(text: string): void;
  /** Replaces the source file by rename, as editors and config managers do. */
  replace(text: string): void;
  /** A netns that is only a name (no veth, no process): one the test may delete. */
  extraNetns(): Promise<string>;
  destroy(): Promise<void>;
}

/**
 * `pods` pods, each in its own topology, with probe servers already listening: 15001 and
 * 15006 in the pod (the sidecar), 80 on the peer's remote address. Every probe is a
 * process of the private cgroup.
 */
export async function createWorld(pods: number): Promise<World> {
  const cg = createCgroup();
  const bpffs = createBpffsDir();
  const dir = mkdtempSync(join(tmpdir(), `${TEST_PREFIX}${process.pid}-`));
  const topologies: Topology[] = [];
  const servers: TestServer[] = [];
  const extra: string[] = [];
  let destroyed = false;
  const world: World = {
    cg,
    bpffs: bpffs.path,
    dir,
    source: join(dir, 'pods.yaml'),
    lookupSocket: join(dir, 'lookup.sock'),
    pods: topologies,
    servers,
    write(text) {
      writeFileSync(world.source, text);
    },
    replace(text) {
      const tmp = join(dir, `.pods.yaml.${randomBytes(3).toString('hex')}`);
      writeFileSync(tmp, text);
      renameSync(tmp, world.source);
    },
    async extraNetns() {
      const name = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-x`;
      extra.push(name);
      await exec(tool('ip'), ['netns', 'add', name]);
      return `/var/run/netns/${name}`;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.all(servers.map((s) => s.stop()));
      await Promise.all(topologies.map((t) => t.destroy()));
      for (const name of extra) await deleteNetns(name);
      try {
        bpffs.destroy();
      } finally {
        await cg.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    for (let i = 0; i < pods; i++) {
      const topo = await createTopology();
      topologies.push(topo);
      servers.push(await startServer(cg, `pod${i}`, topo.pod.path, POD_TCP));
      servers.push(await startServer(cg, `peer${i}`, topo.peer.path, [80]));
    }
    return world;
  } catch (err) {
    await world.destroy();
    throw err;
  }
}

/** Everything dead test processes left: namespaces, cgroups, pins, scratch directories. */
export async function reapStaleWorld(): Promise<void> {
  const { reapStaleNamespaces } = await import('./topology.js');
  const { reapStale } = await import('../bpf-fixture.js');
  await reapStaleNamespaces();
  reapStale();
  reapStaleWorkDirs();
}

/** Removes the scratch directories (source file, lookup socket) of dead test processes. */
export function reapStaleWorkDirs(): string[] {
  const reaped: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${TEST_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    reaped.push(name);
  }
  return reaped;
}

// ---------------------------------------------------------------------------- bpftool

/** `bpftool -j ARGS` parsed; [] for empty output. */
export async function bpftool<T = unknown>(args: string[]): Promise<T> {
  const { stdout } = await exec(tool('bpftool'), ['-j', ...args]);
  return JSON.parse(stdout.trim() || '[]') as T;
}

export interface CgroupProg {
  id: number;
  attach_type: string;
  name: string;
}

/** Programs attached to one cgroup directory (not the effective, inherited ones). */
export function cgroupPrograms(dir: string): Promise<CgroupProg[]> {
  return bpftool<CgroupProg[]>(['cgroup', 'show', dir]);
}

export interface LinkInfo {
  id: number;
  type: string;
  prog_id: number;
  netns_ino?: number;
  attach_type?: string;
}

export async function programIds(): Promise<Set<number>> {
  return new Set((await bpftool<{ id: number }[]>(['prog', 'show'])).map((p) => p.id));
}

export async function mapIds(): Promise<Set<number>> {
  return new Set((await bpftool<{ id: number }[]>(['map', 'show'])).map((p) => p.id));
}

export async function links(): Promise<LinkInfo[]> {
  return bpftool<LinkInfo[]>(['link', 'show']);
}

/** `ls -A DIR`: what an operator sees in the pin directory. */
export async function lsPinDir(dir: string): Promise<RunResult> {
  const r = await tryExec('ls', ['-A', dir]);
  return r instanceof Error ? { code: (r as ExecError).status, stdout: '', stderr: r.message } : { code: 0, stdout: r.stdout, stderr: r.stderr };
}
