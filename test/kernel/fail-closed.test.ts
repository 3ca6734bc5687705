// Issue 9, items 6 and 8, against real programs and connections: a connection whose
// original destination cannot be recorded never reaches the proxy looking like a
// connection to the proxy itself, one pod cannot fill the node's sluice_conns, and a
// pending pod's connects are held until its policy lands.
import test from 'ava';
import { createInterface } from 'node:readline';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { bpfRequirementsMissing, connect, createBpfSandbox, reapStale, spawnInCgroup, startServer, type BpfSandbox, type TestServer } from './bpf-fixture.js';
import { makePolicy } from './harness/cases.js';
import { reapStaleNamespaces } from './harness/topology.js';

const missing = bpfRequirementsMissing();
const EPERM = 1;

interface Env {
  box: BpfSandbox;
  dp: BpfDataPlane;
  cookie: bigint;
}

async function withPod(t: { fail(m: string): void }, capacity: { connections?: number }, body: (e: Env) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  await reapStaleNamespaces();
  reapStale();
  const box = await createBpfSandbox();
  const servers: TestServer[] = [];
  let dp: BpfDataPlane | null = null;
  try {
    servers.push(await startServer(box.cg, 'pod', box.topo.pod.path, [15001, 15006]));
    servers.push(await startServer(box.cg, 'peer', box.topo.peer.path, [80]));
    dp = BpfDataPlane.install({ cgroupDir: box.cg.path, bpffsDir: box.bpffs.path, capacity });
    await body({ box, dp, cookie: dp.cookieOf(box.topo.pod.path) });
  } finally {
    dp?.close();
    await Promise.all(servers.map((s) => s.stop()));
    await box.destroy();
  }
}

const app = (e: Env) => connect(e.box.cg, { netnsPath: e.box.topo.pod.path, dst: '10.2.0.5:80', uid: 1000 });
const counter = (e: Env, name: string) => e.dp.readCounters()[name] ?? 0n;
const conns = (e: Env) => e.dp.mapUsage().find((u) => u.map === 'sluice_conns')!.entries;

/** An app (uid 1000) that opens `n` captured connections and holds them until killed. */
async function holdConnections(e: Env, n: number): Promise<{ release(): Promise<void> }> {
  const script = `
import encodings.idna, os, socket, time
os.setgid(1000); os.setuid(1000)
held = [socket.create_connection(('10.2.0.5', 80)) for _ in range(${n})]
print(len(held), flush=True)
time.sleep(120)
`;
  const child = spawnInCgroup(e.box.cg, 'nsenter', [`--net=${e.box.topo.pod.path}`, 'python3', '-c', script]);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`holding client exited ${code}: ${stderr}`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    async release() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

async function until(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial("a pod at its quota of records gets EPERM on its next captured connect, and others' records are unaffected", async (t) => {
  await withPod(t, {}, async (e) => {
    e.dp.applyPolicy(e.cookie, makePolicy());
    e.dp.setConnQuota(2);
    const held = await holdConnections(e, 2);
    try {
      t.is(e.dp.connCount(e.cookie), 2n);
      const refused = await app(e);
      t.false(refused.ok, 'the third connection is refused');
      t.is(refused.ok ? 0 : refused.errno, EPERM, `EPERM: ${JSON.stringify(refused)}`);
      t.is(counter(e, 'conn_quota_refused'), 1n);
      t.is(conns(e), 2, 'no record was written for it');
    } finally {
      await held.release();
    }
    await until('the records of closed connections to go', () => conns(e) === 0 && e.dp.connCount(e.cookie) === 0n);
    const again = await app(e);
    t.true(again.ok && again.server.port === 15001 && again.server.origDst === '10.2.0.5:80', `under the quota again: ${JSON.stringify(again)}`);
  });
});

test.serial("a full sluice_conns fails closed: the proxy's SO_ORIGINAL_DST errs instead of naming the proxy itself", async (t) => {
  await withPod(t, { connections: 1 }, async (e) => {
    e.dp.applyPolicy(e.cookie, makePolicy());
    e.dp.setConnQuota(0); // no per-pod limit: the node's table itself fills up
    const held = await holdConnections(e, 1);
    try {
      t.is(conns(e), 1, 'the map is full');
      const r = await app(e);
      t.true(r.ok, `the connection still reaches the proxy: ${JSON.stringify(r)}`);
      if (!r.ok) return;
      t.is(r.server.port, 15001);
      t.not(r.server.origDst, '10.1.0.2:15001', 'never the proxy’s own address (it would loop)');
      t.is(r.server.origDst, null, 'SO_ORIGINAL_DST fails, as with no conntrack entry');
      t.true(counter(e, 'conn_map_full') >= 1n);
      t.true(counter(e, 'orig_dst_unrecorded') >= 1n);
    } finally {
      await held.release();
    }
  });
});

test.serial('a pending netns (--hold-unknown) has its connects refused until its policy lands', async (t) => {
  await withPod(t, {}, async (e) => {
    const before = await app(e);
    t.true(before.ok && before.server.server === 'peer', 'no policy, not pending: not captured');
    e.dp.markPending(e.cookie);
    const held = await app(e);
    t.false(held.ok, 'pending: refused');
    t.is(held.ok ? 0 : held.errno, EPERM);
    t.is(counter(e, 'connect_pending'), 1n);
    e.dp.applyPolicy(e.cookie, makePolicy());
    t.deepEqual(e.dp.pendingNetns(), [], 'the policy landing releases the hold');
    const after = await app(e);
    t.true(after.ok && after.server.port === 15001 && after.server.origDst === '10.2.0.5:80', JSON.stringify(after));
  });
});
