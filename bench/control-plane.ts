// Control-plane figures of `sluice run --source kubernetes` against the API double:
//  - cold start with N pods on the node: time from start to every pod's policy in the
//    kernel map, and the daemon's RSS then;
//  - a Sidecar change through the API to the kernel, p50 and p99 over repeated changes;
//  - an API outage of S seconds under traffic: decisions that changed (must be 0).
// Run as root: `npm run bench:control-plane -- [--pods 200] [--changes 20] [--outage-seconds 60]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BpfDataPlane } from '../src/bpf/dataplane.js';
import type { PodState } from '../src/daemon/reconcile.js';
import { connect } from '../test/kernel/bpf-fixture.js';
import { createWorld, killAllDaemons, REMOTE, waitFor, type Daemon, type World } from '../test/kernel/harness/daemon.js';
import { bareNetns, createKubeWorld, type KubeWorld } from '../test/kernel/harness/kube-world.js';
import type { ProbeResult } from '../test/kernel/harness/probe.js';

// Imported (`npm run bench -- --control-plane`), it reads no argv: controlPlaneFigures() below.
const isMain = process.argv[1] === fileURLToPath(import.meta.url);
const { values } = parseArgs({ args: isMain ? process.argv.slice(2) : [], options: { pods: { type: 'string', default: '200' }, changes: { type: 'string', default: '20' }, 'outage-seconds': { type: 'string', default: '60' }, json: { type: 'boolean' } } });
let PODS = Number(values.pods);
let CHANGES = Number(values.changes);
const OUTAGE_S = Number(values['outage-seconds']);
const EXCLUDE = 'traffic.sidecar.istio.io/excludeOutboundPorts';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The private, anonymous part of RSS (heap, V8, malloc); the rest is file pages (the node binary) shared with every Node process. */
function anonMiB(pid: number): number {
  const m = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

function sidecar(i: number) {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'sc', namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z', annotations: { [EXCLUDE]: String(1000 + i) } }, spec: { workloadSelector: { labels: { app: 'pod0' } } } };
}

async function withWorld<T>(pods: number, body: (w: World, k: KubeWorld) => Promise<T>): Promise<T> {
  const w = await createWorld(0);
  let k: KubeWorld | null = null;
  try {
    k = await createKubeWorld(w, pods);
    return await body(w, k);
  } finally {
    await killAllDaemons();
    await k?.destroy();
    await w.destroy();
  }
}

/** N bare pods: start the daemon, wait until every cookie is in the map. */
async function coldStartAndChanges() {
  return withWorld(PODS, async (w, k) => {
    const ns = await bareNetns(PODS);
    try {
      for (let i = 0; i < PODS; i++) {
        k.sandbox(i, ns.paths[i]!);
        k.api.upsert('pods', k.podObject(i, ns.paths[i]!) as never);
      }
      // The built CLI, as the DaemonSet runs it (tsx would add its compiler to time and RSS).
      const t0 = Date.now();
      const d = await k.daemon([], { built: true });
      const healthyMs = Date.now() - t0;
      // Opened once (pins exist once /healthz answers) and polled gently: this process
      // also serves the API double, which a busy poll would starve.
      const dp = BpfDataPlane.open({ bpffsDir: w.bpffs });
      try {
        await waitFor(`${PODS} policies in the kernel`, async () => (dp.listPolicies().length === PODS ? true : undefined), 600_000, 20);
      } catch (e) {
        if (process.env.SLUICE_BENCH_LOG) writeFileSync(process.env.SLUICE_BENCH_LOG, d.output());
        throw new Error(`${(e as Error).message} (${dp.listPolicies().length} there)`);
      } finally {
        dp.close();
      }
      const coldStartMs = Date.now() - t0;
      const rss = rssMiB(d.child.pid!);
      const anon = anonMiB(d.child.pid!);
      if (process.env.SLUICE_BENCH_LOG) writeFileSync(process.env.SLUICE_BENCH_LOG, d.output()); // the daemon's JSON log, for timings
      const latencies: number[] = [];
      for (let i = 0; i < CHANGES; i++) {
        const start = Date.now();
        k.api.upsert('sidecars', sidecar(i) as never);
        await waitFor('the change', async () => {
          const p = (await d.json<PodState[]>('/v1/pods')).find((x) => x.name === 'pod0');
          return p?.policy?.excludeOutboundPorts.includes(1000 + i) ? true : undefined;
        }, 5000, 2);
        latencies.push(Date.now() - start);
      }
      await d.stop();
      return { pods: PODS, coldStartMs, healthyMs, rssMiB: Math.round(rss * 10) / 10, anonMiB: Math.round(anon * 10) / 10, sidecarChangeMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), n: latencies.length } };
    } finally {
      await ns.destroy();
    }
  });
}

