// Bad input rejects one pod's policy with an error naming the object, field and fix,
// and never crashes or touches another pod.
import test from 'ava';
import fc from 'fast-check';
import { buildPolicies, buildPolicy, DEFAULT_CONFIG, parseNodeConfig, PolicyError, type Pod } from '../../src/policy/index.js';
import { parseObjects } from '../../src/sources/file.js';
import { pod, sidecar } from './fixtures.js';

const A = 'traffic.sidecar.istio.io/';

function rejection(p: Pod, sidecars = [] as ReturnType<typeof sidecar>[]) {
  const r = buildPolicy(p, sidecars, DEFAULT_CONFIG);
  if (r.status !== 'rejected') throw new Error(`expected rejection, got ${r.status}`);
  return r.errors;
}

const BAD_ANNOTATIONS: [string, string, string, RegExp][] = [
  ['bad prefix', `${A}excludeOutboundIPRanges`, '10.0.0.0/33', /BAD_CIDR/],
  ['garbage CIDR', `${A}includeOutboundIPRanges`, '10.0.0.0/8,banana', /BAD_CIDR/],
  ['classful shorthand', `${A}excludeOutboundIPRanges`, '10.1', /BAD_CIDR/],
  ['port 0', `${A}excludeOutboundPorts`, '0', /BAD_PORT/],
  ['port 65536', `${A}includeOutboundPorts`, '65536', /BAD_PORT/],
  ['non-number port', `${A}excludeInboundPorts`, 'http', /BAD_PORT/],
  ['negative port', `${A}includeInboundPorts`, '-1', /BAD_PORT/],
  ['* in an exclude CIDR list', `${A}excludeOutboundIPRanges`, '*', /BAD_WILDCARD/],
  ['* in an exclude port list', `${A}excludeOutboundPorts`, '*', /BAD_WILDCARD/],
  ['* mixed into a list', `${A}includeInboundPorts`, '*,8080', /BAD_WILDCARD/],
  ['bad status port', 'status.sidecar.istio.io/port', '99999', /BAD_PORT/],
  ['bad interception mode', 'sidecar.istio.io/interceptionMode', 'SOMETIMES', /BAD_MODE/],
];

for (const [name, key, value, code] of BAD_ANNOTATIONS) {
  test(`rejected: ${name} (${key}=${value})`, (t) => {
    const [err] = rejection(pod({ [key]: value }));
    t.true(err instanceof PolicyError);
    t.regex(err!.code, code);
    t.is(err!.object, 'Pod default/app');
    t.is(err!.field, `annotation ${key}`);
    t.true(err!.message.includes(JSON.stringify(value)), err!.message);
    t.regex(err!.message, /use |list|must/, 'the message says what to do');
  });
}

test('every bad field of a pod is reported, not just the first', (t) => {
  const errors = rejection(pod({ [`${A}excludeOutboundPorts`]: 'x', [`${A}excludeOutboundIPRanges`]: 'y' }));
  t.deepEqual(errors.map((e) => e.code).sort(), ['BAD_CIDR', 'BAD_PORT']);
});

test('rejected: a bad runAsUser, a bad pod IP, bad Sidecar ports and binds', (t) => {
  t.is(rejection(pod({}, { spec: { containers: [{ name: 'istio-proxy', securityContext: { runAsUser: -5 } }] } }))[0]!.code, 'BAD_ID');
  t.is(rejection({ ...pod(), status: { podIPs: [{ ip: '10.1.0.300' }] } })[0]!.field, 'status.podIPs[0].ip');
  const sc1 = sidecar('s', 'default', { ingress: [{ port: { number: 70000 }, captureMode: 'NONE' }] });
  t.like(rejection(pod(), [sc1])[0], { code: 'BAD_PORT', object: 'Sidecar default/s', field: 'spec.ingress[0].port.number' });
  const sc2 = sidecar('s', 'default', { egress: [{ bind: 'not-an-ip', captureMode: 'NONE' }] });
  t.like(rejection(pod(), [sc2])[0], { code: 'BAD_ADDRESS', field: 'spec.egress[0].bind' });
});

test('one bad pod does not affect another', (t) => {
  const results = buildPolicies([pod({ [`${A}excludeOutboundPorts`]: '0' }, { name: 'bad' }), pod({}, { name: 'good' })], [], DEFAULT_CONFIG);
  t.deepEqual(results.map((r) => r.status), ['rejected', 'captured']);
});

test('node config: unknown keys, bad ports and bad id lists are errors; a good config parses', (t) => {
  t.throws(() => parseNodeConfig({ prots: {} }, 'c.yaml'), { message: /prots.*unknown key/ });
  t.throws(() => parseNodeConfig({ ports: { outbound: 0 } }, 'c.yaml'), { message: /ports\.outbound/ });
  t.throws(() => parseNodeConfig({ proxyUids: [] }, 'c.yaml'), { message: /proxyUids/ });
  t.throws(() => parseNodeConfig({ proxyUids: ['a'] }, 'c.yaml'), { message: /proxyUids/ });
  const c = parseNodeConfig({ ports: { outbound: 16001 }, proxyUids: [1337, 1338], rootNamespace: 'mesh', dnsCapture: true }, 'c.yaml');
  t.like(c, { proxyUids: [1337, 1338], proxyGids: null, rootNamespace: 'mesh', dnsCapture: true });
  t.is(c.ports.outbound, 16001);
  t.is(c.ports.inbound, 15006);
});

test('the file source skips a document with a YAML error and keeps the others', (t) => {
  const snap = parseObjects('kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: [unclosed\n---\nkind: Pod\nmetadata: {name: c}\n', 'p.yaml');
  t.deepEqual(snap.pods.map((p) => p.metadata.name), ['a', 'c']);
  t.is(snap.errors.length, 1);
  t.regex(snap.errors[0]!, /p\.yaml document 2: YAML error/);
});

test('the file source reports malformed shapes instead of crashing later', (t) => {
  const snap = parseObjects(
    [
      'kind: Pod\nmetadata: {name: a}\nspec: {containers: 5}',
      'kind: Pod\nmetadata: {name: b}\nstatus: {podIPs: 10.1.0.2}',
      'kind: Pod\nmetadata: {namespace: x}',
      'kind: Pod\nmetadata: {name: d, annotations: [1, 2]}',
      '- just\n- a list',
    ].join('\n---\n'),
    'p.yaml',
  );
  t.is(snap.pods.length, 0);
  t.is(snap.errors.length, 5);
  t.regex(snap.errors.join('\n'), /spec\.containers must be a list/);
  t.regex(snap.errors.join('\n'), /status\.podIPs must be a list/);
  t.regex(snap.errors.join('\n'), /no metadata\.name/);
});

test('buildPolicies never throws on junk pods', (t) => {
  const junk = fc.anything({ maxDepth: 3 });
  fc.assert(
    fc.property(junk, junk, junk, fc.dictionary(fc.constantFrom(`${A}excludeOutboundPorts`, `${A}includeOutboundIPRanges`, 'sidecar.istio.io/status', 'status.sidecar.istio.io/port'), fc.string()), (spec, status, labels, annotations) => {
      const p = { kind: 'Pod', metadata: { name: 'j', annotations, labels }, spec, status } as unknown as Pod;
      const [r] = buildPolicies([p], [], DEFAULT_CONFIG);
      return r !== undefined && ['captured', 'uncaptured', 'rejected'].includes(r.status);
    }),
    { numRuns: 500 },
  );
  t.pass();
});
