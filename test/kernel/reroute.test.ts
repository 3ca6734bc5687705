// Reroute (KubeVirt) interfaces in the kernel: the tc programs follow the pod's policy
// (attached to its reroute interfaces inside its netns, detached when the policy drops
// them or goes), count their decisions, and never run tc in the daemon's own netns.
// Outcomes (listener, SO_ORIGINAL_DST, sources) are checked against Istio's own rules in
// golden.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import test from 'ava';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { progPinPath, REROUTE_TC_PREF, RerouteAttachments, TC_REROUTE_PROGRAMS } from '../../src/bpf/tc.js';
import { bpfRequirementsMissing, createBpffsDir, createCgroup } from './bpf-fixture.js';
import { makePolicy } from './harness/cases.js';
import { probeConnect, startServer, stopAllServers } from './harness/probe.js';
import { reapStaleWorld } from './harness/daemon.js';
import { createTopology, destroyAllTopologies, type Topology } from './harness/topology.js';

const missing = bpfRequirementsMissing();

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(async () => {
  await stopAllServers();
  await destroyAllTopologies();
});

function ourFilters(topo: Topology, dev: string): string[] {
  return ['ingress', 'egress'].filter((dir) =>
    execFileSync('ip', ['netns', 'exec', topo.pod.name, 'tc', 'filter', 'show', 'dev', dev, dir], { encoding: 'utf8' }).includes(`pref ${REROUTE_TC_PREF} `),
  );
}

test('tc is never run in the daemon’s own network namespace', (t) => {
  const err = t.throws(() => new RerouteAttachments({ bpffsDir: '/nonexistent' }).sync(1n, '/proc/self/ns/net', ['eth0']));
  t.is((err as { code?: string }).code, 'REROUTE_ATTACH_FAILED');
});

test.serial('the reroute filters follow the policy, and their decisions are counted', async (t) => {
  if (missing) return t.fail(missing);
  const topo = await createTopology({ podIfname: 'eth0', vmIfname: 'eth1' });
  const cg = createCgroup();
  const fs = createBpffsDir();
  let dp: BpfDataPlane | null = null;
  try {
    await startServer({ name: 'pod', netnsPath: topo.pod.path, cgroupPath: cg.path, tcp: [15001], udp: [] });
    dp = BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: fs.path });
    const cookie = dp.cookieOf(topo.pod.path);
    const pins = TC_REROUTE_PROGRAMS.map((p) => progPinPath(fs.path, cookie, p));

    dp.applyPolicy(cookie, makePolicy({ rerouteInterfaces: ['eth1', 'eth9'] }));
    t.deepEqual(ourFilters(topo, 'eth1'), ['ingress', 'egress'], 'attached to the reroute interface');
    t.deepEqual(ourFilters(topo, 'eth0'), [], 'and to nothing else');
    t.true(pins.every(existsSync));

    const r = await probeConnect({ netnsPath: topo.vm!.path, cgroupPath: cg.path, dst: '10.2.0.5:80', timeoutMs: 2000 });
    if (!r.ok) return t.fail(`the VM's connection failed: ${r.error}`);
    t.like(r, { clientPeer: '10.2.0.5:80', server: { server: 'pod', port: 15001, origDst: '10.2.0.5:80' } });
    t.true(r.server.peer.startsWith('10.3.0.2:'), r.server.peer);
    t.is(dp.readCounters()['captured:inbound.1'], 1n);

    dp.applyPolicy(cookie, makePolicy({ rerouteInterfaces: [] }));
    t.deepEqual(ourFilters(topo, 'eth1'), [], 'detached when the policy drops the interface');
    t.false(pins.some(existsSync));

    dp.applyPolicy(cookie, makePolicy({ rerouteInterfaces: ['eth1'] }));
    t.deepEqual(ourFilters(topo, 'eth1'), ['ingress', 'egress']);
    dp.removePolicy(cookie);
    t.deepEqual(ourFilters(topo, 'eth1'), [], 'detached when the pod goes');
    t.false(pins.some(existsSync));
  } finally {
    dp?.close();
    await stopAllServers();
    fs.destroy();
    await cg.destroy();
    await topo.destroy();
  }
});
