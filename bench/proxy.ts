// `--proxy`: the bench through real proxies. Each mode gets the lab's mesh (src/lab: two
// pods, an app on 8080 as uid 1000 and HAProxy as uid/gid 1337 on 15001/15006, as
// `sluice demo` runs them) and one native client in pod a (uid 1000) sending HTTP
// requests to pod b's app, one per connection:
//
//   floor       no capture: the client addresses its proxy (127.0.0.1:15001), whose
//               fixed upstream is b's proxy (10.1.0.3:15006), whose upstream is b's app
//               from 127.0.0.6: the same hops, nothing redirected (HaproxyConfigOptions.upstream)
//   iptables    the client asks for 10.1.0.3:8080; renderIptables() in each pod's netns
//   ebpf        the same, sluice's data plane on the mesh cgroup, a policy per pod netns
//   ebpf+accel  the same with acceleration on
//
// In the captured modes HAProxy finds 10.1.0.3:8080 by SO_ORIGINAL_DST, at both hops.
// Every reply must carry the app's answer naming b's app, the original destination as
// its local address and both proxies (x-sluice-via), or the connection is a mismatch.
// Rounds interleave the modes in a rotating order, as everywhere in the bench. With
// --cpu every process of the mesh (apps, proxies, client) is pinned to that CPU, so the
// rate is CPU cost; CPU per request is the mesh cgroup's cpu.stat plus the CPU's kthreads.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfDataPlane } from '../src/bpf/dataplane.js';
import { renderHaproxyConfig, startHaproxy } from '../src/lab/haproxy.js';
import { MESH_PROXY, meshRequirementsMissing, startMeshWorkloads, type MeshWorkloads } from '../src/lab/mesh.js';
import { createMeshTopology, MESH_ADDRESSES, POD_NAMES, reapStaleMeshLeftovers, type MeshTopology } from '../src/lab/mesh-topology.js';
import { processIdentity, type PodProcess } from '../src/lab/pod-process.js';
import type { TestCgroup } from '../test/kernel/bpf-fixture.js';
import { iptablesBackend } from '../test/kernel/harness/backend.js';
import { exec } from '../test/kernel/harness/exec.js';
import { meshPolicy, podTopology } from '../test/kernel/harness/mesh.js';
import { findTool, tool } from '../test/kernel/harness/requirements.js';
import { installDataPlane, type Cleanup } from './backends.js';
import { runLoad, type CloseMode, type LoadResult } from './load.js';
import type { Progress } from './progress.js';
import { accelDelta, addAccel, type AccelDelta } from './report.js';

export const PROXY_MODES = ['floor', 'iptables', 'ebpf', 'ebpf+accel'] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];
/** The figures' group: `proxy.<metric>.http.<mode>`. */
export const PROXY_GROUP = 'http';

const PORTS = { outbound: 15001, inbound: 15006 };
const APP = `${MESH_ADDRESSES.b.v4}:8080`;
const PATH = '/bench';
/** What the app answers when the request came the whole way (mesh-app.mjs's JSON, in its order). */
export const PROXY_EXPECT = `"local":"${APP}","path":"${PATH}","via":"a/outbound, b/inbound"`;
const request = (host: string) => `GET ${PATH} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: sluice-bench\r\n\r\n`;

export interface ProxyMesh {
  mode: ProxyMode;
  mesh: MeshTopology;
  /** Where the client connects. */
  dst: string;
  dp: BpfDataPlane | null;
}

export interface ProxyResults {
  rounds: Partial<Record<ProxyMode, LoadResult[]>>;
  /** sk_msg counters of ebpf+accel over its rounds. */
  accel: AccelDelta | null;
  /** Modes left out because their warm-up got no right answer: why. */
  failed: Partial<Record<ProxyMode, string>>;
}

export function proxyRequirementsMissing(): string | null {
  return meshRequirementsMissing({ iptables: true, who: 'npm run bench -- --proxy' }) ?? (findTool('taskset') ? null : '`taskset` (util-linux): it pins the mesh to the bench CPU');
}

const inPod = (mesh: MeshTopology, pod: 'a' | 'b', ...args: string[]) => exec(tool('ip'), ['netns', 'exec', mesh.pods[pod].netns.name, ...args]);

/** The floor's proxies: the lab's HAProxy again, with fixed upstreams instead of the original destination. */
async function explicitProxies(mesh: MeshTopology, w: MeshWorkloads, cleanup: Cleanup): Promise<PodProcess[]> {
  const started: PodProcess[] = [];
  const upstream = { outbound: `${MESH_ADDRESSES.b.v4}:${PORTS.inbound}`, inbound: APP };
  for (const pod of POD_NAMES) {
    await w.haproxies[pod].stop();
    const cfg = { pod, outboundPort: PORTS.outbound, inboundPort: PORTS.inbound, upstream };
    const path = join(mesh.workDir, `haproxy-${pod}-explicit.cfg`);
    writeFileSync(path, renderHaproxyConfig(cfg), { mode: 0o644 });
    const p = await startHaproxy(cfg, path, w.procOpts(pod, MESH_PROXY));
    cleanup.push(`explicit HAProxy in pod ${pod}`, () => p.stop());
    const id = await processIdentity(p.pid);
    if (id.uid !== MESH_PROXY.uid || id.gid !== MESH_PROXY.gid) throw new Error(`explicit HAProxy in pod ${pod} runs as ${id.uid}/${id.gid}, not 1337/1337`);
    started.push(p);
  }
  return started;
}

