// The differential suite: every oracle policy and case, through the rendered iptables rules
// and through sluice's eBPF data plane, in the same run. Both must give the same accepting
// listener, SO_ORIGINAL_DST, source at the listener and getpeername() at the client, in
// IPv4 and IPv6. The only differences allowed are the Istio quirks capture-spec.md names
// as deliberately fixed; there, each backend must do what its own mode of decide() says.
import test from 'ava';
import { decide } from '../../src/policy/decide.js';
import { iptablesBackend } from './harness/backend.js';
import { ebpfBackend } from './harness/bpf-backend.js';
import { CASES, POLICIES } from './harness/cases.js';
import { expectedObservation } from './harness/observe.js';
import { cleanupAll, runPolicy } from './harness/runner.js';
import { iptablesAndBpfMissing, reapLeftovers } from './harness/suite.js';

const missing = iptablesAndBpfMissing();

const tally = { equal: 0, quirk: 0 };

test.before(() => reapLeftovers(missing));

test.after.always(async () => {
  await cleanupAll();
  console.log(`differential: ${tally.equal} cases equal under iptables and eBPF, ${tally.quirk} differ as the fixed Istio quirks predict (${CASES.length} cases)`);
});

test('differential suite requirements are met', (t) => {
  t.is(missing, null);
});

test('the cases cover IPv4 and IPv6, outbound and inbound, TCP and UDP', (t) => {
  const has = (f: (c: (typeof CASES)[number]) => boolean) => CASES.some(f);
  t.true(has((c) => !c.conn.dst.ip.includes(':')) && has((c) => c.conn.dst.ip.includes(':')));
  t.true(has((c) => c.conn.direction === 'inbound') && has((c) => c.conn.direction === 'outbound'));
  t.true(has((c) => c.conn.protocol === 'udp'));
});

for (const [policyName, policy] of Object.entries(POLICIES)) {
  const cases = CASES.filter((c) => c.policyName === policyName);
  test.serial(`eBPF equals iptables: policy ${policyName} (${cases.length} cases)`, async (t) => {
    if (missing) return t.fail(missing);
    const iptables = await runPolicy(iptablesBackend, policyName, policy, cases);
    const ebpf = await runPolicy(ebpfBackend, policyName, policy, cases);
    for (const c of cases) {
      const a = iptables[c.id]!.observation;
      const b = ebpf[c.id]!.observation;
      if (c.quirk === undefined) {
        if (t.deepEqual(b, a, `${c.id}: eBPF differs from iptables`)) tally.equal++;
        continue;
      }
      // A fixed quirk: iptables keeps Istio's behaviour, eBPF does what the spec fixes.
      const istio = expectedObservation(policy, c, decide(policy, c.conn, { istioQuirks: true }));
      const sluice = expectedObservation(policy, c, decide(policy, c.conn, { istioQuirks: false }));
      t.notDeepEqual(istio, sluice, `${c.id}: labelled a quirk, but decide() does not differ`);
      const ok = [t.deepEqual(a, istio, `${c.id}: iptables (quirk: ${c.quirk})`), t.deepEqual(b, sluice, `${c.id}: eBPF (quirk fixed: ${c.quirk})`)];
      if (ok.every(Boolean)) tally.quirk++;
    }
  });
}

test.serial('every case was compared', (t) => {
  if (missing) return t.fail(missing);
  t.is(tally.equal + tally.quirk, CASES.length, 'a case that failed or was skipped above is not counted');
});
