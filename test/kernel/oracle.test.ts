// The kernel oracle: real connections in real namespaces under the rendered istio-iptables
// rules must do exactly what decide() (with Istio's quirks) predicts for every case.
import test from 'ava';
import { decide } from '../../src/policy/decide.js';
import { iptablesBackend } from './harness/backend.js';
import { CASES, POLICIES } from './harness/cases.js';
import { expectedObservation } from './harness/observe.js';
import { checkRequirements } from './harness/requirements.js';
import { cleanupAll, runPolicy } from './harness/runner.js';
import { reapStaleNamespaces } from './harness/topology.js';

let requirementError: Error | null = null;
try {
  checkRequirements({ iptables: true });
} catch (err) {
  requirementError = err as Error;
}

let checked = 0;

test.before(async () => {
  if (!requirementError) await reapStaleNamespaces();
});

test.after.always(async () => {
  await cleanupAll();
  console.log(`oracle: ${checked} of ${CASES.length} cases checked against decide() (backend iptables)`);
});

test('kernel test requirements are met', (t) => {
  // Fails, never skips: a missing tool must be visible in CI.
  t.is(requirementError?.message, undefined);
});

test('quirk labels match where decide() differs with istioQuirks on and off', (t) => {
  // A case marked as an Istio quirk must really be one, and every quirk must be marked:
  // the eBPF backend will be held to istioQuirks:false on exactly these cases.
  for (const c of CASES) {
    const policy = POLICIES[c.policyName]!;
    const istio = decide(policy, c.conn, { istioQuirks: true });
    const sluice = decide(policy, c.conn, { istioQuirks: false });
    t.is(istio.outcome !== sluice.outcome || istio.port !== sluice.port, c.quirk !== undefined, `${c.id}: istio ${istio.outcome}, sluice ${sluice.outcome}`);
  }
});

for (const [policyName, policy] of Object.entries(POLICIES)) {
  const cases = CASES.filter((c) => c.policyName === policyName);
  test(`iptables matches decide(): policy ${policyName} (${cases.length} cases)`, async (t) => {
    if (requirementError) return t.fail(requirementError.message);
    const records = await runPolicy(iptablesBackend, policyName, policy, cases);
    for (const c of cases) {
      const decision = decide(policy, c.conn, { istioQuirks: true });
      const expected = expectedObservation(policy, c, decision);
      const observed = records[c.id]!.observation;
      t.deepEqual(observed, expected, `${c.id}: decide() says ${decision.outcome} (${decision.step})`);
      checked++;
    }
  });
}
