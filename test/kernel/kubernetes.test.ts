// `sluice run --source kubernetes` against the API double, on real pods: each pod is a
// netns with its sidecar's listeners and a "sandbox" process in a cgroup shaped the way
// the kubelet lays them out (cgroupfs `kubepods/burstable/pod<uid>/<ctr>` and systemd
// `kubepods-burstable-pod<uid>.slice`), under the test's private cgroup. The daemon
// finds each netns from those cgroups alone; the pods' netns annotations lie on purpose.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodState } from '../../src/daemon/reconcile.js';
import { bpfRequirementsMissing, connect } from './bpf-fixture.js';
import { createWorld, killAllDaemons, metric, reapStaleWorld, REMOTE, sluice, waitFor, type Daemon, type World } from './harness/daemon.js';
import { createKubeWorld, KUBE_NODE, type KubeWorld } from './harness/kube-world.js';
import type { ProbeResult } from './harness/probe.js';
import { createTopology, type Topology } from './harness/topology.js';

const missing = bpfRequirementsMissing();
const EXCLUDE = 'traffic.sidecar.istio.io/excludeOutboundPorts';

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(async () => {
  await killAllDaemons();
});

type Ctx = KubeWorld & { w: World };

async function inKubeWorld(t: ExecutionContext, pods: number, body: (k: Ctx) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  const w = await createWorld(pods);
  let k: KubeWorld | null = null;
  try {
    k = await createKubeWorld(w, pods);
    for (let i = 0; i < pods; i++) k.sandbox(i, w.pods[i]!.pod.path);
    const world = k;
    // Each pod's annotation names the NEXT pod's netns: the kubernetes source ignores it.
    await body({ ...world, w, podObject: (i, _path, extra) => world.podObject(i, w.pods[(i + 1) % pods]!.pod.path, extra) });
  } finally {
    await killAllDaemons();
    await k?.destroy();
    await w.destroy();
  }
}

const appConnect = (w: World, netnsPath: string, dst = REMOTE, uid = 1000) => connect(w.cg, { netnsPath, dst, uid });
const where = (r: ProbeResult) => (r.ok ? `${r.server.server}:${r.server.port} origDst=${r.server.origDst}` : `failed: ${r.error}`);
const captured = (r: ProbeResult, pod: string) => r.ok && r.server.server === pod && r.server.port === 15001 && r.server.origDst === REMOTE;
const passed = (r: ProbeResult, peer: string) => r.ok && r.server.server === peer && r.server.port === 80 && r.server.origDst === null;

async function applied(d: Daemon, n: number): Promise<PodState[]> {
  return waitFor(`${n} pods applied`, async () => {
    const pods = await d.json<PodState[]>('/v1/pods');
    return pods.filter((p) => p.status === 'applied').length === n ? pods : undefined;
  }, 10_000);
}

