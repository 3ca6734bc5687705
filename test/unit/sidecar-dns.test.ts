// DNS capture steps, Sidecar selection, conflicts and precedence.
import test from 'ava';
import { buildPolicy, decide, DEFAULT_CONFIG, parseNodeConfig, selectSidecar } from '../../src/policy/index.js';
import { parseObjects } from '../../src/sources/file.js';
import { out, pod, policyOf, sidecar } from './fixtures.js';

const dnsPod = (extra: Record<string, string> = {}) =>
  pod(extra, { spec: { containers: [{ name: 'istio-proxy', env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] }] } });

test('DNS capture: app TCP and UDP to port 53 go to 15053 with the original destination', (t) => {
  const p = policyOf(dnsPod());
  for (const protocol of ['tcp', 'udp'] as const) {
    t.like(decide(p, out('10.2.0.5', 53, { protocol })), { outcome: 'dns-proxy', port: 15053, step: 'outbound.6', originalDestination: '10.2.0.5:53' });
  }
  // App UDP to a local resolver is captured too: step 4b returns only TCP with DNS on.
  t.like(decide(p, out('127.0.0.53', 53, { protocol: 'udp' })), { outcome: 'dns-proxy' });
});

test("DNS capture: the proxy's own DNS is never captured", (t) => {
  const p = policyOf(dnsPod());
  t.like(decide(p, out('10.2.0.5', 53, { uid: 1337, protocol: 'udp' })), { outcome: 'pass', step: 'outbound.4c' });
  t.like(decide(p, out('10.2.0.5', 53, { uid: 0, gid: 1337, protocol: 'udp' })), { outcome: 'pass', step: 'outbound.5c' });
});

test('DNS capture: the uid hairpin skips port 53 but the gid hairpin (5a) does not', (t) => {
  const p = policyOf(dnsPod());
  t.like(decide(p, out('10.1.0.2', 53, { uid: 1337 })), { outcome: 'pass', step: 'outbound.4c' });
  t.like(decide(p, out('10.1.0.2', 53, { uid: 0, gid: 1337 }), { istioQuirks: true }), { outcome: 'inbound-proxy', step: 'outbound.5a' });
});

test('DNS capture off: UDP to 53 passes; an excluded port 53 beats DNS capture', (t) => {
  t.is(decide(policyOf(pod()), out('10.2.0.5', 53, { protocol: 'udp' })).outcome, 'pass');
  const p = policyOf(dnsPod({ 'traffic.sidecar.istio.io/excludeOutboundPorts': '53' }));
  t.like(decide(p, out('10.2.0.5', 53, { protocol: 'udp' })), { outcome: 'pass', step: 'outbound.2' });
});

test('DNS capture can be turned on node-wide by --config and off again by the proxy env', (t) => {
  const cfg = parseNodeConfig({ dnsCapture: true }, 'test');
  t.true(policyOf(pod(), [], cfg).dnsCapture);
  const off = pod({}, { spec: { containers: [{ name: 'istio-proxy', env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'false' }] }] } });
  t.false(policyOf(off, [], cfg).dnsCapture);
});

const older = { creationTimestamp: '2026-01-01T00:00:00Z' };
const newer = { creationTimestamp: '2026-06-01T00:00:00Z' };

test('Sidecar selection: a matching workloadSelector in the namespace wins, oldest first, conflicts reported', (t) => {
  const p = pod({}, { labels: { app: 'shop' } });
  const s = selectSidecar(
    p,
    [
      sidecar('ns-wide', 'default'),
      sidecar('new', 'default', { workloadSelector: { labels: { app: 'shop' } } }, newer),
      sidecar('old', 'default', { workloadSelector: { labels: { app: 'shop' } } }, older),
      sidecar('other', 'default', { workloadSelector: { labels: { app: 'cart' } } }),
    ],
    'istio-system',
  );
  t.is(s.sidecar?.metadata.name, 'old');
  t.deepEqual(s.conflicts, ['default/new']);
  const r = buildPolicy(p, [sidecar('new', 'default', { workloadSelector: { labels: { app: 'shop' } } }, newer), sidecar('old', 'default', { workloadSelector: { labels: { app: 'shop' } } }, older)], DEFAULT_CONFIG);
  t.regex(r.warnings.join(), /conflict.*default\/old.*default\/new/);
});