/** One mode's mesh: namespaces, apps and proxies (listeners first), then its capture. */
export async function setupProxyMesh(mode: ProxyMode, cleanup: Cleanup, cpu: number | null): Promise<ProxyMesh> {
  const mesh = await createMeshTopology();
  cleanup.push(`mesh ${mesh.id}`, () => mesh.destroy());
  // Proxies close first and leave TIME_WAIT behind; let the pods reuse those ports
  // (inside the pods' own netns only).
  for (const pod of POD_NAMES) await inPod(mesh, pod, tool('sysctl'), '-qw', 'net.ipv4.tcp_tw_reuse=1');
  const w = await startMeshWorkloads(mesh, { a: PORTS, b: PORTS });
  cleanup.push(`mesh ${mesh.id} apps and proxies`, () => Promise.all(w.processes.map((p) => p.stop())));
  let procs = w.processes;
  let dp: BpfDataPlane | null = null;
  if (mode === 'floor') {
    procs = [...w.processes.filter((p) => !Object.values(w.haproxies).includes(p)), ...(await explicitProxies(mesh, w, cleanup))];
  } else if (mode === 'iptables') {
    for (const pod of POD_NAMES) await iptablesBackend.install(podTopology(mesh, pod), meshPolicy(pod), {});
  } else {
    dp = installDataPlane(cleanup, mesh.cgroupDir, POD_NAMES.map((pod) => [mesh.pods[pod].netns.path, meshPolicy(pod)])).dp;
    dp.setAcceleration(mode === 'ebpf+accel');
  }
  if (cpu !== null) for (const p of procs) execFileSync(tool('taskset'), ['-a', '-p', '-c', String(cpu), String(p.pid)], { stdio: 'ignore' });
  return { mode, mesh, dp, dst: mode === 'floor' ? `127.0.0.1:${PORTS.outbound}` : APP };
}

export interface ProxyRoundOptions {
  warmupMs: number;
  durationMs: number;
  close: CloseMode;
  cpu: number | null;
}

/** One round of requests from pod a's app to pod b's, through both proxies. */
export function proxyRound(m: ProxyMesh, o: ProxyRoundOptions): Promise<LoadResult> {
  // The mesh's own cgroup: the eBPF programs see the client there, and its cpu.stat is the mesh's CPU.
  const cgroup: TestCgroup = { path: m.mesh.cgroupDir, destroy: async () => {} };
  return runLoad(cgroup, {
    netnsPath: m.mesh.pods.a.netns.path,
    dst: m.dst,
    uid: 1000,
    send: request(APP),
    expectIn: PROXY_EXPECT,
    concurrency: 1,
    warmupMs: o.warmupMs,
    durationMs: o.durationMs,
    close: o.close,
    cpu: o.cpu,
    cgroupCpu: m.mesh.cgroupDir,
  });
}

export interface ProxyPhaseOptions extends ProxyRoundOptions {
  rounds: number;
  cleanup: Cleanup;
  ui: Progress;
  interrupted(): boolean;
}

/** Sets up every mode, warms each (node's JIT, HAProxy's pools), then the interleaved rounds. */
export async function proxyPhase(o: ProxyPhaseOptions): Promise<ProxyResults> {
  const why = proxyRequirementsMissing();
  if (why) throw new Error(why);
  await reapStaleMeshLeftovers();
  const meshes: ProxyMesh[] = [];
  const out: ProxyResults = { rounds: {}, accel: null, failed: {} };
  for (const mode of PROXY_MODES) {
    if (o.interrupted()) break;
    o.ui.log(`setting up the HAProxy mesh for ${mode}`);
    const m = await setupProxyMesh(mode, o.cleanup, o.cpu);
    const warm = await proxyRound(m, { ...o, warmupMs: 0, durationMs: 500 });
    // A mode that cannot carry the requests is left out (and fails the run), the others go on.
    if (warm.connections === 0 || warm.mismatches > 0) {
      out.failed[mode] = `the warm-up got ${warm.connections} answers, ${warm.mismatches} wrong (first reply "${warm.firstReply}", first error "${warm.firstError}")`;
      o.ui.log(`proxy ${mode}: ${out.failed[mode]}; left out`);
      continue;
    }
    meshes.push(m);
  }
  for (let round = 0; round < o.rounds && !o.interrupted(); round++) {
    for (const m of meshes.map((_, i) => meshes[(i + round) % meshes.length]!)) {
      o.ui.progress(`proxy round ${round + 1}/${o.rounds} ${m.mode}`);
      const before = m.mode === 'ebpf+accel' ? m.dp?.readCounters() : undefined;
      const r = await proxyRound(m, o);
      if (before && m.dp) out.accel = addAccel(out.accel ?? undefined, accelDelta(before, m.dp.readCounters()));
      (out.rounds[m.mode] ??= []).push(r);
      const problems = r.errors + r.mismatches > 0 ? `  errors ${r.errors}, mismatches ${r.mismatches} (first reply "${r.firstReply}", first error "${r.firstError}")` : '';
      o.ui.log(`round ${round + 1}/${o.rounds} proxy    ${m.mode.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} req/s  rt p50 ${r.cycleUs.p50.toFixed(0)} p99 ${r.cycleUs.p99.toFixed(0)} µs  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/req${problems}`);
    }
  }
  return out;
}
