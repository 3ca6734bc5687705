// Issue 9, items 5 and 9, against real maps, programs and connections: what a daemon
// killed mid-apply or mid-remove leaves behind is never inherited by the next pod and is
// collected at startup, and a change that fails half-way leaves the pod exactly as it
// was (kernel and reconciler agree).
import test from 'ava';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { decodePodPolicy, decodePortKey, encodeAddrKey, encodePortKey, encodeU32, encodeU64, PORT_SET } from '../../src/bpf/codec.js';
import { buildPolicies, DEFAULT_CONFIG, type Pod } from '../../src/policy/index.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Reconciler } from '../../src/daemon/reconcile.js';
import { annotationNetns } from '../../src/sources/file-feed.js';
import { bpfRequirementsMissing, connect, createBpfSandbox, reapStale, startServer, type BpfSandbox, type TestServer } from './bpf-fixture.js';
import { makePolicy } from './harness/cases.js';
import { reapStaleNamespaces } from './harness/topology.js';

const missing = bpfRequirementsMissing();
const REMOTE = '10.2.0.5:80';

interface Env {
  box: BpfSandbox;
  servers: TestServer[];
}

async function withSandbox(t: { fail(m: string): void }, body: (e: Env) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  await reapStaleNamespaces();
  reapStale();
  const box = await createBpfSandbox();
  const e: Env = { box, servers: [] };
  try {
    e.servers.push(await startServer(box.cg, 'pod', box.topo.pod.path, [15001, 15006]));
    e.servers.push(await startServer(box.cg, 'peer', box.topo.peer.path, [80]));
    await body(e);
  } finally {
    await Promise.all(e.servers.map((s) => s.stop()));
    await box.destroy();
  }
}

const install = (e: Env, pods?: number) => BpfDataPlane.install({ cgroupDir: e.box.cg.path, bpffsDir: e.box.bpffs.path, ...(pods ? { capacity: { pods } } : {}) });
const app = (e: Env) => connect(e.box.cg, { netnsPath: e.box.topo.pod.path, dst: REMOTE, uid: 1000 });
const podIdOf = (dp: BpfDataPlane, cookie: bigint) => decodePodPolicy(dp.maps.lookup('sluice_pods', encodeU64(cookie))!).podId;
const portIds = (dp: BpfDataPlane) => dp.maps.keys('sluice_ports').map((k) => decodePortKey(k).podId);

test.serial('crash mid-apply or mid-remove: set entries left under a dead pod id are never inherited, and are collected at startup', async (t) => {
  await withSandbox(t, async (e) => {
    const first = install(e);
    // A daemon killed after writing a change's sets but before flipping the pod entry (or
    // after deleting a removed pod's entry but before its sets): port 80 excluded under
    // pod ids 1-3, which no pod entry refers to.
    for (const podId of [1, 2, 3]) first.maps.update('sluice_ports', encodePortKey({ podId, set: PORT_SET.OUT_EXCLUDE, port: 80 }), encodeU32(1));
    first.close();

    // The restarted daemon captures a new pod whose policy excludes nothing.
    const dp = install(e);
    try {
      const cookie = dp.cookieOf(e.box.topo.pod.path);
      dp.applyPolicy(cookie, makePolicy());
      t.false([1, 2, 3].includes(podIdOf(dp, cookie)), `the new pod got pod id ${podIdOf(dp, cookie)}, which orphan set entries carry`);
      const r = await app(e);
      t.true(r.ok && r.server.server === 'pod' && r.server.port === 15001, `port 80 is captured, not excluded by a dead pod's set: ${JSON.stringify(r)}`);

      t.deepEqual(dp.collectGarbage(), { sets: 3, addrs: 0 });
      t.deepEqual(portIds(dp).filter((id) => id <= 3), [], 'no set entry of a dead pod id is left');
      t.true((await app(e)).ok, 'the live pod is untouched by the collection');
    } finally {
      dp.close();
    }
  });
});

test.serial('a change that fails after staging leaves the pod as it was, in the kernel and in the reconciler', async (t) => {
  await withSandbox(t, async (e) => {
    const dp = install(e, 1); // --max-pods 1: sluice_addrs holds 8 addresses
    try {
      const metrics = new Metrics(() => dp);
      const r = new Reconciler(dp, dp, metrics, { info() {}, warn() {}, error() {} });
      const pod = (ips: string[], exclude?: string): Pod => ({
        kind: 'Pod',
        metadata: {
          name: 'app',
          namespace: 'default',
          annotations: { 'sidecar.istio.io/status': '{}', 'sluice.dev/netns': e.box.topo.pod.path, ...(exclude ? { 'traffic.sidecar.istio.io/excludeOutboundPorts': exclude } : {}) },
        },
        status: { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
      });
      const run = (p: Pod) => r.reconcile(buildPolicies([p], [], DEFAULT_CONFIG).map((result) => ({ result, netns: annotationNetns(p) })))[0]!;
      t.is(run(pod(['10.1.0.2', 'fd00::2'])).status, 'applied');
      const cookie = dp.listPolicies()[0]!;
      const before = dp.maps.lookup('sluice_pods', encodeU64(cookie))!;
      const portsBefore = portIds(dp);
      // The other 6 address slots are taken, so the change's address step fails after its
      // policy was staged.
      for (let i = 0; i < 6; i++) dp.maps.update('sluice_addrs', encodeAddrKey(`10.9.0.${i + 1}`), encodeU64(999n));

      const state = run(pod(['10.1.0.2', 'fd00::2', '10.1.0.3'], '80'));
      t.is(state.status, 'rejected');
      t.regex(state.error ?? '', /sluice_addrs is full/);
      t.deepEqual(state.policy?.excludeOutboundPorts, [], '/v1/pods shows the last good policy');
      t.true(dp.maps.lookup('sluice_pods', encodeU64(cookie))!.equals(before), 'the kernel holds the last good policy too');
      t.deepEqual(portIds(dp), portsBefore, 'the staged sets were removed, the old ones kept');
      t.is(dp.maps.lookup('sluice_addrs', encodeAddrKey('10.1.0.3')), null, 'no address of the failed change is left');
      const c = await app(e);
      t.true(c.ok && c.server.port === 15001, `port 80 is still captured: ${JSON.stringify(c)}`);
    } finally {
      dp.close();
    }
  });
});

test.serial('a netns that is gone is told apart from a live one by its sk_lookup link', async (t) => {
  await withSandbox(t, async (e) => {
    const dp = install(e);
    try {
      const cookie = dp.cookieOf(e.box.topo.pod.path);
      t.is(dp.netnsAlive(cookie), null, 'no link yet: cannot tell');
      dp.applyPolicy(cookie, makePolicy());
      t.true(dp.netnsAlive(cookie));
      await e.box.topo.destroy();
      let alive: boolean | null = true;
      for (let i = 0; i < 100 && alive; i++) {
        await new Promise((r) => setTimeout(r, 50)); // netns cleanup runs on a kernel worker
        alive = dp.netnsAlive(cookie);
      }
      t.false(alive, 'the link of a destroyed netns reports it gone');
    } finally {
      dp.close();
    }
  });
});
