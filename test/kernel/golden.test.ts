// The second oracle: Istio's own istio-iptables unit-test goldens (test/kernel/fixtures/
// istio-golden, see its README), loaded with iptables-restore into a pod netns, against
// sluice's eBPF data plane given the same settings the way a user gives them (pod
// annotations, --config for the uid/gid lists). For every case both backends must agree
// on the listener that accepted, SO_ORIGINAL_DST, the source the listener saw and the
// client's getpeername(). A case where sluice differs on purpose is in DIFFERENCES with
// its reason, and must really differ; a golden sluice cannot express is in REFUSED and
// buildPolicy (what `sluice validate` runs) must reject it, naming the setting.
import test from 'ava';
import { buildPolicy } from '../../src/policy/build.js';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/policy/config.js';
import type { Pod } from '../../src/policy/k8s.js';
import type { CapturePolicy } from '../../src/policy/types.js';
import { ebpfBackend } from './harness/bpf-backend.js';
import { goldenBackend, goldenCases, readGolden, type Identity } from './harness/golden.js';
import { cleanupAll, runPolicy } from './harness/runner.js';
import { iptablesAndBpfMissing, reapLeftovers } from './harness/suite.js';
import { ADDRESSES } from './harness/topology.js';

interface GoldenConfig {
  /** Pod annotations on top of istio-iptables' bare defaults (BARE below). */
  annotations?: Record<string, string>;
  /** --config: the uid/gid lists and DNS capture of istio-iptables' flags. */
  config?: Partial<Pick<NodeConfig, 'proxyUids' | 'proxyGids' | 'dnsCapture'>>;
  /** istio-init's environment. */
  initEnv?: Record<string, string>;
  /** The pod interface the VM sits behind (default eth1). */
  vmIface?: string;
}

const A = {
  inIn: 'traffic.sidecar.istio.io/includeInboundPorts',
  exIn: 'traffic.sidecar.istio.io/excludeInboundPorts',
  inOut: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  exOut: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  inPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  exIf: 'traffic.sidecar.istio.io/excludeInterfaces',
  reroute: 'istio.io/reroute-virtual-interfaces',
  kubevirt: 'traffic.sidecar.istio.io/kubevirtInterfaces',
};

/** istio-iptables' defaults in run_test.go: nothing captured by CIDR or inbound port, no status port. */
const BARE = { 'sidecar.istio.io/status': '{}', [A.inOut]: '', [A.inIn]: '', 'status.sidecar.istio.io/port': '0' };
const UID_GID = { proxyUids: [3, 4], proxyGids: [1, 2] };

/** Each golden's settings in run_test.go, said to sluice. */
const GOLDENS: Record<string, GoldenConfig> = {
  empty: {},
  ipnets: { annotations: { [A.inOut]: '10.0.0.0/8' } },
  'ipv6-empty-inbound-ports': {},
  'ipv6-inbound-ports': { annotations: { [A.inIn]: '4000,5000' } },
  'ipv6-outbound-ports': { annotations: { [A.inPorts]: '32000,31000' } },
  'inbound-ports-include': { annotations: { [A.inIn]: '32000,31000' } },
  'inbound-ports-wildcard': { annotations: { [A.inIn]: '*' } },
  'outbound-ports-include': { annotations: { [A.inPorts]: '32000,31000' } },
  'basic-exclude-nic': { annotations: { [A.exIf]: 'not-istio-nic' }, vmIface: 'not-istio-nic' },
  'ip-range': { annotations: { [A.exOut]: '1.1.0.0/16', [A.inOut]: '9.9.0.0/16' }, config: { ...UID_GID, dnsCapture: true } },
  'loopback-outbound-iprange': { annotations: { [A.inOut]: '127.1.2.3/32' }, config: { ...UID_GID, dnsCapture: true } },
  'kube-virt-interfaces': { annotations: { [A.kubevirt]: 'eth1,eth2', [A.inOut]: '*' } },
  'ipnets-with-kube-virt-interfaces': { annotations: { [A.reroute]: 'eth1,eth2', [A.inOut]: '10.0.0.0/8' } },
  'ipv6-virt-interfaces': { annotations: { [A.inIn]: '4000,5000', [A.reroute]: 'eth0,eth1' } },
  'ipv6-ipnets': {
    annotations: { [A.inIn]: '4000,5000', [A.exIn]: '6000,7000,', [A.kubevirt]: 'eth0,eth1', [A.exOut]: '2001:db8::/32', [A.inOut]: '2001:db8::/32' },
  },
  'ipv6-uid-gid': {
    annotations: { [A.inIn]: '4000,5000', [A.exIn]: '6000,7000', [A.reroute]: 'eth0,eth1', [A.exOut]: '2001:db8::/32', [A.inOut]: '2001:db8::/32' },
    config: UID_GID,
  },
};

