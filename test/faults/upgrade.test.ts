// Fault suite (issue 9): upgrade under load to a build whose maps differ (one counter more
// in sluice_counters, a grown sluice_pod_policy in sluice_pods: bpf/ built with
// -DSLUICE_UPGRADE_VARIANT into a scratch directory). The new daemon migrates the maps in
// place (src/bpf/migrate.ts) while one client connects out of pod0 and one into it as fast
// as they can. Every reply is checked (listener and SO_ORIGINAL_DST). A pod's tc reroute
// filters (KubeVirt) move to the new build with the maps.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { COUNTER, decodePodPolicy, decodeU64, encodeU32, LAYOUTS } from '../../src/bpf/codec.js';
import { SluiceMaps } from '../../src/bpf/maps.js';
import { recoverMigration } from '../../src/bpf/migrate.js';
import { netnsCookie } from '../../src/bpf/netns.js';
import { bpfRequirementsMissing, createBpfSandbox } from '../kernel/bpf-fixture.js';
import { createWorld, killAllDaemons, reapStaleWorld, sourceYaml, startDaemon, waitFor } from '../kernel/harness/daemon.js';
import { probeConnect, startServer, stopAllServers } from '../kernel/harness/probe.js';
import { destroyAllTopologies } from '../kernel/harness/topology.js';
import { makePolicy } from '../support/policy.js';
import { runClient } from './load-client.js';