function sidecarExcluding(port: string) {
  return { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'sc', namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z', annotations: { [EXCLUDE]: port } }, spec: { workloadSelector: { labels: { app: 'pod0' } } } };
}

test.serial('pods are found by their kubepods cgroup alone and captured; the netns annotation is ignored', async (t) => {
  await inKubeWorld(t, 2, async ({ w, api, podObject, daemon, kubeconfig }) => {
    api.upsert('pods', podObject(0, '') as never);
    api.upsert('pods', podObject(1, '') as never);
    const d = await daemon();
    const pods = await applied(d, 2);
    const { BpfDataPlane } = await import('../../src/bpf/dataplane.js');
    const dp = BpfDataPlane.open({ bpffsDir: w.bpffs });
    try {
      // Each pod holds its own netns (found by cgroup), not the one its annotation names.
      for (let i = 0; i < 2; i++) t.is(pods.find((p) => p.name === `pod${i}`)!.netnsCookie, String(dp.cookieOf(w.pods[i]!.pod.path)));
    } finally {
      dp.close();
    }
    for (let i = 0; i < 2; i++) {
      const app = await appConnect(w, w.pods[i]!.pod.path);
      t.true(captured(app, `pod${i}`), `pod${i} app: ${where(app)}`);
      const proxy = await appConnect(w, w.pods[i]!.pod.path, REMOTE, 1337);
      t.true(passed(proxy, `peer${i}`), `pod${i} proxy: ${where(proxy)}`);
    }
    t.true((await d.get('/readyz')).body.includes('source kubernetes: in sync'));
    // The same cluster through the CLI: status (source against kernel) and explain.
    const status = await sluice(['status', '--bpffs', w.bpffs, '--listen', `127.0.0.1:${d.port}`, '--source', 'kubernetes', '--kubeconfig', kubeconfig, '--node', KUBE_NODE, '--json']);
    t.is(status.code, 0, status.stderr);
    const sourcePods = (JSON.parse(status.stdout) as { sourcePods: { name: string; inKernel: boolean; netnsCookie: string }[] }).sourcePods;
    t.deepEqual(sourcePods.map((p) => [p.name, p.inKernel, p.netnsCookie]).sort(), pods.map((p) => [p.name, true, p.netnsCookie]).sort());
    const explain = await sluice(['explain', '--source', 'kubernetes', '--kubeconfig', kubeconfig, 'default/pod0', REMOTE, '--json']);
    t.is(explain.code, 0, explain.stderr);
    t.like(JSON.parse(explain.stdout), { outcome: 'outbound-proxy', port: 15001, originalDestination: REMOTE });
    t.is(metric(await d.metrics(), 'sluice_source_synced'), 1);
  });
});

test.serial('a Sidecar change through the API reaches the kernel within 1 s', async (t) => {
  await inKubeWorld(t, 1, async ({ w, api, podObject, daemon }) => {
    api.upsert('pods', podObject(0, '') as never);
    const d = await daemon();
    await applied(d, 1);
    t.true(captured(await appConnect(w, w.pods[0]!.pod.path), 'pod0'));
    const start = Date.now();
    api.upsert('sidecars', sidecarExcluding('80') as never);
    const r = await waitFor('the exclusion in the kernel', async () => {
      const c = await appConnect(w, w.pods[0]!.pod.path);
      return passed(c, 'peer0') ? c : undefined;
    }, 5000, 10);
    const ms = Date.now() - start;
    console.log(`kubernetes: Sidecar change to kernel in ${ms} ms`);
    t.true(passed(r, 'peer0'));
    t.true(ms < 1000, `took ${ms} ms`);
  });
});

test.serial('an API outage (stopped, then 500s) changes no decision; a pod deleted meanwhile goes at the next list', async (t) => {
  await inKubeWorld(t, 2, async ({ w, api, podObject, daemon }) => {
    api.upsert('pods', podObject(0, '') as never);
    api.upsert('pods', podObject(1, '') as never);
    api.upsert('sidecars', sidecarExcluding('80') as never);
    const d = await daemon();
    await applied(d, 2);
    const decisions = async () => [where(await appConnect(w, w.pods[0]!.pod.path)), where(await appConnect(w, w.pods[1]!.pod.path))];
    const before = await decisions();
    t.deepEqual(before, ['peer0:80 origDst=null', `pod1:15001 origDst=${REMOTE}`]);
    await api.stop();
    api.remove('pods', 'default', 'pod1'); // deleted while the daemon cannot hear it
    api.compact();
    await new Promise((r) => setTimeout(r, 1500));
    t.deepEqual(await decisions(), before, 'API stopped');
    t.true(metric(await d.metrics(), 'sluice_source_last_sync_seconds') >= 1);
    t.regex((await d.get('/readyz')).body, /last answered \d+ s ago/);
    await api.start();
    api.failWith = 500;
    await new Promise((r) => setTimeout(r, 1000));
    t.deepEqual(await decisions(), before, 'API answering 500');
    t.true(metric(await d.metrics(), 'sluice_source_api_errors_total', { resource: 'pods' }) > 0);
    api.failWith = null;
    await waitFor('pod1 removed after the re-list', async () => ((await d.json<PodState[]>('/v1/pods')).some((p) => p.name === 'pod1') ? undefined : true), 40_000);
    t.is(where(await appConnect(w, w.pods[1]!.pod.path)), 'peer1:80 origDst=null');
    t.is(where(await appConnect(w, w.pods[0]!.pod.path)), before[0]!);
  });
});

test.serial('a pod whose sandbox is replaced is captured in its new netns, and the old entry is gone', async (t) => {
  let replacement: Topology | null = null;
  await inKubeWorld(t, 1, async ({ w, api, podObject, daemon, sandbox, uids }) => {
    api.upsert('pods', podObject(0, '') as never);
    const d = await daemon();
    const [first] = await applied(d, 1);
    // The old sandbox dies with its netns; the kubelet starts a new one for the same UID.
    const podDir = join(w.cg.path, 'kubepods', 'burstable', `pod${uids[0]}`);
    writeFileSync(join(podDir, 'cgroup.kill'), '1');
    await w.pods[0]!.destroy();
    replacement = await createTopology();
    const { startServer } = await import('./bpf-fixture.js');
    w.servers.push(await startServer(w.cg, 'pod0new', replacement.pod.path, [15001, 15006]));
    w.servers.push(await startServer(w.cg, 'peer0new', replacement.peer.path, [80]));
    await waitFor('the old sandbox gone', async () => (readdirSync(podDir).length > 0 ? true : undefined));
    sandbox(0, replacement.pod.path);
    const moved = await waitFor('the pod in its new netns', async () => {
      const [p] = await d.json<PodState[]>('/v1/pods');
      return p?.status === 'applied' && p.netnsCookie !== first!.netnsCookie ? p : undefined;
    }, 10_000);
    t.truthy(moved.netnsCookie);
    const r = await appConnect(w, replacement.pod.path);
    t.true(captured(r, 'pod0new'), where(r));
    const { BpfDataPlane } = await import('../../src/bpf/dataplane.js');
    const dp = BpfDataPlane.open({ bpffsDir: w.bpffs });
    try {
      t.deepEqual(dp.listPolicies().map(String), [moved.netnsCookie!]);
    } finally {
      dp.close();
    }
  }).finally(() => replacement?.destroy());
});

test.serial("a pod whose netns holds istio-init's ISTIO_* chains is left to iptables and reported", async (t) => {
  await inKubeWorld(t, 2, async ({ w, api, podObject, daemon }) => {
    const { exec } = await import('./harness/exec.js');
    // Inside pod1's own netns only: istio-init's chains, with its REDIRECT of outbound.
    await exec('nsenter', [`--net=${w.pods[1]!.pod.path}`, 'iptables', '-t', 'nat', '-N', 'ISTIO_OUTPUT']);
    api.upsert('pods', podObject(0, '') as never);
    api.upsert('pods', podObject(1, '') as never);
    const d = await daemon();
    const pod1 = await waitFor('pod1 left to iptables', async () => (await d.json<PodState[]>('/v1/pods')).find((p) => p.name === 'pod1' && p.status === 'rejected'), 10_000);
    t.is(pod1.istioIptables, 'present');
    t.regex(pod1.error!, /ISTIO_\* iptables chains/);
    const pod0 = (await d.json<PodState[]>('/v1/pods')).find((p) => p.name === 'pod0')!;
    t.is(pod0.status, 'applied');
    t.is(pod0.istioIptables, 'absent');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_pods_double_capture'), 1);
    t.true(metric(m, 'sluice_reconcile_errors_total', { reason: 'double_capture' }) >= 1);
    const { podChecks } = await import('../../src/cli/doctor-pods.js');
    const doctor = await podChecks(`127.0.0.1:${d.port}`);
    t.like(doctor.find((c) => c.name === 'double capture'), { status: 'warn' });
    t.regex(doctor.find((c) => c.name === 'double capture')!.detail, /default\/pod1/);
    // sluice holds no entry for pod1: its chain (empty here) is all that acts on it.
    t.is(where(await appConnect(w, w.pods[1]!.pod.path)), 'peer1:80 origDst=null');
    t.true(captured(await appConnect(w, w.pods[0]!.pod.path), 'pod0'));
  });
});
