// `sluice demo`: two pods in their own network namespaces, each with an app (uid 1000) and
// HAProxy as its sidecar (uid/gid 1337), captured by a real `sluice run` daemon. Real HTTP
// requests go between the pods; the demo prints the path each took and what HAProxy saw
// (SO_ORIGINAL_DST), then removes everything it made. Nothing touches the host's network
// namespace or root cgroup: the programs attach to the demo's own child cgroup.
import { SluiceError } from '../errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_OBJECT_DIR } from '../bpf/loader.js';
import { ensureBpffs } from '../bpf/system.js';
import { meshRequests, meshRequirementsMissing, sendMeshRequest, startMeshWorkloads, type MeshObservation, type MeshWorkloads } from '../lab/mesh.js';
import { createMeshTopology, MESH_ADDRESSES, POD_NAMES, reapStaleMeshLeftovers, type MeshTopology, type PodName } from '../lab/mesh-topology.js';
import { NETNS_PREFIX, reapStaleNamespaces } from '../lab/netns.js';
import { stopChild } from '../lab/pod-process.js';
import { BPFFS_ROOT, reapStalePinDirs, removePinDir } from '../lab/pins.js';
import { formatEndpoint } from '../policy/net.js';

export class DemoError extends SluiceError {
  constructor(message: string) {
    super('DEMO_FAILED', message);
  }
}

export interface DemoOptions {
  /** Print one JSON report instead of the narrated run. */
  json?: boolean;
  /** How long to wait for the daemon's /readyz. */
  readyTimeoutMs?: number;
}

export interface DemoPod {
  name: string;
  netns: string;
  addresses: string[];
  status: string;
  netnsCookie: string | null;
}

export interface DemoRequest {
  id: string;
  description: string;
  from: string;
  uid: number;
  to: string;
  ok: boolean;
  error?: string;
  /** `pod/listener:port` per proxy hop, in order. */
  path: string[];
  hops: { pod: string; listener: string; port: number; peer: string; kernelDst: string; forwardedFrom: string; forwardedTo: string }[];
  app: { pod: string; peer: string; local: string } | null;
}

export interface DemoReport {
  ok: boolean;
  daemon: { listen: string; cgroup: string; bpffs: string };
  pods: DemoPod[];
  requests: DemoRequest[];
  /** sluice_decisions_total summed by outcome, from the daemon's /metrics. */
  decisions: Record<string, number>;
  /** What was left after cleanup (should be empty). */
  leftovers: string[];
}

/** A free TCP port on the host's loopback, for the daemon's HTTP listener. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The source file the daemon watches: one Pod per mesh pod, naming its netns. */
export function demoPodsYaml(mesh: MeshTopology): string {
  return POD_NAMES.map((pod) => {
    const p = mesh.pods[pod];
    return [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      `  name: ${pod}`,
      '  namespace: demo',
      `  labels: { app: demo-${pod} }`,
      '  annotations:',
      `    sidecar.istio.io/status: '{"containers":["istio-proxy"]}'`,
      `    sluice.dev/netns: ${p.netns.path}`,
      'spec:',
      '  containers:',
      `    - name: app`,
      '    - name: istio-proxy',
      '      securityContext: { runAsUser: 1337, runAsGroup: 1337 }',
      'status:',
      `  podIP: ${p.addrs.v4}`,
      `  podIPs: [{ ip: "${p.addrs.v4}" }, { ip: "${p.addrs.v6}" }]`,
      '',
    ].join('\n');
  }).join('---\n');
}

interface Daemon {
  child: ChildProcess;
  listen: string;
  log(): string;
}

