// istio-iptables settings sluice treats on purpose: TPROXY, NONE, owner groups.
import test from 'ava';
import { buildPolicy, decide, DEFAULT_CONFIG, renderIptables, type Pod } from '../../src/policy/index.js';
import { inb, out, pod, policyOf } from './fixtures.js';

const MODE = 'sidecar.istio.io/interceptionMode';

test('TPROXY decides exactly as REDIRECT, and sluice rules says how it is captured', (t) => {
  const tproxy = policyOf(pod({ [MODE]: 'TPROXY' }));
  const redirect = policyOf(pod({ [MODE]: 'REDIRECT' }));
  t.is(tproxy.interceptionMode, 'TPROXY');
  t.is(redirect.interceptionMode, undefined);
  for (const conn of [out('10.2.0.5', 80), out('10.1.0.2', 8080, { uid: 1337, src: '10.1.0.2' }), inb('10.1.0.2', 8080), inb('10.1.0.2', 15021)]) {
    t.deepEqual(decide(tproxy, conn), decide(redirect, conn));
  }
  t.regex(renderIptables(tproxy).ipv4, /^# interceptionMode TPROXY: sluice captures it as REDIRECT/m);
  t.notRegex(renderIptables(redirect).ipv4, /TPROXY/);
});

test('NONE is no policy at all: nothing is captured', (t) => {
  const r = buildPolicy(pod({ [MODE]: 'none' }), [], DEFAULT_CONFIG);
  t.is(r.status, 'uncaptured');
});

function withInitEnv(env: Record<string, string>): Pod {
  const p = pod();
  p.spec = { ...p.spec, initContainers: [{ name: 'istio-init', env: Object.entries(env).map(([name, value]) => ({ name, value })) }] };
  return p;
}

for (const name of ['ISTIO_OUTBOUND_OWNER_GROUPS', 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE']) {
  test(`owner groups: ${name} on istio-init is refused, naming it, for names and ids alike`, (t) => {
    for (const value of ['java,202', '202']) {
      const r = buildPolicy(withInitEnv({ [name]: value }), [], DEFAULT_CONFIG);
      if (r.status !== 'rejected') return t.fail(`${value}: ${r.status}`);
      t.is(r.errors[0]!.code, 'UNSUPPORTED');
      t.true(r.errors[0]!.message.includes(`env.${name}`), r.errors[0]!.message);
    }
  });
}

test("owner groups: istio-init's defaults ('*' and empty) capture every group, as Istio does", (t) => {
  t.is(buildPolicy(withInitEnv({ ISTIO_OUTBOUND_OWNER_GROUPS: '*' }), [], DEFAULT_CONFIG).status, 'captured');
  t.is(buildPolicy(withInitEnv({ ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: '' }), [], DEFAULT_CONFIG).status, 'captured');
});

test('reroute interfaces: a VM connection to a remote address goes to the outbound proxy (inbound.1)', (t) => {
  const p = policyOf(pod({ 'istio.io/reroute-virtual-interfaces': 'eth1' }));
  const d = decide(p, inb('10.2.0.5', 80, { interface: 'eth1' }));
  t.like(d, { outcome: 'outbound-proxy', port: 15001, originalDestination: '10.2.0.5:80', step: 'inbound.1' });
});
