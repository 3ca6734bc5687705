// The differential cases through the kubernetes source: every oracle policy stated as a
// cluster states it (pod annotations, the proxy's env, node config), served by the API
// double, its netns found by cgroup, and every case's four observations equal to
// decide(istioQuirks: false), as the eBPF oracle asks of the file-less data plane.
import test from 'ava';
import { decide } from '../../src/policy/decide.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { CASES, POLICIES } from './harness/cases.js';
import { reapStaleWorld } from './harness/daemon.js';
import { kubeBackend } from './harness/kube-backend.js';
import { expectedObservation } from './harness/observe.js';
import { runPolicy } from './harness/runner.js';

const missing = bpfRequirementsMissing();
let compared = 0;
/**
 * Not expressible by a pod: the proxy uid comes from the istio-proxy container's
 * runAsUser, one per pod. Several proxy uids are node config (`--config proxyUids`), and
 * the file-source and data-plane suites cover them.
 */
const NOT_A_POD_SETTING = new Set(['two-proxy-uids']);

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

const policies = Object.entries(POLICIES).filter(([name]) => !NOT_A_POD_SETTING.has(name));

for (const [name, policy] of policies) {
  const cases = CASES.filter((c) => c.policyName === name && c.client.netns !== 'vm');
  if (cases.length === 0) continue;
  test.serial(`kubernetes source: policy ${name} (${cases.length} cases) matches decide()`, async (t) => {
    if (missing) return t.fail(missing);
    const records = await runPolicy(kubeBackend, name, policy, cases);
    for (const c of cases) {
      const decision = decide(policy, c.conn, { istioQuirks: false });
      t.deepEqual(records[c.id]!.observation, expectedObservation(policy, c, decision), `${c.id}: decide() says ${decision.outcome} (${decision.step})`);
      compared += 1;
    }
  });
}

test.serial('every case was compared', (t) => {
  if (missing) return t.fail(missing);
  t.is(compared, CASES.filter((c) => c.client.netns !== 'vm' && policies.some(([n]) => n === c.policyName)).length);
});
