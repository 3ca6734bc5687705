// fast-check generators for hostile Pod and Sidecar documents: every field a pod author
// controls, with good values, bad values, values of the wrong type and oversized lists.
// Fuzz objects live in namespaces fuzz-a and fuzz-b, so no Sidecar of theirs selects the
// test's good pods (namespace default), and their netns never names a real namespace.
import fc from 'fast-check';

const A = 'traffic.sidecar.istio.io/';
const LIST_KEYS = [
  `${A}includeOutboundIPRanges`,
  `${A}excludeOutboundIPRanges`,
  `${A}includeOutboundPorts`,
  `${A}excludeOutboundPorts`,
  `${A}includeInboundPorts`,
  `${A}excludeInboundPorts`,
  `${A}excludeInterfaces`,
  'istio.io/reroute-virtual-interfaces',
  `${A}kubevirtInterfaces`,
  'status.sidecar.istio.io/port',
  'sidecar.istio.io/interceptionMode',
];

const wrongType = fc.oneof(fc.boolean(), fc.integer(), fc.double(), fc.constant(null), fc.constant({}), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }));
/** Mostly the right shape, sometimes the wrong type: most documents reach the policy layer. */
const mostly = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: wrongType });
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }).map(String), fc.constantFrom('0', '65536', '-1', 'http', '*', ' 80 ', '1e3'));
const ip4 = fc.ipV4();
const cidr = fc.oneof(fc.tuple(ip4, fc.integer({ min: 0, max: 32 })).map(([a, b]) => `${a}/${b}`), fc.ipV6().map((a) => `${a}/64`), fc.constantFrom('10.0.0.0/33', '10.1', '*', 'banana', '::/129'));
const iface = fc.oneof(fc.constantFrom('eth0', 'lo', 'net1'), fc.string({ maxLength: 20 }));
const list = (item: fc.Arbitrary<string>) => fc.array(item, { maxLength: 6 }).map((l) => l.join(','));
/** A list over the per-pod cap (1024): the set-map exhaustion case. */
const huge = fc.integer({ min: 1025, max: 3000 }).map((n) => Array.from({ length: n }, (_, i) => String((i % 65535) + 1)).join(','));
const annotationValue = fc.oneof(
  { weight: 3, arbitrary: list(port) },
  { weight: 3, arbitrary: list(cidr) },
  { weight: 1, arbitrary: list(iface) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: wrongType },
  { weight: 1, arbitrary: huge },
  { weight: 1, arbitrary: fc.constantFrom('REDIRECT', 'TPROXY', 'NONE', 'sometimes') },
);
/** Never a real netns: paths that do not exist, empty, or not a string at all. */
const netns = fc.oneof(fc.constantFrom('', '/nonexistent/netns', 'relative/none', '/var/run/netns/sluice-fuzz-none'), wrongType);

const annotations = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...LIST_KEYS), annotationValue, { maxKeys: 4 }),
    fc.dictionary(fc.string({ maxLength: 12 }), mostly(fc.string({ maxLength: 12 })), { maxKeys: 2 }),
    fc.option(netns, { nil: undefined }),
    fc.integer({ min: 0, max: 4 }).map((n) => n > 0), // meshed 4 times in 5
  )
  .map(([known, other, ns, meshed]) => ({ ...other, ...known, ...(meshed ? { 'sidecar.istio.io/status': '{}' } : {}), ...(ns !== undefined ? { 'sluice.dev/netns': ns } : {}) }));

const id = fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.constantFrom(-1, 2 ** 32, 1.5, '1337', null));
const container = fc.record(
  {
    name: fc.constantFrom('istio-proxy', 'app'),
    securityContext: mostly(fc.record({ runAsUser: id, runAsGroup: id }, { requiredKeys: [] })),
    env: mostly(fc.array(fc.record({ name: fc.constantFrom('ISTIO_META_DNS_CAPTURE', 'X'), value: mostly(fc.constantFrom('true', 'false')) }), { maxLength: 2 })),
  },
  { requiredKeys: ['name'] },
);
const podIP = fc.oneof(ip4, fc.ipV6(), fc.string({ maxLength: 10 }), wrongType);
const status = mostly(fc.record({ podIP, podIPs: fc.array(mostly(fc.record({ ip: podIP })), { maxLength: 6 }) }, { requiredKeys: [] }));
const namespace = fc.constantFrom('fuzz-a', 'fuzz-b');

export function podArb(name: string): fc.Arbitrary<unknown> {
  return fc.record(
    {
      apiVersion: fc.constant('v1'),
      kind: fc.constant('Pod'),
      metadata: fc.record({ name: fc.constant(name), namespace, labels: mostly(fc.dictionary(fc.constantFrom('app', 'x'), mostly(fc.constantFrom('web', 'db')), { maxKeys: 2 })), annotations }, { requiredKeys: ['name', 'namespace', 'annotations'] }),
      spec: mostly(fc.record({ containers: mostly(fc.array(container, { maxLength: 3 })), initContainers: fc.array(container, { maxLength: 1 }) }, { requiredKeys: [] })),
      status,
    },
    { requiredKeys: ['apiVersion', 'kind', 'metadata'] },
  );
}

const listener = fc.record(
  {
    port: fc.oneof(fc.record({ number: fc.oneof(fc.integer({ min: -1, max: 70000 }), wrongType) }, { requiredKeys: [] }), wrongType),
    bind: fc.oneof(ip4, fc.ipV6(), fc.constantFrom('127.0.0.1', '0.0.0.0', 'unix:///x', 'nonsense'), wrongType),
    captureMode: fc.oneof(fc.constantFrom('NONE', 'DEFAULT', 'IPTABLES', 'none'), wrongType),
  },
  { requiredKeys: [] },
);

export function sidecarArb(name: string): fc.Arbitrary<unknown> {
  return fc.record({
    apiVersion: fc.constantFrom('networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v9'),
    kind: fc.constant('Sidecar'),
    metadata: fc.record({ name: fc.constant(name), namespace, annotations: fc.dictionary(fc.constantFrom(...LIST_KEYS.slice(0, 6)), annotationValue, { maxKeys: 2 }) }),
    spec: fc.oneof(
      fc.record({ workloadSelector: fc.option(fc.record({ labels: fc.dictionary(fc.constantFrom('app'), fc.constantFrom('web', 'db')) }), { nil: undefined }), ingress: fc.array(listener, { maxLength: 4 }), egress: fc.array(listener, { maxLength: 4 }) }, { requiredKeys: [] }),
      wrongType,
    ),
  });
}

/** Text that is not a Kubernetes object, or not YAML: junk, a depth bomb, an alias bomb. */
export const junkArb: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 60 }).filter((s) => !/^(---|\.\.\.|%)/m.test(s)),
  fc.integer({ min: 65, max: 6000 }).map((n) => '['.repeat(n)),
  fc.constant(`a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 6 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`).join('\n')}\n`),
  fc.constantFrom('kind: Pod\n', 'kind: Pod\nmetadata: {name: [unclosed\n', 'kind: Sidecar\nmetadata: {name: s}\nspec: 3\n', '- 1\n- 2\n', 'kind: List\nitems: [1, {kind: Pod}]\n'),
);
