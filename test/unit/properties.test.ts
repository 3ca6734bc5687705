// Invariants the spec implies, over random policies and connections.
import test from 'ava';
import fc from 'fast-check';
import { decide, DEFAULT_PORTS, formatEndpoint, type CapturePolicy, type Connection } from '../../src/policy/index.js';

const ADDRS = ['10.1.0.2', 'fd00::2', '127.0.0.1', '127.0.0.6', '::1', '::6', '10.2.0.5', 'fd00:2::5', '192.168.1.1', '10.96.0.10'];
const CIDRS = ['10.0.0.0/8', '10.2.0.0/16', '127.0.0.0/8', 'fd00::/16', 'fd00:2::/32', '192.168.0.0/16', '0.0.0.0/0', '::/0'];
const PORTS = [53, 80, 443, 8080, 15001, 15006, 15008, 15020, 15021, 15053, 15090];
const IDS = [0, 1000, 1337, 1338];

const portList = fc.uniqueArray(fc.constantFrom(...PORTS), { maxLength: 3 });
const cidrList = fc.uniqueArray(fc.constantFrom(...CIDRS), { maxLength: 3 });

const policyArb: fc.Arbitrary<CapturePolicy> = fc.record({
  pod: fc.constant({ namespace: 'default', name: 'app' }),
  podIPs: fc.constant(['10.1.0.2', 'fd00::2']),
  proxyUids: fc.uniqueArray(fc.constantFrom(1337, 1338), { minLength: 1 }),
  proxyGids: fc.uniqueArray(fc.constantFrom(1337, 1338), { minLength: 1 }),
  ports: fc.constant({ ...DEFAULT_PORTS }),
  includeOutboundIPRanges: fc.oneof(fc.constant('*' as const), cidrList),
  excludeOutboundIPRanges: cidrList,
  includeOutboundPorts: portList,
  excludeOutboundPorts: portList,
  includeInboundPorts: fc.oneof(fc.constant('*' as const), portList),
  excludeInboundPorts: portList.map((l) => [...new Set([15090, 15021, 15020, ...l])]),
  excludeInterfaces: fc.uniqueArray(fc.constantFrom('eth1', 'lo'), { maxLength: 1 }),
  rerouteInterfaces: fc.uniqueArray(fc.constantFrom('vnet0'), { maxLength: 1 }),
  excludeOutboundBinds: fc.constant([]),
  dnsCapture: fc.boolean(),
  sidecar: fc.constant(null),
});

const connArb: fc.Arbitrary<Connection> = fc.record(
  {
    direction: fc.constantFrom('outbound' as const, 'inbound' as const),
    protocol: fc.constantFrom('tcp' as const, 'udp' as const),
    dst: fc.record({ ip: fc.constantFrom(...ADDRS), port: fc.constantFrom(...PORTS) }),
    src: fc.constantFrom('10.1.0.2', '127.0.0.6', '::6', '127.0.0.1', '10.1.0.1'),
    uid: fc.constantFrom(...IDS),
    gid: fc.constantFrom(...IDS),
    interface: fc.constantFrom('eth0', 'eth1', 'lo', 'vnet0'),
  },
  { requiredKeys: ['direction', 'protocol', 'dst'] },
);

const both = (run: (p: CapturePolicy, c: Connection, quirks: boolean) => boolean) =>
  fc.property(policyArb, connArb, fc.boolean(), (p, c, quirks) => run(p, c, quirks));

const OPTS = { numRuns: 3000 };

test('a socket whose uid is a proxy uid never goes to the outbound proxy', (t) => {
  fc.assert(both((p, c, q) => c.direction !== 'outbound' || !p.proxyUids.includes(c.uid ?? -1) || decide(p, c, { istioQuirks: q }).outcome !== 'outbound-proxy'), OPTS);
  t.pass();
});

test('an excluded outbound port never reaches a proxy', (t) => {
  fc.assert(both((p, c, q) => c.direction !== 'outbound' || !p.excludeOutboundPorts.includes(c.dst.port) || decide(p, c, { istioQuirks: q }).outcome === 'pass'), OPTS);
  t.pass();
});

test('with all inbound ports captured, an excluded inbound port never reaches the inbound proxy', (t) => {
  fc.assert(
    both((p, c) => c.direction !== 'inbound' || p.includeInboundPorts !== '*' || !p.excludeInboundPorts.includes(c.dst.port) || decide(p, c).outcome !== 'inbound-proxy'),
    OPTS,
  );
  t.pass();
});

test('the tunnel port is never captured inbound', (t) => {
  fc.assert(both((p, c) => c.direction !== 'inbound' || c.dst.port !== 15008 || decide(p, c).outcome !== 'inbound-proxy'), OPTS);
  t.pass();
});

test('UDP is captured only to the DNS proxy, with DNS capture on and port 53', (t) => {
  fc.assert(
    both((p, c, q) => {
      if (c.protocol !== 'udp') return true;
      const d = decide(p, c, { istioQuirks: q });
      return d.outcome === 'pass' || (d.outcome === 'dns-proxy' && p.dnsCapture && c.dst.port === 53);
    }),
    OPTS,
  );
  t.pass();
});

test('pass keeps the destination port and no original destination; capture records the destination', (t) => {
  fc.assert(
    both((p, c, q) => {
      const d = decide(p, c, { istioQuirks: q });
      if (d.outcome === 'pass') return d.port === c.dst.port && d.originalDestination === null;
      const expectedPort = { 'outbound-proxy': 15001, 'inbound-proxy': 15006, 'dns-proxy': 15053 }[d.outcome];
      return d.port === expectedPort && d.originalDestination === formatEndpoint(c.dst);
    }),
    OPTS,
  );
  t.pass();
});

test("sluice and Istio agree unless several proxy uids or a gid-only proxy socket are involved", (t) => {
  fc.assert(
    both((p, c) => {
      const gidOnly = !p.proxyUids.includes(c.uid ?? -1) && p.proxyGids.includes(c.gid ?? c.uid ?? -1);
      if (c.direction !== 'outbound' || p.proxyUids.length !== 1 || gidOnly) {
        return true;
      }
      const a = decide(p, c);
      const b = decide(p, c, { istioQuirks: true });
      return a.outcome === b.outcome && a.port === b.port;
    }),
    OPTS,
  );
  t.pass();
});
