// Each annotation of the spec's input table changes the decision it should.
import test from 'ava';
import { buildPolicy, decide, DEFAULT_CONFIG } from '../../src/policy/index.js';
import { inb, out, pod, policyOf } from './fixtures.js';

const A = 'traffic.sidecar.istio.io/';

test('a pod without sidecar.istio.io/status is not captured', (t) => {
  const p = pod();
  delete p.metadata.annotations!['sidecar.istio.io/status'];
  t.is(buildPolicy(p, [], DEFAULT_CONFIG).status, 'uncaptured');
});

test('interceptionMode NONE turns capture off; REDIRECT and TPROXY keep it; anything else is rejected', (t) => {
  t.is(buildPolicy(pod({ 'sidecar.istio.io/interceptionMode': 'NONE' }), [], DEFAULT_CONFIG).status, 'uncaptured');
  t.is(buildPolicy(pod({ 'sidecar.istio.io/interceptionMode': 'REDIRECT' }), [], DEFAULT_CONFIG).status, 'captured');
  t.is(buildPolicy(pod({ 'sidecar.istio.io/interceptionMode': 'TPROXY' }), [], DEFAULT_CONFIG).status, 'captured');
  const r = buildPolicy(pod({ 'sidecar.istio.io/interceptionMode': 'MAGIC' }), [], DEFAULT_CONFIG);
  t.is(r.status, 'rejected');
});

test('includeOutboundIPRanges: a list captures only those CIDRs, empty captures none', (t) => {
  const p = policyOf(pod({ [`${A}includeOutboundIPRanges`]: '10.2.0.0/16, fd00:2::/32' }));
  t.is(decide(p, out('10.2.0.5', 80)).outcome, 'outbound-proxy');
  t.is(decide(p, out('10.3.0.5', 80)).outcome, 'pass');
  t.is(decide(p, out('fd00:2::5', 80)).outcome, 'outbound-proxy');
  t.is(decide(p, out('fd00:3::5', 80)).outcome, 'pass');
  const none = policyOf(pod({ [`${A}includeOutboundIPRanges`]: '' }));
  t.is(decide(none, out('10.2.0.5', 80)).outcome, 'pass');
});

test('excludeOutboundIPRanges passes those CIDRs at step 8', (t) => {
  const p = policyOf(pod({ [`${A}excludeOutboundIPRanges`]: '10.2.0.0/24' }));
  t.like(decide(p, out('10.2.0.5', 80)), { outcome: 'pass', step: 'outbound.8' });
  t.is(decide(p, out('10.2.1.5', 80)).outcome, 'outbound-proxy');
});

test('includeOutboundPorts captures its ports even outside the include CIDRs', (t) => {
  const p = policyOf(pod({ [`${A}includeOutboundIPRanges`]: '', [`${A}includeOutboundPorts`]: '5432' }));
  t.like(decide(p, out('10.9.0.1', 5432)), { outcome: 'outbound-proxy', step: 'outbound.9' });
  t.is(decide(p, out('10.9.0.1', 80)).outcome, 'pass');
});

test('excludeOutboundPorts passes TCP and UDP at step 2', (t) => {
  const p = policyOf(pod({ [`${A}excludeOutboundPorts`]: '5432,53', }, { spec: { containers: [{ name: 'istio-proxy', env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] }] } }));
  t.like(decide(p, out('10.2.0.5', 5432)), { outcome: 'pass', step: 'outbound.2' });
  t.like(decide(p, out('10.2.0.5', 53, { protocol: 'udp' })), { outcome: 'pass', step: 'outbound.2' });
});

test('includeInboundPorts: * captures all but the excluded, a list only its ports, empty none', (t) => {
  const all = policyOf(pod());
  t.is(decide(all, inb('10.1.0.2', 9999)).outcome, 'inbound-proxy');
  const list = policyOf(pod({ [`${A}includeInboundPorts`]: '8080' }));
  t.is(decide(list, inb('10.1.0.2', 8080)).outcome, 'inbound-proxy');
  t.is(decide(list, inb('10.1.0.2', 9999)).outcome, 'pass');
  const none = policyOf(pod({ [`${A}includeInboundPorts`]: '' }));
  t.like(decide(none, inb('10.1.0.2', 8080)), { outcome: 'pass', step: 'inbound.3' });
});