/** Goldens sluice refuses: buildPolicy must reject them, naming the setting. */
const REFUSED: Record<string, GoldenConfig & { setting: string }> = {
  'outbound-owner-groups': { initEnv: { ISTIO_OUTBOUND_OWNER_GROUPS: 'java,202' }, setting: 'ISTIO_OUTBOUND_OWNER_GROUPS' },
};

/** Goldens of run_test.go not loaded, and why (see the fixtures' README). */
export const NOT_LOADED: Record<string, string> = {
  tproxy: 'TPROXY mode: its mangle rules need IP_TRANSPARENT listeners and a policy route istio-iptables adds outside the rule list; sluice treats TPROXY as REDIRECT whose inbound keeps the original addresses (README)',
  'inbound-ports-tproxy': 'TPROXY mode, as tproxy',
  'inbound-ports-wildcard-tproxy': 'TPROXY mode, as tproxy',
  'dns-uid-gid': "DNS capture: istio-init captures only DNS to the listed resolv.conf servers; sluice captures all port-53 traffic (capture-spec's deliberate difference); the rest is covered by ip-range",
  'ipv6-dns-uid-gid': 'DNS capture, as dns-uid-gid',
  'outbound-owner-groups-exclude': 'owner groups: refused like outbound-owner-groups (ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE)',
  'ipv6-dns-outbound-owner-groups': 'owner groups: refused like outbound-owner-groups',
  'ipv6-dns-outbound-owner-groups-exclude': 'owner groups: refused like outbound-owner-groups',
  logging: 'TRACE rules in the raw table only: no decision changes (empty covers it); sluice counts decisions instead',
  'drop-invalid': 'drops conntrack INVALID packets: sluice creates no conntrack entries, so there is no INVALID state to drop',
  'host-ipv4-loopback-cidr': 'istio-iptables flag with no pod annotation: sluice always uses 127.0.0.1/32 as LOOP',
};

/** Cases where sluice differs from the golden on purpose: `golden/case-vN` → reason. */
const DNS_ALL = "DNS capture covers all port-53 traffic (capture-spec); istio-init's golden captures only DNS to 127.0.0.53";
const ALWAYS_EXCLUDED = 'sluice always excludes 15021 and 15090 inbound, as the injector always passes them; the bare istio-iptables run of the golden does not';
const ROUTE_SOURCE =
  "the proxy sees the pod IP as the source: connect() is rewritten to the pod IP, while REDIRECT keeps the source of the route's interface (eth1's address)";
const FORWARDED =
  "forwarded traffic (not for a pod address) from a non-reroute interface: Istio's `PREROUTING -p tcp -j ISTIO_INBOUND` captures it to 15006; sluice steers only traffic delivered to the pod";
const DIFFERENCES: Record<string, string> = {
  'ip-range/app-dns-tcp-v4': DNS_ALL,
  'ip-range/app-dns-udp-v4': DNS_ALL,
  'loopback-outbound-iprange/app-dns-tcp-v4': DNS_ALL,
  'loopback-outbound-iprange/app-dns-udp-v4': DNS_ALL,
  'inbound-ports-wildcard/inbound-15021-v4': ALWAYS_EXCLUDED,
  'inbound-ports-wildcard/vm-remote-v4': FORWARDED,
  'inbound-ports-wildcard/vm-other-v4': FORWARDED,
  'ipnets/app-vm-v4': ROUTE_SOURCE,
  'kube-virt-interfaces/app-vm-v4': ROUTE_SOURCE,
  'ipnets-with-kube-virt-interfaces/app-vm-v4': ROUTE_SOURCE,
};

