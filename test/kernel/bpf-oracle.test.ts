// The eBPF data plane against decide(): every oracle case (the same cases the iptables
// oracle runs) plus cases for the policy fields only sluice's maps carry (interfaces,
// include ports, Sidecar binds, loopback include CIDRs, proxy gids). Each connection is
// real; its observation must equal what decide(istioQuirks: false) predicts.
import test from 'ava';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { decide } from '../../src/policy/decide.js';
import type { CapturePolicy, Connection } from '../../src/policy/types.js';
import { bpfRequirementsMissing, connect, createBpfSandbox, reapStale, startServer, type TestServer } from './bpf-fixture.js';
import { CASES, makePolicy, POLICIES, type OracleCase } from './harness/cases.js';
import { expectedObservation, observationOf } from './harness/observe.js';
import { serverPorts } from './harness/runner.js';
import { ADDRESSES, reapStaleNamespaces, type Topology } from './harness/topology.js';

const missing = bpfRequirementsMissing();

interface PolicyRun {
  policy: CapturePolicy;
  /** Cases, given the topology (some name its interfaces). */
  cases: (topo: Topology) => OracleCase[];
}

const A = ADDRESSES;

function out(policyName: string, name: string, dst: string, port: number, who: { uid?: number; gid?: number; src?: string; iface?: string } = {}): OracleCase {
  const uid = who.uid ?? 1000;
  const gid = who.gid ?? uid;
  const conn: Connection = { direction: 'outbound', protocol: 'tcp', dst: { ip: dst, port }, uid, gid, ...(who.src ? { src: who.src } : {}), ...(who.iface ? { interface: who.iface } : {}) };
  return { id: `${policyName}/${name}`, policyName, conn, client: { netns: 'pod', uid, gid, ...(who.src ? { src: who.src } : {}) } };
}

function udp(c: OracleCase): OracleCase {
  return { ...c, conn: { ...c.conn, protocol: 'udp' } };
}

function inb(policyName: string, name: string, dst: string, port: number, src: string, iface?: string): OracleCase {
  const conn: Connection = { direction: 'inbound', protocol: 'tcp', dst: { ip: dst, port }, src, ...(iface ? { interface: iface } : {}) };
  return { id: `${policyName}/${name}`, policyName, conn, client: { netns: 'peer' } };
}

/** Policies the shared oracle does not cover: the parts of the maps it never exercises. */
const EXTRA: Record<string, PolicyRun> = {
  'include-outbound-ports': {
    policy: makePolicy({ includeOutboundIPRanges: [], includeOutboundPorts: [8080] }),
    cases: () => [out('include-outbound-ports', 'included-port', A.remote4, 8080), out('include-outbound-ports', 'other-port', A.remote4, 80), out('include-outbound-ports', 'included-port-v6', A.remote6, 8080)],
  },
  'exclude-binds': {
    policy: makePolicy({ excludeOutboundBinds: [{ address: A.remote4, port: 8080 }, { address: A.remote6, port: null }] }),
    cases: () => [out('exclude-binds', 'bind-port', A.remote4, 8080), out('exclude-binds', 'other-port', A.remote4, 80), out('exclude-binds', 'bind-any-port-v6', A.remote6, 80)],
  },
  'loopback-include': {
    policy: makePolicy({ includeOutboundIPRanges: ['127.0.0.0/8', '10.2.0.0/16'] }),
    cases: () => [
      out('loopback-include', 'app-127.0.0.6', '127.0.0.6', 8080),
      out('loopback-include', 'app-loop-host', '127.0.0.1', 8080),
      out('loopback-include', 'app-own-pod-ip', A.pod4, 8080),
      out('loopback-include', 'app-remote', A.remote4, 80),
      out('loopback-include', 'app-remote-v6-not-included', A.remote6, 80),
    ],
  },
  'exclude-pod-interface': {
    policy: makePolicy(),
    cases: (topo) => [
      out('exclude-pod-interface', 'app-remote', A.remote4, 80, { iface: topo.pod.ifname }),
      out('exclude-pod-interface', 'app-remote-v6', A.remote6, 80, { iface: topo.pod.ifname }),
      out('exclude-pod-interface', 'proxy-hairpin', A.pod4, 8080, { uid: 1337, src: A.pod4 }),
      inb('exclude-pod-interface', 'inbound-app-port', A.pod4, 8080, A.peer4, topo.pod.ifname),
    ],
  },
  // Step 1 on the DNS path: port-53 traffic that leaves by an excluded interface passes.
  'exclude-pod-interface-dns': {
    policy: makePolicy({ dnsCapture: true }),
    cases: (topo) => [
      out('exclude-pod-interface-dns', 'app-dns-tcp', A.remote4, 53, { iface: topo.pod.ifname }),
      udp(out('exclude-pod-interface-dns', 'app-dns-udp', A.remote4, 53, { iface: topo.pod.ifname })),
      udp(out('exclude-pod-interface-dns', 'app-dns-udp-v6', A.remote6, 53, { iface: topo.pod.ifname })),
    ],
  },
  'exclude-loopback-interface': {
    policy: makePolicy({ excludeInterfaces: ['lo'] }),
    cases: () => [out('exclude-loopback-interface', 'proxy-hairpin', A.pod4, 8080, { uid: 1337, src: A.pod4 }), out('exclude-loopback-interface', 'app-remote', A.remote4, 80)],
  },
  'reroute-interface': {
    policy: makePolicy(),
    cases: (topo) => [inb('reroute-interface', 'inbound-app-port', A.pod4, 8080, A.peer4, topo.pod.ifname), inb('reroute-interface', 'inbound-app-port-v6', A.pod6, 8080, A.peer6, topo.pod.ifname)],
  },
  'two-proxy-gids': {
    policy: makePolicy({ proxyGids: [1337, 2000] }),
    cases: () => [
      out('two-proxy-gids', 'second-gid-hairpin', A.pod4, 8080, { uid: 0, gid: 2000 }),
      out('two-proxy-gids', 'second-gid-remote', A.remote4, 80, { uid: 0, gid: 2000 }),
      out('two-proxy-gids', 'gid-only-tunnel-port', A.pod4, 15008, { uid: 0, gid: 2000 }),
    ],
  },
};

