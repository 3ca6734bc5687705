// Fuzz (issue 9, fault suite): 10,000 fast-check Pod and Sidecar documents, and junk,
// fed through a running `sluice run`'s file source in batches next to two good pods.
// Expected: the daemon never crashes, every captured fuzz pod is rejected alone (none
// names a real netns) and counted once, each distinct source error is counted once, and
// the good pods keep their policy in /v1/pods and in the kernel (real connections).
import test from 'ava';
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { PodState } from '../../src/daemon/reconcile.js';
import { buildPolicies, DEFAULT_CONFIG } from '../../src/policy/index.js';
import { parseObjects } from '../../src/sources/file.js';
import { DistinctErrors } from '../../src/sources/stable.js';
import { bpfRequirementsMissing, connect } from '../kernel/bpf-fixture.js';
import { createWorld, killAllDaemons, metric, reapStaleWorld, REMOTE, sourceYaml, startDaemon, waitFor, type Daemon, type Metrics } from '../kernel/harness/daemon.js';
import { junkArb, podArb, sidecarArb } from './fuzz-arbitraries.js';

const DOCUMENTS = Number(process.env.SLUICE_FUZZ_DOCUMENTS ?? 10_000);
const BATCH = 500;
const SEED = Number(process.env.SLUICE_FUZZ_SEED ?? 20261202);
const missing = bpfRequirementsMissing();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sumOf = (m: Metrics, name: string) => [...m].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((s, [, v]) => s + v, 0);

/** One batch of documents: mostly Pods, some Sidecars, some junk. */
function batchDocs(b: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `b${b}-${i}`;
    const kind = (i * 7 + b) % 10; // deterministic mix: 7 pods, 2 sidecars, 1 junk in 10
    const seed = SEED + b * BATCH + i;
    if (kind < 7) return stringify(fc.sample(podArb(name), { numRuns: 1, seed })[0]);
    if (kind < 9) return stringify(fc.sample(sidecarArb(name), { numRuns: 1, seed })[0]);
    return fc.sample(junkArb, { numRuns: 1, seed })[0]!;
  });
}

test.before(async () => {
  if (!missing) await reapStaleWorld();
});
test.after.always(() => killAllDaemons());

test.serial(`fuzz: ${DOCUMENTS} generated Pod/Sidecar documents through a running daemon; 0 crashes, bad pods rejected alone, good pods unchanged`, async (t) => {
  if (missing) return t.fail(missing);
  t.timeout(10 * 60_000);
  const w = await createWorld(2);
  let daemon: Daemon | null = null;
  try {
    const good = sourceYaml([0, 1].map((i) => ({ name: `pod${i}`, netns: w.pods[i]!.pod.path, annotations: { 'traffic.sidecar.istio.io/excludeOutboundPorts': '443' } })));
    w.replace(good);
    const d = await startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket });
    daemon = d;
    const goodStates = () => d.json<PodState[]>('/v1/pods').then((s) => s.filter((p) => p.namespace === 'default'));
    const before = await waitFor('both good pods applied', async () => {
      const s = await goodStates();
      // Settled: applied, and the double-capture check has answered for both.
      return s.length === 2 && s.every((p) => p.status === 'applied' && p.istioIptables === 'absent') ? s : undefined;
    });
    const captured = async (i: number) => {
      const r = await connect(w.cg, { netnsPath: w.pods[i]!.pod.path, dst: REMOTE, uid: 1000 });
      return r.ok && r.server.server === `pod${i}` && r.server.port === 15001 && r.server.origDst === REMOTE;
    };
    const expectedErrors = new DistinctErrors();
    expectedErrors.fresh([]);
    let documents = 0;
    let rejectedTotal = 0;
    let sourceErrorsTotal = 0;
    for (let b = 0; documents < DOCUMENTS; b++) {
      const docs = batchDocs(b, Math.min(BATCH, DOCUMENTS - documents));
      documents += docs.length;
      // The marker (captured, no netns: rejected) says the daemon has read this batch.
      const marker = stringify({ kind: 'Pod', metadata: { name: `batch-${b}`, namespace: 'fuzz-marker', annotations: { 'sidecar.istio.io/status': '{}' } } });
      const text = [good, marker, ...docs].join('---\n');
      // What the policy layer says of this text, in this process: every pod it does not
      // leave uncaptured must be rejected by the daemon (no fuzz pod has a real netns).
      const snap = parseObjects(text, w.source);
      const results = buildPolicies(snap.pods, snap.sidecars, DEFAULT_CONFIG);
      const key = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;
      const wantRejected = new Set(results.filter((r) => r.status !== 'uncaptured' && r.pod.namespace !== 'default').map((r) => key(r.pod)));
      const newSourceErrors = expectedErrors.fresh(snap.errors).length;
      const m0 = await d.metrics();
      w.replace(text); // atomic: the daemon never sees half a batch
      const states = await waitFor(`batch ${b} read`, async () => {
        const s = await d.json<PodState[]>('/v1/pods');
        return s.some((p) => p.name === `batch-${b}`) ? s : undefined;
      }, 30_000);
      await sleep(350); // the confirming read (CONFIRM_MS) happens in this window
      t.true(d.alive(), `batch ${b}: the daemon lives:\n${d.output().slice(-3000)}`);
      const seen = new Map(states.map((s) => [key(s), s]));
      const wrong = [...wantRejected].filter((k) => seen.get(k)?.status !== 'rejected');
      t.deepEqual(wrong, [], `batch ${b}: every captured fuzz pod is rejected`);
      const applied = states.filter((s) => s.status === 'applied').map(key).sort();
      t.deepEqual(applied, ['default/pod0', 'default/pod1'], `batch ${b}: only the good pods are applied`);
      const m1 = await d.metrics();
      t.is(sumOf(m1, 'sluice_reconcile_errors_total') - sumOf(m0, 'sluice_reconcile_errors_total'), wantRejected.size, `batch ${b}: each rejected pod counted once`);
      t.is(metric(m1, 'sluice_source_errors_total') - metric(m0, 'sluice_source_errors_total'), newSourceErrors, `batch ${b}: each new source error counted once`);
      rejectedTotal += wantRejected.size;
      sourceErrorsTotal += snap.errors.length;
      if (b % 5 === 0) t.true((await captured(0)) && (await captured(1)), `batch ${b}: the good pods are still captured`);
    }
    t.is(documents, DOCUMENTS);
    t.deepEqual(await goodStates(), before, 'the good pods kept their policy, cookie and status');
    await sleep(1100); // past the /metrics map-walk cache
    t.is(metric(await d.metrics(), 'sluice_map_entries', { map: 'sluice_pods' }), 2, 'the kernel holds the two good pods and nothing else');
    t.true(await captured(0));
    t.true(await captured(1));
    t.notRegex(d.output(), /reconcile_failed|"level":60/, 'no reconcile ever threw');
    t.log(`seed ${SEED}: ${documents} documents, ${rejectedTotal} pods rejected, ${sourceErrorsTotal} documents skipped as source errors`);
  } catch (e) {
    t.log(`failed: ${(e as Error).stack}; cause: ${String((e as { cause?: unknown }).cause)}`);
    throw e;
  } finally {
    if (daemon && !daemon.alive()) t.log(`the daemon died (${await daemon.exited}):\n${daemon.output().slice(-4000)}`);
    await killAllDaemons();
    await w.destroy();
  }
});