const missing = bpfRequirementsMissing();
const LOAD_SECONDS = 25;
const REPO = join(import.meta.dirname, '..', '..');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bpftool = <T>(...args: string[]): T => JSON.parse(execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8' })) as T;
const pinnedId = (path: string) => bpftool<{ id: number }>(path.includes('/links/') ? 'link' : 'map', 'show', 'pinned', path).id;
const linkProg = (path: string) => bpftool<{ prog_id: number }>('link', 'show', 'pinned', path).prog_id;
const progMaps = (id: number) => bpftool<{ map_ids?: number[] }>('prog', 'show', 'id', String(id)).map_ids ?? [];
const mapExists = (id: number) => {
  try {
    execFileSync('bpftool', ['map', 'show', 'id', String(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

let variantDir: string | null = null;

/** bpf/ built with -DSLUICE_UPGRADE_VARIANT into a scratch directory (never bpf/build), once. */
function buildVariant(): string {
  if (variantDir) return variantDir;
  const out = mkdtempSync(join(tmpdir(), `sluice-test-${process.pid}-variant-`));
  variantDir = out;
  const arch = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
  execFileSync('make', ['-s', '-C', join(REPO, 'bpf'), `BUILD=${out}`, `CFLAGS=-O2 -g -target bpf -Wall -Werror -I. -I/usr/include/${arch}-linux-gnu -DSLUICE_UPGRADE_VARIANT`], { stdio: 'pipe' });
  return out;
}

/** The programs of the tc filters on `dev` in the netns at `netnsPath`, by direction. */
function filterProgs(netnsPath: string, dev: string): Record<string, number> {
  const out = JSON.parse(execFileSync('nsenter', [`--net=${netnsPath}`, 'bpftool', '-j', 'net', 'show', 'dev', dev], { encoding: 'utf8' })) as unknown;
  const tc = (Array.isArray(out) ? out : [out]).flatMap((o: { tc?: { kind: string; id: number }[] }) => o.tc ?? []);
  return Object.fromEntries(tc.map((f) => [f.kind, f.id]));
}

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(async () => {
  await killAllDaemons();
  await stopAllServers();
  await destroyAllTopologies();
  if (variantDir) rmSync(variantDir, { recursive: true, force: true });
});

test.serial(`upgrade to a build with other maps under ${LOAD_SECONDS} s of load: migrated in place, 0 failed or mis-steered`, async (t) => {
  if (missing) return t.fail(missing);
  const variant = buildVariant();
  const w = await createWorld(2);
  try {
    w.replace(sourceYaml(w.pods.map((p, i) => ({ name: `pod${i}`, netns: p.pod.path }))));
    const base = { source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs: ['--resync', '0.5'] };
    const d = await startDaemon(base);
    await waitFor('/readyz', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 15_000);

    const maps = join(w.bpffs, 'maps');
    const netnsLinks = w.pods.map((p) => join(w.bpffs, 'links', 'netns', netnsCookie(p.pod.path).toString()));
    const before = SluiceMaps.open(w.bpffs);
    const shape = { counters: before.info('sluice_counters').maxEntries, pods: before.info('sluice_pods').valueSize };
    const oldIds = { counters: pinnedId(join(maps, 'sluice_counters')), pods: pinnedId(join(maps, 'sluice_pods')) };
    const oldProgs = netnsLinks.map(linkProg);
    const policyBefore = new Map(before.keys('sluice_pods').map((k) => [decodeU64(k), { ...decodePodPolicy(before.lookup('sluice_pods', k)!), podId: 0 }]));
    t.is(policyBefore.size, 2);

    const load = Promise.all([
      runClient(w, w.pods[0]!.pod.path, ['10.2.0.5', '80', 'pod0', '15001', '10.2.0.5:80', String(LOAD_SECONDS), '1000']),
      runClient(w, w.pods[0]!.peer.path, ['10.1.0.2', '8080', 'pod0', '15006', '10.1.0.2:8080', String(LOAD_SECONDS), '0']),
    ]);
    await sleep(5000);
    const countersBefore = before.counters();
    before.close();
    // A rolling update: the new daemon waits for the pin lock, the old one stops.
    const next = startDaemon({ ...base, extraArgs: [...base.extraArgs, '--bpf-objects', variant] });
    await sleep(1000);
    await d.stop();
    const d2 = await next;
    await waitFor('/readyz', async () => ((await d2.get('/readyz')).status === 200 ? true : undefined), 20_000);
    const results = await load;
    const migrated = d2.output().split('\n').find((l) => l.includes('migrated maps'));
    t.log(`replies: ${JSON.stringify(results)}; ${migrated ? JSON.parse(migrated).msg : 'no migration logged'}`);
    for (const [i, r] of results.entries()) {
      t.is(r.failed, 0, `client ${i}: failed connections: ${r.seen.join(' | ')}`);
      t.is(r.wrong, 0, `client ${i}: mis-steered replies: ${r.seen.join(' | ')}`);
      t.true(r.ok > 100, `client ${i}: only ${r.ok} connections in ${LOAD_SECONDS} s`);
    }

    const after = SluiceMaps.open(w.bpffs);
    try {
      t.is(after.info('sluice_counters').maxEntries, shape.counters + 1, 'the new build has one counter more');
      t.is(after.info('sluice_pods').valueSize, shape.pods + 8, 'and a grown pod policy');
      const countersAfter = after.counters();
      const carried = Object.entries(countersBefore).filter(([k, v]) => countersAfter[k]! < v);
      t.deepEqual(carried, [], 'every counter kept its count (and went on counting)');
      t.true(countersAfter.orig_dst_record! > countersBefore.orig_dst_record!, 'counted on in the new map');
      const extra = after.lookup('sluice_counters', encodeU32(COUNTER.MAX));
      t.true(extra !== null && extra.equals(Buffer.alloc(extra.length)), 'the new counter starts at 0');
      // The kernel holds the policy, one pod each, with the grown tail zero.
      const cookies = w.pods.map((p) => netnsCookie(p.pod.path));
      const pods = new Map(after.keys('sluice_pods').map((k) => [decodeU64(k), after.lookup('sluice_pods', k)!]));
      t.deepEqual([...pods.keys()].sort(), [...cookies].sort());
      for (const [cookie, v] of pods) {
        t.deepEqual({ ...decodePodPolicy(v), podId: 0 }, policyBefore.get(cookie), 'the policy as before the upgrade');
        t.true(v.subarray(LAYOUTS.sluice_pod_policy.size).equals(Buffer.alloc(8)), 'the new tail is zero');
      }
    } finally {
      after.close();
    }
    // The pins name the new maps; the per-netns sk_lookup links run a new entry that uses them.
    const newIds = { counters: pinnedId(join(maps, 'sluice_counters')), pods: pinnedId(join(maps, 'sluice_pods')) };
    t.not(newIds.counters, oldIds.counters);
    t.not(newIds.pods, oldIds.pods);
    t.false(existsSync(join(w.bpffs, 'migrate')), 'no migration left pinned');
    for (const [i, link] of netnsLinks.entries()) {
      const prog = linkProg(link);
      t.not(prog, oldProgs[i], `pod${i}: the sk_lookup link runs another program`);
      t.true(progMaps(prog).includes(newIds.counters), `pod${i}: its program uses the new sluice_counters`);
    }
    await waitFor('old maps freed', async () => (!mapExists(oldIds.counters) && !mapExists(oldIds.pods) ? true : undefined), 10_000);
  } finally {
    await killAllDaemons();
    await w.destroy();
  }
});

// The tc reroute filters of a KubeVirt pod run a program bound to the maps. A migration
// that leaves them alone leaves them on the old maps: a forwarded VM connection is then
// counted where nobody reads, the policy they read never changes again, and the old maps
// are never freed. They must move with the sk_lookup links, before the commit.
test.serial('a migration moves the tc reroute filters to the new build, bound to the new maps', async (t) => {
  if (missing) return t.fail(missing);
  const variant = buildVariant();
  const box = await createBpfSandbox({ podIfname: 'eth0', vmIfname: 'eth1' });
  const { topo, cg } = box;
  const maps = join(box.bpffs.path, 'maps');
  let dp: BpfDataPlane | null = null;
  const vmConnect = async () => {
    const r = await probeConnect({ netnsPath: topo.vm!.path, cgroupPath: cg.path, dst: '10.2.0.5:80', timeoutMs: 2000 });
    if (!r.ok) throw new Error(`the VM's connection failed: ${r.error}`);
    return r;
  };
  try {
    await startServer({ name: 'pod', netnsPath: topo.pod.path, cgroupPath: cg.path, tcp: [15001], udp: [] });
    dp = BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: box.bpffs.path });
    const cookie = dp.cookieOf(topo.pod.path);
    dp.applyPolicy(cookie, makePolicy({ rerouteInterfaces: ['eth1'] }));
    t.like(await vmConnect(), { server: { server: 'pod', port: 15001, origDst: '10.2.0.5:80' } });
    const oldProgs = filterProgs(topo.pod.path, 'eth1');
    t.deepEqual(Object.keys(oldProgs).sort(), ['clsact/egress', 'clsact/ingress']);
    const oldIds = { counters: pinnedId(join(maps, 'sluice_counters')), pods: pinnedId(join(maps, 'sluice_pods')) };
    dp.close();
    dp = null;

    // The new daemon's start: install only, no apply yet (the filters must not wait for one).
    dp = BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: box.bpffs.path, objectDir: variant });
    const newIds = { counters: pinnedId(join(maps, 'sluice_counters')), pods: pinnedId(join(maps, 'sluice_pods')) };
    t.not(newIds.counters, oldIds.counters, 'the maps were migrated');
    const progs = filterProgs(topo.pod.path, 'eth1');
    for (const [kind, id] of Object.entries(progs)) {
      t.not(id, oldProgs[kind], `${kind}: the filter runs another program`);
      const ids = progMaps(id);
      t.true(ids.includes(newIds.pods) && !ids.includes(oldIds.pods) && !ids.includes(oldIds.counters), `${kind}: bound to the new maps (${ids.join(', ')})`);
    }
    t.deepEqual(Object.keys(progs).sort(), Object.keys(oldProgs).sort(), 'one filter each way still');

    const before = dp.readCounters()['captured:inbound.1']!;
    t.like(await vmConnect(), { server: { server: 'pod', port: 15001, origDst: '10.2.0.5:80' } });
    t.is(dp.readCounters()['captured:inbound.1'], before + 1n, 'the forwarded connection is counted in the new sluice_counters');
    await waitFor('old maps freed', async () => (!mapExists(oldIds.counters) && !mapExists(oldIds.pods) ? true : undefined), 10_000);
  } finally {
    dp?.close();
    await stopAllServers();
    await box.destroy();
  }
});

// A kill -9 mid-migration leaves <bpffs>/migrate/: the next start (under the pin lock)
// drops it when the commit mark is missing (the old maps are still pinned and served), and
// completes it when the mark is there (every link already runs the new maps).
test.serial('an interrupted migration is rolled back before its commit mark and forward after it', (t) => {
  const root = `/sys/fs/bpf/sluice-test-${process.pid}-migrate`;
  const map = (path: string) => {
    execFileSync('bpftool', ['map', 'create', path, 'type', 'array', 'key', '4', 'value', '8', 'entries', '2', 'name', 'sluice_t']);
    return pinnedId(path);
  };
  try {
    for (const committed of [false, true]) {
      execFileSync('mkdir', ['-p', join(root, 'maps'), join(root, 'migrate')]);
      const oldId = map(join(root, 'maps', 'sluice_counters'));
      const newId = map(join(root, 'migrate', 'sluice_counters'));
      if (committed) execFileSync('bpftool', ['map', 'pin', 'id', String(newId), join(root, 'migrate', 'committed')]);
      t.is(recoverMigration(root, join(root, 'maps')), committed ? 'rolled-forward' : 'rolled-back');
      t.is(pinnedId(join(root, 'maps', 'sluice_counters')), committed ? newId : oldId);
      t.false(existsSync(join(root, 'migrate')));
      t.is(recoverMigration(root, join(root, 'maps')), 'none');
      rmSync(join(root, 'maps'), { recursive: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