/** Per-topology policy fields: interface names exist only once the topology does. */
function bindTopology(name: string, policy: CapturePolicy, topo: Topology): CapturePolicy {
  if (name === 'exclude-pod-interface' || name === 'exclude-pod-interface-dns') return { ...policy, excludeInterfaces: [topo.pod.ifname] };
  if (name === 'reroute-interface') return { ...policy, rerouteInterfaces: [topo.pod.ifname] };
  return policy;
}

const RUNS: Record<string, PolicyRun> = {
  ...Object.fromEntries(Object.entries(POLICIES).map(([name, policy]) => [name, { policy, cases: () => CASES.filter((c) => c.policyName === name) }])),
  ...EXTRA,
};

test.before(async () => {
  if (missing) return;
  await reapStaleNamespaces();
  reapStale();
});

let checked = 0;
let udpDnsCaptured = 0;

test.after.always(() => {
  console.log(`bpf oracle: ${checked} cases matched decide(istioQuirks: false), ${udpDnsCaptured} of them UDP DNS captures`);
});

test.serial('BPF kernel test requirements are met', (t) => {
  t.is(missing, null);
});

for (const [name, run] of Object.entries(RUNS)) {
  test.serial(`eBPF matches decide(): policy ${name}`, async (t) => {
    if (missing) return t.fail(missing);
    const box = await createBpfSandbox();
    const { topo, cg, bpffs } = box;
    const servers: TestServer[] = [];
    let dp: BpfDataPlane | null = null;
    try {
      const policy = bindTopology(name, run.policy, topo);
      const cases = run.cases(topo).map((c) => ({ ...c, policyName: name }));
      const ports = serverPorts(policy, cases);
      servers.push(await startServer(cg, 'pod', topo.pod.path, ports.podTcp, ports.podUdp));
      servers.push(await startServer(cg, 'peer', topo.peer.path, ports.peerTcp, ports.peerUdp));
      dp = BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: bpffs.path });
      dp.applyPolicy(dp.cookieOf(topo.pod.path), policy);
      for (const c of cases) {
        const ns = c.client.netns === 'pod' ? topo.pod : topo.peer;
        const dst = c.conn.dst.ip.includes(':') ? `[${c.conn.dst.ip}]:${c.conn.dst.port}` : `${c.conn.dst.ip}:${c.conn.dst.port}`;
        const raw = await connect(cg, {
          netnsPath: ns.path,
          dst,
          udp: c.conn.protocol === 'udp',
          tag: c.id,
          ...(c.client.src !== undefined ? { src: c.client.src } : {}),
          ...(c.client.uid !== undefined ? { uid: c.client.uid } : {}),
          ...(c.client.gid !== undefined ? { gid: c.client.gid } : {}),
        });
        const decision = decide(policy, c.conn, { istioQuirks: false });
        const expected = expectedObservation(policy, c, decision);
        t.deepEqual(observationOf(raw), expected, `${c.id}: decide() says ${decision.outcome} (${decision.step})`);
        checked++;
        if (c.conn.protocol === 'udp' && decision.outcome === 'dns-proxy') udpDnsCaptured++;
      }
    } finally {
      dp?.close();
      await Promise.all(servers.map((s) => s.stop()));
      await box.destroy();
    }
  });
}

test.serial('the DNS policy captured UDP DNS (the cases above are not vacuous)', (t) => {
  t.true(udpDnsCaptured >= 4, `${udpDnsCaptured} UDP DNS captures checked`);
});
