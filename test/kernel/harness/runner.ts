// Runs cases through capture backends in fresh topologies. Every (backend, policy) gets its
// own pod/peer namespaces: servers first, then the capture, then the cases, then teardown.
import type { CapturePolicy } from '../../../src/policy/types.js';
import { createCgroup } from '../bpf-fixture.js';
import type { CaptureBackend, RunEnv } from './backend.js';
import type { OracleCase } from './cases.js';
import { isPodLocal, observationOf, type Observation } from './observe.js';
import { probeConnect, startServer, stopAllServers, type ProbeResult, type ProbeServer } from './probe.js';
import { createTopology, destroyAllTopologies, type Topology, type TopologyOptions } from './topology.js';

export interface RunRecord {
  backend: string;
  policyName: string;
  caseId: string;
  observation: Observation;
  /** Everything the probe reported, for debugging a mismatch. */
  raw: ProbeResult;
}

/** backend name → policy name → case id → record. */
export type MatrixResult = Record<string, Record<string, Record<string, RunRecord>>>;

const POD_TCP = [15001, 15006, 15053, 15008, 15020, 15021, 15090, 8080, 9090, 15002];
const POD_UDP = [15053, 53];
const PEER_TCP = [80, 8080, 443, 15008, 53];
const PEER_UDP = [53];

/** Listener ports: the fixed sets, the policy's own ports, and every port a case uses. */
export function serverPorts(policy: CapturePolicy, cases: OracleCase[]) {
  const set = (base: number[]) => new Set(base);
  const p = { podTcp: set(POD_TCP), podUdp: set(POD_UDP), peerTcp: set(PEER_TCP), peerUdp: set(PEER_UDP) };
  const { outbound, inbound, tunnel, dns } = policy.ports;
  [outbound, inbound, tunnel, dns, ...policy.excludeInboundPorts].forEach((n) => p.podTcp.add(n));
  p.podUdp.add(dns);
  for (const c of cases) {
    const local = c.conn.direction === 'inbound' || isPodLocal(policy, c.conn.dst.ip);
    const udp = c.conn.protocol === 'udp';
    (local ? (udp ? p.podUdp : p.podTcp) : udp ? p.peerUdp : p.peerTcp).add(c.conn.dst.port);
  }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { podTcp: sorted(p.podTcp), podUdp: sorted(p.podUdp), peerTcp: sorted(p.peerTcp), peerUdp: sorted(p.peerUdp) };
}

export interface RunOptions {
  /** Per-connection timeout for the probe client. */
  timeoutMs?: number;
  /** Interface names and the VM netns (the Istio golden suite). */
  topology?: TopologyOptions;
}

/** Runs one case in a prepared topology. */
export async function runCase(topo: Topology, c: OracleCase, opts: RunOptions = {}, env: RunEnv = {}): Promise<ProbeResult> {
  const ns = c.client.netns === 'vm' ? topo.vm : topo[c.client.netns];
  if (!ns) throw new Error(`${c.id}: the case runs in the VM netns, but the topology has none (set RunOptions.topology.vmIfname)`);
  return probeConnect({
    netnsPath: ns.path,
    ...(env.cgroupPath !== undefined ? { cgroupPath: env.cgroupPath } : {}),
    dst: c.conn.dst.ip.includes(':') ? `[${c.conn.dst.ip}]:${c.conn.dst.port}` : `${c.conn.dst.ip}:${c.conn.dst.port}`,
    udp: c.conn.protocol === 'udp',
    tag: c.id,
    timeoutMs: opts.timeoutMs ?? 2000,
    ...(c.client.src !== undefined ? { src: c.client.src } : {}),
    ...(c.client.uid !== undefined ? { uid: c.client.uid } : {}),
    ...(c.client.gid !== undefined ? { gid: c.client.gid } : {}),
  });
}

/** One backend, one policy, its cases: a fresh topology, always torn down. */
export async function runPolicy(
  backend: CaptureBackend,
  policyName: string,
  policy: CapturePolicy,
  cases: OracleCase[],
  opts: RunOptions = {},
): Promise<Record<string, RunRecord>> {
  const topo = await createTopology(opts.topology);
  const cgroup = backend.usesCgroup ? createCgroup() : null;
  const env: RunEnv = cgroup ? { cgroupPath: cgroup.path } : {};
  const servers: ProbeServer[] = [];
  try {
    const ports = serverPorts(policy, cases);
    // Servers first: capture must find its listeners already bound, as in a running pod.
    servers.push(await startServer({ name: 'pod', netnsPath: topo.pod.path, tcp: ports.podTcp, udp: ports.podUdp, ...env }));
    servers.push(await startServer({ name: 'peer', netnsPath: topo.peer.path, tcp: ports.peerTcp, udp: ports.peerUdp, ...env }));
    if (topo.vm) servers.push(await startServer({ name: 'vm', netnsPath: topo.vm.path, tcp: ports.peerTcp, udp: ports.peerUdp, ...env }));
    await backend.install(topo, policy, env);
    const out: Record<string, RunRecord> = {};
    try {
      for (const c of cases) {
        const raw = await runCase(topo, c, opts, env);
        out[c.id] = { backend: backend.name, policyName, caseId: c.id, observation: observationOf(raw), raw };
      }
    } finally {
      await backend.uninstall(topo, env);
    }
    return out;
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await cgroup?.destroy();
    await topo.destroy();
  }
}

/**
 * Every backend × every policy, each case under its policy. The result is keyed so the
 * same case can be compared across backends (see compareBackends).
 */
export async function runMatrix(
  backends: CaptureBackend[],
  policies: Record<string, CapturePolicy>,
  cases: OracleCase[],
  opts: RunOptions = {},
): Promise<MatrixResult> {
  const result: MatrixResult = {};
  for (const backend of backends) {
    result[backend.name] = {};
    for (const [name, policy] of Object.entries(policies)) {
      const mine = cases.filter((c) => c.policyName === name);
      if (mine.length === 0) continue;
      result[backend.name]![name] = await runPolicy(backend, name, policy, mine, opts);
    }
  }
  return result;
}

export interface Difference {
  policyName: string;
  caseId: string;
  a: Observation | undefined;
  b: Observation | undefined;
}

/** Cases whose observations differ between two backends of one matrix run. */
export function compareBackends(m: MatrixResult, a: string, b: string): Difference[] {
  const diffs: Difference[] = [];
  const policies = new Set([...Object.keys(m[a] ?? {}), ...Object.keys(m[b] ?? {})]);
  for (const p of policies) {
    const ids = new Set([...Object.keys(m[a]?.[p] ?? {}), ...Object.keys(m[b]?.[p] ?? {})]);
    for (const id of ids) {
      const oa = m[a]?.[p]?.[id]?.observation;
      const ob = m[b]?.[p]?.[id]?.observation;
      if (canonical(oa) !== canonical(ob)) diffs.push({ policyName: p, caseId: id, a: oa, b: ob });
    }
  }
  return diffs;
}

/** JSON with sorted keys, so field order never makes two observations differ. */
function canonical(o: Observation | undefined): string {
  return o === undefined ? 'undefined' : JSON.stringify(o, Object.keys(o).sort());
}

/** Stops every probe server and destroys every topology of this process: for after.always. */
export async function cleanupAll(): Promise<void> {
  await stopAllServers();
  await destroyAllTopologies();
}