test('Sidecar selection falls back to the namespace-wide one, then the root namespace, then none', (t) => {
  const p = pod({}, { labels: { app: 'shop' } });
  t.is(selectSidecar(p, [sidecar('ns', 'default'), sidecar('root', 'istio-system')], 'istio-system').sidecar?.metadata.name, 'ns');
  t.is(selectSidecar(p, [sidecar('root', 'istio-system'), sidecar('elsewhere', 'other')], 'istio-system').sidecar?.metadata.name, 'root');
  t.is(selectSidecar(p, [sidecar('root', 'mesh-root')], 'mesh-root').sidecar?.metadata.name, 'root');
  t.is(selectSidecar(p, [sidecar('selective', 'istio-system', { workloadSelector: { labels: { app: 'shop' } } })], 'istio-system').sidecar, null);
});

test('precedence: built-in < --config < Sidecar < pod annotation', (t) => {
  const key = 'traffic.sidecar.istio.io/excludeOutboundPorts';
  const cfg = parseNodeConfig({ annotations: { [key]: '1' } }, 'test');
  const sc = sidecar('s', 'default', {}, { annotations: { [key]: '2' } });
  t.deepEqual(policyOf(pod(), [], DEFAULT_CONFIG).excludeOutboundPorts, []);
  t.deepEqual(policyOf(pod(), [], cfg).excludeOutboundPorts, [1]);
  t.deepEqual(policyOf(pod(), [sc], cfg).excludeOutboundPorts, [2]);
  t.deepEqual(policyOf(pod({ [key]: '3' }), [sc], cfg).excludeOutboundPorts, [3]);
});

test('Sidecar ingress captureMode NONE excludes its port, with * and with a list', (t) => {
  const sc = sidecar('s', 'default', { ingress: [{ port: { number: 9090 }, captureMode: 'NONE' }, { port: { number: 8080 }, captureMode: 'DEFAULT' }] });
  const all = policyOf(pod(), [sc]);
  t.like(decide(all, { direction: 'inbound', protocol: 'tcp', dst: { ip: '10.1.0.2', port: 9090 } }), { outcome: 'pass' });
  t.like(decide(all, { direction: 'inbound', protocol: 'tcp', dst: { ip: '10.1.0.2', port: 8080 } }), { outcome: 'inbound-proxy' });
  const list = policyOf(pod({ 'traffic.sidecar.istio.io/includeInboundPorts': '8080,9090' }), [sc]);
  t.deepEqual(list.includeInboundPorts, [8080]);
});

test('Sidecar egress captureMode NONE with a non-local bind excludes that address and port; local binds are ignored', (t) => {
  const sc = sidecar('s', 'default', {
    egress: [
      { port: { number: 443 }, bind: '10.20.0.9', captureMode: 'NONE' },
      { port: { number: 80 }, bind: '127.0.0.1', captureMode: 'NONE' },
      { port: { number: 81 }, bind: 'unix:///var/run/x.sock', captureMode: 'NONE' },
    ],
  });
  const p = policyOf(pod(), [sc]);
  t.deepEqual(p.excludeOutboundBinds, [{ address: '10.20.0.9', port: 443 }]);
  t.like(decide(p, { direction: 'outbound', protocol: 'tcp', dst: { ip: '10.20.0.9', port: 443 }, uid: 1000 }), { outcome: 'pass', step: 'outbound.8' });
  t.like(decide(p, { direction: 'outbound', protocol: 'tcp', dst: { ip: '10.20.0.9', port: 80 }, uid: 1000 }), { outcome: 'outbound-proxy' });
});

test('the file source takes Sidecars of v1, v1beta1 and v1alpha3 and reports other versions', (t) => {
  const doc = (v: string, name: string) => `apiVersion: ${v}\nkind: Sidecar\nmetadata: {name: ${name}, namespace: default}\n`;
  const snap = parseObjects(
    [doc('networking.istio.io/v1', 'a'), doc('networking.istio.io/v1beta1', 'b'), doc('networking.istio.io/v1alpha3', 'c'), doc('networking.istio.io/v2', 'd')].join('---\n'),
    'test.yaml',
  );
  t.deepEqual(snap.sidecars.map((s) => s.metadata.name), ['a', 'b', 'c']);
  t.is(snap.errors.length, 1);
  t.regex(snap.errors[0]!, /document 4.*v2.*use one of/);
});