/** Starts `sluice run` as a child, the same way this process was started (dist or tsx). */
function startDaemon(args: string[]): Daemon {
  const entry = process.argv[1];
  if (!entry) throw new DemoError('cannot tell how sluice was started (no argv[1]) to start the daemon the same way');
  const child = spawn(process.execPath, [...process.execArgv, entry, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  return { child, listen: args[args.indexOf('--listen') + 1]!, log: () => out };
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
}

async function waitReady(d: Daemon, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) throw new DemoError(`the daemon exited (${d.child.exitCode ?? d.child.signalCode}) before it was ready:\n${d.log().trim()}`);
    try {
      if ((await get(`http://${d.listen}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new DemoError(`the daemon was not ready after ${timeoutMs} ms:\n${d.log().trim()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


function decisionsOf(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of metrics.matchAll(/^sluice_decisions_total\{[^}]*outcome="([^"]+)"[^}]*\} (\d+)/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  return out;
}

function requestOf(o: MeshObservation, r: ReturnType<typeof meshRequests>[number]): DemoRequest {
  return {
    id: r.id,
    description: r.description,
    from: r.from,
    uid: r.who.uid,
    to: formatEndpoint(r.to),
    ok: o.ok,
    ...(o.error !== undefined ? { error: o.error } : {}),
    path: o.hops.map((h) => `${h.pod}/${h.listener}:${h.port}`),
    hops: o.hops.map((h) => ({ pod: h.pod, listener: h.listener, port: h.port, peer: h.peer, kernelDst: h.kernelDst, forwardedFrom: h.forwardedFrom, forwardedTo: h.forwardedTo })),
    app: o.app ? { pod: o.app.pod, peer: o.app.peer, local: o.app.local } : null,
  };
}

/** The narrated form of one request. */
function narrate(r: DemoRequest): string[] {
  const lines = [`${r.ok ? 'ok  ' : 'FAIL'} ${r.id}: pod ${r.from}, uid ${r.uid} → ${r.to}`];
  for (const h of r.hops) {
    // HAProxy asks SO_ORIGINAL_DST only on IPv4; on IPv6 its `dst` is getsockname().
    const what = h.kernelDst.startsWith('[') ? 'getsockname' : 'SO_ORIGINAL_DST';
    lines.push(`       HAProxy ${h.pod} ${h.listener} :${h.port}  from ${h.peer}  ${what} ${h.kernelDst}  → forwards ${h.forwardedFrom} → ${h.forwardedTo}`);
  }
  if (r.app) lines.push(`       app in pod ${r.app.pod} answers: peer ${r.app.peer}, local ${r.app.local}`);
  if (r.error) lines.push(`       error: ${r.error}`);
  return lines;
}

/** What remains of this run after cleanup: namespaces, cgroup, pins, work dir. */
async function leftoversOf(mesh: MeshTopology, bpffs: string): Promise<string[]> {
  const left: string[] = [];
  for (const pod of POD_NAMES) if (existsSync(mesh.pods[pod].netns.path)) left.push(mesh.pods[pod].netns.path);
  if (existsSync(mesh.node.path)) left.push(mesh.node.path);
  for (const p of [mesh.cgroupDir, mesh.workDir, bpffs]) if (p && existsSync(p)) left.push(p);
  return left;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoReport> {
  const say = opts.json ? () => {} : (s = '') => process.stdout.write(`${s}\n`);
  const missing = meshRequirementsMissing({ who: 'sluice demo' });
  if (missing) throw new DemoError(`${missing}\n  Run ./scripts/setup first.`);
  if (!existsSync(join(DEFAULT_OBJECT_DIR, 'connect.bpf.o'))) throw new DemoError(`the BPF objects are not built (${DEFAULT_OBJECT_DIR}): run npm run build`);
  ensureBpffs(BPFFS_ROOT);
  await reapStaleNamespaces();
  await reapStaleMeshLeftovers();
  reapStalePinDirs();

  const mesh = await createMeshTopology();
  const bpffs = join(BPFFS_ROOT, `${NETNS_PREFIX}${mesh.id}-demo`);
  let workloads: MeshWorkloads | null = null;
  let daemon: Daemon | null = null;
  // Ctrl-C during the demo: clean up, then exit.
  const interrupted = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let cleaned = false;
  async function cleanup(): Promise<void> {
    if (cleaned) return;
    cleaned = true;
    if (daemon) await stopChild(daemon.child, 5000);
    // The daemon leaves its programs attached when it stops (interception never pauses
    // for a restart); `sluice uninstall` is what removes them.
    removePinDir(bpffs);
    await Promise.all((workloads?.processes ?? []).map((p) => p.stop()));
    await mesh.destroy();
  }

  try {
    say('sluice demo: two pods, HAProxy as their sidecar proxy (uid 1337), captured by eBPF');
    say();
    const ports = { outbound: 15001, inbound: 15006 };
    workloads = await startMeshWorkloads(mesh, { a: ports, b: ports });
    for (const pod of POD_NAMES) {
      const p = mesh.pods[pod];
      say(`  pod ${pod}: netns ${p.netns.name}, ${p.addrs.v4} and ${p.addrs.v6}; app on :8080 as uid ${workloads.apps[pod].uid}, HAProxy on :15001/:15006 as uid ${workloads.proxies[pod].uid}`);
    }
    const source = join(mesh.workDir, 'pods.yaml');
    writeFileSync(source, demoPodsYaml(mesh), { mode: 0o644 });
    const listen = `127.0.0.1:${await freePort()}`;
    daemon = startDaemon(['--source', `file:${source}`, '--cgroup', mesh.cgroupDir, '--bpffs', bpffs, '--listen', listen]);
    await waitReady(daemon, opts.readyTimeoutMs ?? 20_000);
    say(`  daemon: sluice run (pid ${daemon.child.pid}), http://${listen}, cgroup ${mesh.cgroupDir}, pins ${bpffs}`);

    const podsJson = JSON.parse((await get(`http://${listen}/v1/pods`)).body) as { namespace: string; name: string; netns: string; netnsCookie: string | null; status: string; error: string | null }[];
    const pods: DemoPod[] = podsJson.map((p) => ({
      name: `${p.namespace}/${p.name}`,
      netns: p.netns,
      addresses: [MESH_ADDRESSES[p.name as PodName]?.v4 ?? '', MESH_ADDRESSES[p.name as PodName]?.v6 ?? ''],
      status: p.status,
      netnsCookie: p.netnsCookie === null ? null : String(p.netnsCookie),
    }));
    for (const p of pods) say(`  ${p.name}: ${p.status} (netns cookie ${p.netnsCookie})`);
    say();
    say('Requests (real HTTP from inside the pods):');
    const requests: DemoRequest[] = [];
    for (const r of meshRequests()) {
      const d = requestOf(await sendMeshRequest(workloads, r), r);
      requests.push(d);
      say(`  ${narrate(d).join('\n  ')}`);
    }
    const decisions = decisionsOf((await get(`http://${listen}/metrics`)).body);
    say();
    say(`Kernel decision counters (/metrics): ${Object.entries(decisions).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    await cleanup();
    const leftovers = await leftoversOf(mesh, bpffs);
    say(leftovers.length ? `Cleanup left: ${leftovers.join(', ')}` : 'Cleaned up: daemon stopped, programs detached and pins removed, namespaces, cgroup and files deleted.');
    return { ok: requests.every((r) => r.ok) && leftovers.length === 0, daemon: { listen, cgroup: mesh.cgroupDir, bpffs }, pods, requests, decisions, leftovers };
  } catch (err) {
    if (daemon && !opts.json) process.stderr.write(`daemon log:\n${daemon.log().trim()}\n`);
    throw err;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
  }
}
