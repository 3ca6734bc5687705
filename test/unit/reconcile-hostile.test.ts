// Hostile netns annotations against the reconciler (issue 9, items 1 and 9): a pod that
// names another pod's netns never takes it over, whatever the file order, and a pod whose
// path names another live netns (a reused /proc/PID) is not silently moved.
import test from 'ava';
import { buildPolicies, DEFAULT_CONFIG, type CapturePolicy, type Pod } from '../../src/policy/index.js';
import { NetnsError, NetnsRefusedError, type DataPlane, type NetnsResolver } from '../../src/dataplane/index.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Reconciler, type Logger } from '../../src/daemon/reconcile.js';
import { annotationNetns } from '../../src/sources/file-feed.js';

class FakeDataPlane implements DataPlane {
  entries = new Map<bigint, CapturePolicy>();
  alive = new Map<bigint, boolean>();
  applyPolicy(cookie: bigint, policy: CapturePolicy): void {
    this.entries.set(cookie, policy);
  }
  removePolicy(cookie: bigint): void {
    this.entries.delete(cookie);
  }
  listPolicies(): bigint[] {
    return [...this.entries.keys()];
  }
  lookupOriginalDestination() {
    return null;
  }
  readCounters() {
    return {};
  }
  mapUsage() {
    return [];
  }
  netnsAlive(cookie: bigint): boolean | null {
    return this.alive.get(cookie) ?? null;
  }
  pending = new Set<bigint>();
  markPending(cookie: bigint): void {
    this.pending.add(cookie);
  }
  clearPending(cookie: bigint): void {
    this.pending.delete(cookie);
  }
  pendingNetns(): bigint[] {
    return [...this.pending];
  }
}

const quiet: Logger = { info() {}, warn() {}, error() {} };

function pod(name: string, ip: string, netns: string): Pod {
  return {
    kind: 'Pod',
    metadata: { name, namespace: 'default', annotations: { 'sidecar.istio.io/status': '{}', 'sluice.dev/netns': netns } },
    status: { podIP: ip },
  };
}

function setup(known: Record<string, bigint | 'refused'>, holdUnknown = false) {
  const dp = new FakeDataPlane();
  const metrics = new Metrics(() => dp);
  const resolver: NetnsResolver = {
    cookieOf(path) {
      const c = known[path];
      if (c === 'refused') throw new NetnsRefusedError(path, 'it is the host network namespace');
      if (c === undefined) throw new NetnsError(path, 'ENOENT');
      return c;
    },
  };
  const r = new Reconciler(dp, resolver, metrics, quiet, undefined, { holdUnknown });
  const run = (pods: Pod[]) => r.reconcile(buildPolicies(pods, [], DEFAULT_CONFIG).map((result, i) => ({ result, netns: annotationNetns(pods[i]!) })));
  const errors = async (reason: string) => (await metrics.registry.getSingleMetric('sluice_reconcile_errors_total')!.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { dp, known, run, errors };
}

test('a pod naming another pod’s netns never takes it over, even when it comes first in the file', async (t) => {
  const { dp, run, errors } = setup({ '/ns/victim': 7n });
  run([pod('victim', '10.1.0.2', '/ns/victim')]);
  t.is(dp.entries.get(7n)?.podIPs[0], '10.1.0.2');
  const states = run([pod('thief', '10.9.9.9', '/ns/victim'), pod('victim', '10.1.0.2', '/ns/victim')]);
  t.deepEqual(
    states.map((s) => [s.name, s.status]),
    [
      ['thief', 'rejected'],
      ['victim', 'applied'],
    ],
  );
  t.regex(states[0]!.error ?? '', /already belongs to pod default\/victim/);
  t.is(dp.entries.get(7n)?.podIPs[0], '10.1.0.2', 'the kernel still holds the victim’s policy');
  t.is(await errors('netns_conflict'), 1);
});

test('a netns nobody owned yet goes to the first pod that names it', (t) => {
  const { dp, run } = setup({ '/ns/a': 7n });
  const states = run([pod('first', '10.1.0.2', '/ns/a'), pod('second', '10.1.0.3', '/ns/a')]);
  t.deepEqual(states.map((s) => s.status), ['applied', 'rejected']);
  t.is(dp.entries.get(7n)?.podIPs[0], '10.1.0.2');
});

test('a path that now names another live netns is refused as a move, and the old entry stays', async (t) => {
  const { dp, known, run, errors } = setup({ '/proc/42/ns/net': 7n });
  run([pod('a', '10.1.0.2', '/proc/42/ns/net')]);
  known['/proc/42/ns/net'] = 8n; // PID 42 reused by a process in another netns
  dp.alive.set(7n, true);
  const [s] = run([pod('a', '10.1.0.2', '/proc/42/ns/net')]);
  t.is(s!.status, 'rejected');
  t.regex(s!.error ?? '', /names another namespace now/);
  t.is(s!.netnsCookie, '7', '/v1/pods shows the netns the kernel still captures');
  t.deepEqual(dp.listPolicies(), [7n], 'nothing is written for the other netns, and the old entry is kept');
  t.is(await errors('netns_moved'), 1);

  // The old netns is gone (the pod really restarted): now it moves.
  dp.alive.set(7n, false);
  const [moved] = run([pod('a', '10.1.0.2', '/proc/42/ns/net')]);
  t.is(moved!.status, 'applied');
  t.deepEqual(dp.listPolicies(), [8n]);
});

test('a refused netns (the host’s, a FIFO) rejects that pod alone; nothing of it is written', async (t) => {
  const { dp, run, errors } = setup({ '/proc/1/ns/net': 'refused', '/ns/b': 2n });
  const states = run([pod('a', '10.1.0.2', '/proc/1/ns/net'), pod('b', '10.1.0.3', '/ns/b')]);
  t.deepEqual(states.map((s) => s.status), ['rejected', 'applied']);
  t.regex(states[0]!.error ?? '', /refused: it is the host network namespace/);
  t.deepEqual(dp.listPolicies(), [2n]);
  t.is(await errors('netns_refused'), 1);
});

test('--hold-unknown: a captured pod without a policy in the kernel stays pending; applied, removed or gone, it is released', (t) => {
  const { dp, run } = setup({ '/ns/a': 1n, '/ns/b': 2n }, true);
  // Mark-then-apply: a pod is pending until its policy is written (here the fake applies
  // at once, and the real data plane clears the mark when it commits).
  dp.applyPolicy = function (cookie, policy) {
    this.entries.set(cookie, policy);
    this.pending.delete(cookie);
  };
  const bad = pod('b', '10.1.0.3', '/ns/b');
  bad.metadata.annotations!['traffic.sidecar.istio.io/excludeOutboundPorts'] = 'eighty';
  const states = run([pod('a', '10.1.0.2', '/ns/a'), bad]);
  t.deepEqual(states.map((s) => s.status), ['applied', 'rejected']);
  t.deepEqual(dp.pendingNetns(), [2n], 'the rejected pod with no last good policy is held, not let through');
  run([pod('a', '10.1.0.2', '/ns/a')]);
  t.deepEqual(dp.pendingNetns(), [], 'a pod that left the source is released');
});