/** Two real pods with traffic; the API stopped for OUTAGE_S seconds, then answering 500. */
async function outage() {
  const w = await createWorld(2);
  let k: KubeWorld | null = null;
  try {
    k = await createKubeWorld(w, 2);
    for (let i = 0; i < 2; i++) {
      k.sandbox(i, w.pods[i]!.pod.path);
      k.api.upsert('pods', k.podObject(i, w.pods[i]!.pod.path) as never);
    }
    k.api.upsert('sidecars', { ...sidecar(0), metadata: { ...sidecar(0).metadata, annotations: { [EXCLUDE]: '80' } } } as never);
    const d: Daemon = await k.daemon([], { built: true });
    await waitFor('2 pods applied', async () => ((await d.json<PodState[]>('/v1/pods')).filter((p) => p.status === 'applied').length === 2 ? true : undefined), 10_000);
    const where = (r: ProbeResult) => (r.ok ? `${r.server.server}:${r.server.port} ${r.server.origDst}` : `failed ${r.error}`);
    const decisions = async () => Promise.all(w.pods.map(async (p) => where(await connect(w.cg, { netnsPath: p.pod.path, dst: REMOTE, uid: 1000 }))));
    const before = await decisions();
    const mapBefore = BpfDataPlane.open({ bpffsDir: w.bpffs });
    const cookiesBefore = mapBefore.listPolicies().map(String).sort();
    mapBefore.close();
    let checked = 0;
    let changed = 0;
    await k.api.stop();
    const end = Date.now() + OUTAGE_S * 1000;
    const half = Date.now() + (OUTAGE_S * 1000) / 2;
    let failing = false;
    while (Date.now() < end) {
      if (!failing && Date.now() > half) {
        await k.api.start();
        k.api.failWith = 500; // second half: up, but answering 500
        failing = true;
      }
      const now = await decisions();
      checked += now.length;
      changed += now.filter((x, i) => x !== before[i]).length;
      await sleep(200);
    }
    const mapAfter = BpfDataPlane.open({ bpffsDir: w.bpffs });
    const cookiesAfter = mapAfter.listPolicies().map(String).sort();
    mapAfter.close();
    const m = await d.get('/metrics');
    const stale = Number(/^sluice_source_last_sync_seconds (\S+)$/m.exec(m.body)?.[1]);
    return { outageSeconds: OUTAGE_S, connectionsChecked: checked, decisionsChanged: changed, policiesChanged: JSON.stringify(cookiesBefore) !== JSON.stringify(cookiesAfter), staleSecondsAtEnd: stale, before };
  } finally {
    await killAllDaemons();
    await k?.destroy();
    await w.destroy();
  }
}

if (isMain) {
  const started = Date.now();
  const cold = await coldStartAndChanges();
  console.log(`cold start: ${cold.pods} pods captured in ${cold.coldStartMs} ms from exec (programs loaded, /healthz up at ${cold.healthyMs} ms); daemon RSS ${cold.rssMiB} MiB (${cold.anonMiB} MiB anonymous, the rest file-backed)`);
  console.log(`Sidecar change → kernel: p50 ${cold.sidecarChangeMs.p50} ms, p99 ${cold.sidecarChangeMs.p99} ms (n=${cold.sidecarChangeMs.n}, ${cold.pods} pods on the node)`);
  const out = await outage();
  console.log(`API outage ${out.outageSeconds} s (half stopped, half 500s): ${out.decisionsChanged} of ${out.connectionsChecked} decisions changed; kernel policies changed: ${out.policiesChanged}; staleness reported: ${out.staleSecondsAtEnd} s`);
  if (values.json) console.log(JSON.stringify({ kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), cold, outage: out, wallSeconds: Math.round((Date.now() - started) / 1000) }));
  process.exitCode = out.decisionsChanged === 0 && !out.policiesChanged ? 0 : 1;
}

/** For `npm run bench -- --control-plane`: cold start, RSS and change latencies with `pods` pods (no outage). */
export async function controlPlaneFigures(o: { pods: number; changes: number }): Promise<Awaited<ReturnType<typeof coldStartAndChanges>>> {
  PODS = o.pods;
  CHANGES = o.changes;
  return coldStartAndChanges();
}