test('excludeInboundPorts is merged with 15090, 15021 and the status port', (t) => {
  const p = policyOf(pod({ [`${A}excludeInboundPorts`]: '9090' }));
  t.deepEqual([...p.excludeInboundPorts].sort((a, b) => a - b), [9090, 15020, 15021, 15090]);
  t.is(decide(p, inb('10.1.0.2', 9090)).outcome, 'pass');
});

test('the status port annotation moves the excluded status port; 0 means none', (t) => {
  const custom = policyOf(pod({ 'status.sidecar.istio.io/port': '15030' }));
  t.is(decide(custom, inb('10.1.0.2', 15030)).outcome, 'pass');
  t.is(decide(custom, inb('10.1.0.2', 15020)).outcome, 'inbound-proxy');
  const zero = policyOf(pod({ 'status.sidecar.istio.io/port': '0' }));
  t.deepEqual(zero.excludeInboundPorts, [15090, 15021]);
});

test('excludeInterfaces passes outbound routes (step 1) and inbound arrivals (step 2) on them', (t) => {
  const p = policyOf(pod({ [`${A}excludeInterfaces`]: 'eth1' }));
  t.like(decide(p, out('10.2.0.5', 80, { interface: 'eth1' })), { outcome: 'pass', step: 'outbound.1' });
  t.is(decide(p, out('10.2.0.5', 80, { interface: 'eth0' })).outcome, 'outbound-proxy');
  t.like(decide(p, inb('10.1.0.2', 8080, { interface: 'eth1' })), { outcome: 'pass', step: 'inbound.2' });
});

test('reroute-virtual-interfaces (and the older kubevirtInterfaces) send arrivals to the outbound proxy', (t) => {
  for (const key of ['istio.io/reroute-virtual-interfaces', `${A}kubevirtInterfaces`]) {
    const p = policyOf(pod({ [key]: 'vnet0' }));
    t.like(decide(p, inb('10.9.9.9', 443, { interface: 'vnet0' })), { outcome: 'outbound-proxy', port: 15001, step: 'inbound.1' }, key);
    t.like(decide(p, inb('10.9.9.9', 443, { interface: 'vnet0', protocol: 'udp' })), { outcome: 'pass', step: 'inbound.1' }, key);
  }
});

test('proxy uid and gid come from the istio-proxy container; the gid defaults to the uid', (t) => {
  const p = policyOf(pod({}, { spec: { containers: [{ name: 'app' }, { name: 'istio-proxy', securityContext: { runAsUser: 2000 } }] } }));
  t.deepEqual(p.proxyUids, [2000]);
  t.deepEqual(p.proxyGids, [2000]);
  t.is(decide(p, out('10.2.0.5', 80, { uid: 2000 })).outcome, 'pass');
  t.is(decide(p, out('10.2.0.5', 80, { uid: 1337 })).outcome, 'outbound-proxy');
  const g = policyOf(pod({}, { spec: { containers: [{ name: 'istio-proxy', securityContext: { runAsUser: 2000, runAsGroup: 3000 } }] } }));
  t.deepEqual(g.proxyGids, [3000]);
});

test('pod IPs come from status.podIPs, with status.podIP as the fallback', (t) => {
  t.deepEqual(policyOf(pod()).podIPs, ['10.1.0.2', 'fd00::2']);
  const p = pod();
  p.status = { podIP: '10.1.0.9' };
  t.deepEqual(policyOf(p).podIPs, ['10.1.0.9']);
});

test('an include CIDR holding a loopback address keeps loopback capture (no step 4b)', (t) => {
  const p = policyOf(pod({ [`${A}includeOutboundIPRanges`]: '127.0.0.0/8,10.0.0.0/8' }));
  t.like(decide(p, out('127.0.0.5', 8080)), { outcome: 'outbound-proxy', step: 'outbound.10' });
  t.like(decide(p, out('10.1.0.2', 8080)), { outcome: 'outbound-proxy' });
  // LOOP itself is still exempt at step 7.
  t.like(decide(p, out('127.0.0.1', 8080)), { outcome: 'pass', step: 'outbound.7' });
});