function podOf(golden: string, cfg: GoldenConfig): Pod {
  const env = Object.entries(cfg.initEnv ?? {}).map(([name, value]) => ({ name, value }));
  return {
    kind: 'Pod',
    metadata: { namespace: 'default', name: golden, annotations: { ...BARE, ...cfg.annotations } },
    spec: { containers: [{ name: 'istio-proxy' }], initContainers: [{ name: 'istio-init', env }] },
    status: { podIPs: [{ ip: ADDRESSES.pod4 }, { ip: ADDRESSES.pod6 }] },
  };
}

function policyOf(golden: string, cfg: GoldenConfig) {
  const config: NodeConfig = { ...DEFAULT_CONFIG, ...cfg.config };
  return buildPolicy(podOf(golden, cfg), [], config);
}

const missing = iptablesAndBpfMissing();
const tally = { equal: 0, different: 0 };

test.before(() => reapLeftovers(missing));

test.after.always(async () => {
  await cleanupAll();
  console.log(`istio goldens: ${tally.equal} cases equal under Istio's rules and eBPF, ${tally.different} listed differences, ${Object.keys(REFUSED).length} refused, ${Object.keys(NOT_LOADED).length} not loaded`);
});

test('golden suite requirements are met', (t) => {
  t.is(missing, null);
});

for (const [golden, cfg] of Object.entries(REFUSED)) {
  test(`golden ${golden} is refused, naming ${cfg.setting}`, (t) => {
    const r = policyOf(golden, cfg);
    if (r.status !== 'rejected') return t.fail(`expected a refusal, got ${r.status}`);
    t.true(r.errors.some((e) => e.message.includes(cfg.setting)), r.errors.map((e) => e.message).join('; '));
  });
}

for (const [golden, cfg] of Object.entries(GOLDENS)) {
  test.serial(`eBPF equals Istio's golden ${golden}`, async (t) => {
    if (missing) return t.fail(missing);
    const built = policyOf(golden, cfg);
    if (built.status !== 'captured') return t.fail(`sluice does not capture with these settings: ${JSON.stringify(built)}`);
    const policy: CapturePolicy = built.policy;
    const rules = readGolden(golden);
    const families = [...(rules.ipv4 ? ['v4' as const] : []), ...(rules.ipv6 ? ['v6' as const] : [])];
    const id: Identity = { uid: policy.proxyUids[0]!, gid: policy.proxyGids[0]! };
    const vmIface = cfg.vmIface ?? 'eth1';
    const cases = goldenCases(golden, families, id, vmIface);
    const opts = { topology: { podIfname: 'eth0', vmIfname: vmIface } };
    const istio = await runPolicy(goldenBackend(golden), golden, policy, cases, opts);
    const ebpf = await runPolicy(ebpfBackend, golden, policy, cases, opts);
    // Every case is compared before asserting, so one run shows every mismatch.
    const unexpected: string[] = [];
    for (const c of cases) {
      const a = JSON.stringify(istio[c.id]!.observation);
      const b = JSON.stringify(ebpf[c.id]!.observation);
      const why = DIFFERENCES[c.id];
      if (why === undefined && a !== b) unexpected.push(`${c.id}: Istio ${a}, eBPF ${b}`);
      else if (why !== undefined && a === b) unexpected.push(`${c.id}: listed as a difference (${why}), but both give ${a}`);
      else if (why === undefined) tally.equal++;
      else tally.different++;
    }
    t.deepEqual(unexpected, [], unexpected.join('\n'));
  });
}

test.serial('every listed difference names a case that ran', (t) => {
  const goldens = new Set(Object.keys(GOLDENS));
  t.deepEqual(Object.keys(DIFFERENCES).filter((id) => !goldens.has(id.split('/')[0]!)), []);
});
