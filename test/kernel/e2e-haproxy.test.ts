// End to end with HAProxy as the sidecar proxy (uid/gid 1337) in two pods: real HTTP
// requests between the pods' apps (uid 1000), captured by each backend in BACKENDS. For
// every request the path it took (which proxy listeners, what each saw, what the app saw)
// must be the one decide() gives; with more than one backend, they must also agree with
// each other request by request.
//
// Fails (never skips) when haproxy, root, setpriv, cgroup2, iptables or the BPF build are missing.
import test from 'ava';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { iptablesBackend, noCaptureBackend, type CaptureBackend } from './harness/backend.js';
import { ebpfBackend } from './harness/bpf-backend.js';
import {
  cleanupAllMeshes,
  compareMeshRuns,
  describePath,
  expectedView,
  expectMeshPath,
  MESH_ADDRESSES,
  meshPolicy,
  meshRequirementsMissing,
  observedView,
  reapStaleMeshes,
  runMeshScenario,
  type MeshRun,
} from './harness/mesh.js';

/**
 * The backends under test: the same mesh, the same requests and the same expectations
 * (decide(), whose quirk mode these requests never reach), compared request by request.
 */
const BACKENDS: CaptureBackend[] = [iptablesBackend, ebpfBackend];

/** iptables reproduces Istio's quirks; sluice's own backends fix them (README). */
const decideOptions = (b: CaptureBackend) => ({ istioQuirks: b.name === 'iptables' });

const missing = meshRequirementsMissing({ iptables: BACKENDS.some((b) => b.name === 'iptables') }) ?? bpfRequirementsMissing();
const runs = new Map<string, MeshRun>();

test.before(async () => {
  if (!missing) await reapStaleMeshes();
});

test.after.always(async () => {
  await cleanupAllMeshes();
});

test.serial('mesh e2e requirements are met', (t) => {
  // Fails, never skips: a missing haproxy must be visible in CI.
  t.is(missing, null);
});

/** Every request's observed path must be the one decide() predicts. */
function checkRun(t: import('ava').ExecutionContext, run: MeshRun, backend: CaptureBackend): void {
  for (const r of run.requests) {
    const expectation = expectMeshPath(run.policies, r, decideOptions(backend), run.ifnames);
    const observed = run.observations[r.id]!;
    t.log(describePath(observed));
    t.deepEqual(observedView(observed), expectedView(r, expectation), `${r.id} (${r.description}); decide(): ${expectation.trace.join('; ')}`);
    t.is(observed.clientUid, r.who.uid, `${r.id}: the client ran as uid ${r.who.uid}`);
  }
}

test.serial('control: without capture every request goes straight to the app', async (t) => {
  if (missing) return t.fail(missing);
  // A policy that captures nothing, so decide() predicts what no capture at all does: this
  // shows the harness tells a direct connection from a proxied one.
  const none = { includeOutboundIPRanges: [] as string[], includeInboundPorts: [] as number[] };
  const run = await runMeshScenario(noCaptureBackend, meshPolicy('a', none), meshPolicy('b', none));
  checkRun(t, run, noCaptureBackend);
  for (const o of Object.values(run.observations)) t.deepEqual(o.hops, [], `${o.id}: no proxy hop without capture`);
});

for (const backend of BACKENDS) {
  test.serial(`${backend.name}: requests take the path decide() gives, through HAProxy as uid 1337`, async (t) => {
    if (missing) return t.fail(missing);
    const run = await runMeshScenario(backend, meshPolicy('a'), meshPolicy('b'));
    runs.set(backend.name, run);
    for (const pod of ['a', 'b'] as const) {
      t.deepEqual({ uid: run.proxies[pod].uid, gid: run.proxies[pod].gid }, { uid: 1337, gid: 1337 }, `HAProxy in pod ${pod} runs as 1337/1337`);
      t.deepEqual(run.apps[pod], { uid: 1000, gid: 1000 }, `the app in pod ${pod} runs as 1000/1000`);
    }
    checkRun(t, run, backend);

    // The headline facts, spelled out (checkRun already holds them via decide()).
    const o = run.observations;
    for (const v of ['v4', 'v6'] as const) {
      const passthrough = v === 'v4' ? '127.0.0.6' : '::6';
      const ab = o[`app-a-to-pod-b-${v}`]!;
      t.deepEqual(ab.hops.map((h) => `${h.pod}/${h.listener}:${h.port}`), ['a/outbound:15001', 'b/inbound:15006'], `app-a-to-pod-b-${v}: a's 15001, then b's 15006`);
      const seen = observedView(ab).app;
      const bLocal = v === 'v4' ? `${MESH_ADDRESSES.b.v4}:8080` : `[${MESH_ADDRESSES.b.v6}]:8080`;
      t.deepEqual(seen && { pod: seen.pod, peer: seen.peer, local: seen.local }, { pod: 'b', peer: passthrough, local: bLocal }, `app-a-to-pod-b-${v}: b's app sees the passthrough source, and its own pod IP as local`);
      t.deepEqual(o[`app-a-to-own-pod-ip-${v}`]!.hops, [], `app-a-to-own-pod-ip-${v}: direct`);
      t.deepEqual(o[`proxy-uid-a-to-pod-b-${v}`]!.hops.map((h) => `${h.pod}/${h.listener}`), ['b/inbound'], `proxy-uid-a-to-pod-b-${v}: not through a's outbound listener`);
    }
    t.log(`HAProxy log, pod a:\n${run.proxies.a.log.trim()}\nHAProxy log, pod b:\n${run.proxies.b.log.trim()}`);
  });
}

if (BACKENDS.length > 1) {
  const [first, ...others] = BACKENDS;
  for (const other of others) {
    test.serial(`${other.name} and ${first!.name} agree on every request`, (t) => {
      if (missing) return t.fail(missing);
      const a = runs.get(first!.name);
      const b = runs.get(other.name);
      if (!a || !b) return t.fail(`a scenario did not complete (${first!.name}: ${a ? 'ran' : 'missing'}, ${other.name}: ${b ? 'ran' : 'missing'})`);
      t.deepEqual(compareMeshRuns(a, b), []);
    });
  }
}
