import test from 'ava';
import { buildPolicies, DEFAULT_CONFIG, type CapturePolicy, type Endpoint, type Pod } from '../../src/policy/index.js';
import { MapFullError, NetnsError, type DataPlane, type NetnsResolver } from '../../src/dataplane/index.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Reconciler, type Logger } from '../../src/daemon/reconcile.js';
import { annotationNetns } from '../../src/sources/file-feed.js';
import type { PodRecord } from '../../src/sources/record.js';

/** Pods as the file source hands them over: policy plus the annotated netns. */
const records = (pods: Pod[]): PodRecord[] => buildPolicies(pods, [], DEFAULT_CONFIG).map((result, i) => ({ result, netns: annotationNetns(pods[i]!) }));

class FakeDataPlane implements DataPlane {
  entries = new Map<bigint, CapturePolicy>();
  writes = 0;
  capacity = 100;
  applyPolicy(cookie: bigint, policy: CapturePolicy): void {
    if (!this.entries.has(cookie) && this.entries.size >= this.capacity) throw new MapFullError('pod_policy', this.capacity);
    this.writes++;
    this.entries.set(cookie, policy);
  }
  removePolicy(cookie: bigint): void {
    this.entries.delete(cookie);
  }
  listPolicies(): bigint[] {
    return [...this.entries.keys()];
  }
  lookupOriginalDestination(_s: Endpoint, _d: Endpoint): Endpoint | null {
    return null;
  }
  readCounters() {
    return {};
  }
  mapUsage() {
    return [{ map: 'pod_policy', entries: this.entries.size, capacity: this.capacity }];
  }
}

const quiet: Logger = { info() {}, warn() {}, error() {} };

function resolver(known: Record<string, bigint>): NetnsResolver {
  return {
    cookieOf(path) {
      const c = known[path];
      if (c === undefined) throw new NetnsError(path, 'ENOENT');
      return c;
    },
  };
}

function pod(name: string, ip: string, netns: string | null, extra: Record<string, string> = {}): Pod {
  return {
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      annotations: { 'sidecar.istio.io/status': '{}', ...(netns ? { 'sluice.dev/netns': netns } : {}), ...extra },
    },
    status: { podIP: ip },
  };
}

function setup(known: Record<string, bigint>) {
  const dp = new FakeDataPlane();
  const metrics = new Metrics(() => dp);
  const r = new Reconciler(dp, resolver(known), metrics, quiet);
  const run = (pods: Pod[]) => r.reconcile(records(pods));
  return { dp, metrics, r, run };
}

