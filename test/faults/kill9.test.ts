// Fault suite (issue 9): kill -9 the daemon at random moments, some right after a source
// edit (while it reconciles), while 2 clients connect as fast as they can for 30 s. Every
// reply is checked: it must come from the pod's own outbound listener with the original
// destination. Then the kernel state after a last restart must equal the policy.
//
// Both clients run in pod0: every world pod has the address 10.1.0.2, and records of
// connections to a pod address are keyed without the netns (pod addresses are unique on
// a real node), so two pods sharing one would overwrite each other's records.
import test from 'ava';
import { decodePodPolicy, decodePortKey, decodeU64, PORT_SET } from '../../src/bpf/codec.js';
import { SluiceMaps } from '../../src/bpf/maps.js';
import { netnsCookie } from '../../src/bpf/netns.js';
import { bpfRequirementsMissing } from '../kernel/bpf-fixture.js';
import { createWorld, killAllDaemons, reapStaleWorld, sourceYaml, startDaemon, waitFor, type Daemon } from '../kernel/harness/daemon.js';
import { spawnDaemon } from '../kernel/harness/spawn-daemon.js';
import { runClient } from './load-client.js';

const missing = bpfRequirementsMissing();
const LOAD_SECONDS = 30;
const EXCLUDE_PORTS = 'traffic.sidecar.istio.io/excludeOutboundPorts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(() => killAllDaemons());


test.serial(`kill -9 at random moments, mid-reconcile included, under ${LOAD_SECONDS} s of load: 0 failed or mis-steered, and the kernel equals the policy`, async (t) => {
  if (missing) return t.fail(missing);
  const w = await createWorld(2);
  try {
    let generation = 0;
    const write = () => {
      generation++;
      w.replace(sourceYaml(w.pods.map((p, i) => ({ name: `pod${i}`, netns: p.pod.path, annotations: { [EXCLUDE_PORTS]: String(9000 + generation + i) } }))));
    };
    write();
    const start = () => startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs: ['--resync', '0.5'] });
    let d: Daemon = await start();
    await waitFor('/readyz', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 15_000);

    const client = ['10.2.0.5', '80', 'pod0', '15001', '10.2.0.5:80', String(LOAD_SECONDS), '1000'];
    const load = Promise.all([runClient(w, w.pods[0]!.pod.path, client), runClient(w, w.pods[0]!.pod.path, client)]);
    await d.kill9();
    const until = Date.now() + LOAD_SECONDS * 1000 - 3000;
    let kills = 1;
    let midReconcile = 0;
    while (Date.now() < until) {
      // A bare daemon (no wait for /healthz), killed at a random moment of its start
      // (install, adoption, garbage collection, the first reconcile), or once it has
      // attached, right after a source edit: inside the watcher's debounce and the
      // reconcile that follows.
      const bare = await spawnDaemon(w, []);
      if (Math.random() < 0.5) {
        await waitFor('attached', async () => (bare.logs().some((l) => l.msg === 'data plane attached') ? true : undefined), 20_000).catch(() => {});
        write();
        await sleep(40 + Math.random() * 160);
        midReconcile++;
      } else {
        await sleep(Math.random() * 4000);
      }
      await bare.kill();
      kills++;
    }
    d = await start();
    const results = await load;
    t.log(`${kills} kills (${midReconcile} right after an edit); replies: ${JSON.stringify(results)}`);
    for (const [i, r] of results.entries()) {
      t.is(r.failed, 0, `client ${i}: failed connections: ${r.seen.join(' | ')}`);
      t.is(r.wrong, 0, `client ${i}: mis-steered replies: ${r.seen.join(' | ')}`);
      t.true(r.ok > 100, `client ${i}: only ${r.ok} connections in ${LOAD_SECONDS} s`);
    }
    t.true(kills >= 3, `only ${kills} kills`); // a daemon start takes seconds on a loaded 2-core machine

    // The last daemon, ready: the kernel holds exactly the source's policy.
    await waitFor('/readyz', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 15_000);
    await sleep(1500); // a resync after the last write
    const maps = SluiceMaps.open(w.bpffs);
    try {
      const cookies = w.pods.map((p) => netnsCookie(p.pod.path));
      const pods = new Map(maps.keys('sluice_pods').map((k) => [decodeU64(k), decodePodPolicy(maps.lookup('sluice_pods', k)!)]));
      t.deepEqual([...pods.keys()].sort(), [...cookies].sort(), 'one policy per pod, nothing else');
      const ids = new Set([...pods.values()].map((v) => v.podId));
      const ports = maps.keys('sluice_ports').map((k) => decodePortKey(k));
      t.deepEqual(ports.filter((k) => !ids.has(k.podId)), [], 'no set entry of a dead pod id');
      for (const [i, cookie] of cookies.entries()) {
        const excluded = ports.filter((k) => k.podId === pods.get(cookie)!.podId && k.set === PORT_SET.OUT_EXCLUDE).map((k) => k.port);
        t.deepEqual(excluded, [9000 + generation + i], `pod${i}: the last edit's excluded port`);
      }
      t.deepEqual(maps.keys('sluice_pending'), []);
      await waitFor('no record left', async () => (maps.count('sluice_conns') === 0 ? true : undefined), 5000);
    } finally {
      maps.close();
    }
  } finally {
    await killAllDaemons();
    await w.destroy();
  }
});