async function metric(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

test('applies each captured pod under its netns cookie and writes nothing when nothing changed', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  const pods = [pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')];
  const states = run(pods);
  t.deepEqual(states.map((s) => s.status), ['applied', 'applied']);
  t.deepEqual([...dp.entries.keys()].sort(), [1n, 2n]);
  t.is(dp.entries.get(1n)!.podIPs[0], '10.1.0.2');
  const writes = dp.writes;
  run(pods);
  t.is(dp.writes, writes, 'a second pass with the same input writes nothing');
});

test('a changed annotation rewrites only that pod', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  run([pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')]);
  const before = dp.writes;
  run([pod('a', '10.1.0.2', '/ns/a', { 'traffic.sidecar.istio.io/excludeOutboundPorts': '25' }), pod('b', '10.1.0.3', '/ns/b')]);
  t.is(dp.writes, before + 1);
  t.deepEqual(dp.entries.get(1n)!.excludeOutboundPorts, [25]);
});

test('a removed pod loses its policy', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  run([pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')]);
  run([pod('b', '10.1.0.3', '/ns/b')]);
  t.deepEqual(dp.listPolicies(), [2n]);
});

test('a bad annotation rejects that pod alone, which keeps its last good policy', async (t) => {
  const { dp, metrics, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  run([pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')]);
  const states = run([
    pod('a', '10.1.0.2', '/ns/a', { 'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.0.0.0/99' }),
    pod('b', '10.1.0.3', '/ns/b', { 'traffic.sidecar.istio.io/excludeOutboundPorts': '25' }),
  ]);
  t.is(states[0]!.status, 'rejected');
  t.regex(states[0]!.error!, /10\.0\.0\.0\/99/);
  t.deepEqual(dp.entries.get(1n)!.excludeOutboundIPRanges, [], 'last good policy stays in the map');
  t.deepEqual(states[0]!.policy!.excludeOutboundIPRanges, []);
  t.is(states[1]!.status, 'applied');
  t.deepEqual(dp.entries.get(2n)!.excludeOutboundPorts, [25]);
  t.is(await metric(metrics, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), 1);
});

test('a pod whose netns vanished is rejected and its entry removed; others are unaffected', async (t) => {
  const known: Record<string, bigint> = { '/ns/a': 1n, '/ns/b': 2n };
  const { dp, metrics, run } = setup(known);
  const pods = [pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')];
  run(pods);
  delete known['/ns/a'];
  const states = run(pods);
  t.is(states[0]!.status, 'rejected');
  t.regex(states[0]!.error!, /\/ns\/a/);
  t.deepEqual(dp.listPolicies(), [2n]);
  t.is(await metric(metrics, 'sluice_reconcile_errors_total', { reason: 'netns_unavailable' }), 1);
});

test('a pod without a netns annotation is rejected with the fix', (t) => {
  const { run } = setup({});
  const [s] = run([pod('a', '10.1.0.2', null)]);
  t.is(s!.status, 'rejected');
  t.regex(s!.error!, /sluice\.dev\/netns/);
});

test('two pods claiming one netns: the second is rejected', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n });
  const states = run([pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/a')]);
  t.deepEqual(states.map((s) => s.status), ['applied', 'rejected']);
  t.is(dp.entries.get(1n)!.pod.name, 'a');
});

test('a full map is counted and reported, and other pods still apply', async (t) => {
  const { dp, metrics, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  dp.capacity = 1;
  const states = run([pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')]);
  t.deepEqual(states.map((s) => s.status), ['applied', 'rejected']);
  t.regex(states[1]!.error!, /full/);
  t.is(await metric(metrics, 'sluice_reconcile_errors_total', { reason: 'map_full' }), 1);
});

test('after a restart, adopted entries no pod owns are removed and owned ones kept', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n });
  dp.entries.set(1n, {} as CapturePolicy);
  dp.entries.set(99n, {} as CapturePolicy);
  run([pod('a', '10.1.0.2', '/ns/a')]);
  t.deepEqual(dp.listPolicies(), [1n]);
  t.is(dp.entries.get(1n)!.pod.name, 'a');
});

test('uncaptured pods are reported but never written', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n });
  const [s] = run([pod('a', '10.1.0.2', '/ns/a', { 'sidecar.istio.io/interceptionMode': 'NONE' })]);
  t.is(s!.status, 'uncaptured');
  t.is(dp.entries.size, 0);
});

test('without prune (a broken source document), pods missing from the snapshot keep their policy', (t) => {
  const { dp, r } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  const a = pod('a', '10.1.0.2', '/ns/a');
  const b = pod('b', '10.1.0.3', '/ns/b');
  r.reconcile(records([a, b]));
  dp.entries.set(99n, {} as CapturePolicy); // adopted, owner unknown
  r.reconcile(records([b]), { prune: false });
  t.deepEqual(dp.listPolicies().sort(), [1n, 2n, 99n]);
  r.reconcile(records([b]));
  t.deepEqual(dp.listPolicies(), [2n]);
});

test('a pod that stays rejected is counted once, and again when its error changes', async (t) => {
  const { metrics, run } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  const bad = (v: string) => pod('a', '10.1.0.2', '/ns/a', { 'traffic.sidecar.istio.io/excludeOutboundPorts': v });
  run([bad('x'), pod('b', '10.1.0.3', '/ns/b')]);
  run([bad('x'), pod('b', '10.1.0.3', '/ns/b', { 'traffic.sidecar.istio.io/excludeOutboundPorts': '25' })]);
  t.is(await metric(metrics, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), 1);
  run([bad('y'), pod('b', '10.1.0.3', '/ns/b')]);
  t.is(await metric(metrics, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), 2);
});

test('without prune, pods missing from the snapshot are still reported with the policy in force', (t) => {
  const { r } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  const a = pod('a', '10.1.0.2', '/ns/a');
  const b = pod('b', '10.1.0.3', '/ns/b');
  r.reconcile(records([a, b]));
  const states = r.reconcile(records([b]), { prune: false });
  t.deepEqual(states.map((s) => [s.name, s.status]), [['b', 'applied'], ['a', 'applied']]);
  t.is(states[1]!.policy!.podIPs[0], '10.1.0.2');
  t.deepEqual(r.reconcile([], { prune: false }).map((s) => s.name), ['b', 'a']);
});

test('a pass over its time budget queues the remaining writes, keeps their kernel entries, and is not ready', (t) => {
  const { dp, r } = setup({ '/ns/a': 1n, '/ns/b': 2n });
  dp.entries.set(2n, {} as CapturePolicy); // adopted after a restart
  const pods = [pod('a', '10.1.0.2', '/ns/a'), pod('b', '10.1.0.3', '/ns/b')];
  const first = r.reconcile(records(pods), { budgetMs: -1 });
  t.deepEqual(first.map((s) => s.status), ['pending', 'pending']);
  t.regex(first[0]!.error!, /^queued/);
  t.is(dp.writes, 0);
  t.deepEqual(dp.listPolicies(), [2n], 'the adopted entry of a queued pod is not pruned');
  t.false(r.ready);
  const second = r.reconcile(records(pods));
  t.deepEqual(second.map((s) => s.status), ['applied', 'applied']);
  t.deepEqual(dp.listPolicies().sort(), [1n, 2n]);
  t.true(r.ready);
});

test('without prune, a pod that is in the snapshot but lost its netns still loses its entry', (t) => {
  const known: Record<string, bigint> = { '/ns/a': 1n };
  const { dp, r } = setup(known);
  r.reconcile(records([pod('a', '10.1.0.2', '/ns/a')]));
  t.deepEqual(dp.listPolicies(), [1n]);
  delete known['/ns/a']; // the netns vanished; the source is unconfirmed (prune off)
  const [s] = r.reconcile(records([pod('a', '10.1.0.2', '/ns/a')]), { prune: false });
  t.is(s!.status, 'rejected');
  t.deepEqual(dp.listPolicies(), [], 'only pods missing from the snapshot keep their entry without prune');
});
