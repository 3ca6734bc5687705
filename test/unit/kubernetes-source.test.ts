// The kubernetes source against a local API double that speaks list/watch over HTTP.
import test from 'ava';
import { linkSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG } from '../../src/policy/config.js';
import { kubernetesFeed } from '../../src/sources/kubernetes/feed.js';
import type { Feed, PodRecord } from '../../src/sources/record.js';
import { KubeApiDouble } from '../support/kube-api.js';

const NODE = 'node-a';
const UID_A = '0f6c1a52-7d1e-4b8e-9a51-1c2d3e4f5a6b';
const UID_B = '7e0a9b1c-2d3e-4f50-8a61-b2c3d4e5f607';
const UID_OTHER = '11111111-2222-3333-4444-555555555555';

function pod(name: string, uid: string, extra: { node?: string; annotations?: Record<string, string>; hostNetwork?: boolean; labels?: Record<string, string> } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', uid, labels: extra.labels ?? { app: name }, annotations: { 'sidecar.istio.io/status': '{}', ...extra.annotations } },
    spec: { nodeName: extra.node ?? NODE, ...(extra.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'app' }, { name: 'istio-proxy', securityContext: { runAsUser: 1337 } }] },
    status: { podIP: '10.1.0.2', podIPs: [{ ip: '10.1.0.2' }] },
  };
}

function sidecar(name: string, excludedPort: number, version = 'v1') {
  return {
    apiVersion: `networking.istio.io/${version}`,
    kind: 'Sidecar',
    metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { workloadSelector: { labels: { app: 'a' } }, ingress: [{ port: { number: excludedPort, protocol: 'HTTP', name: 'p' }, captureMode: 'NONE', defaultEndpoint: '127.0.0.1:8080' }] },
  };
}

/**
 * A fake /proc: one process per pod, in the cgroupfs or the systemd layout. Each ns/net is
 * a file of its own (its inode stands for the netns); `hostNetns` links it to PID 1's.
 */
function fakeProc(dir: string, procs: { pid: number; uid: string; systemd?: boolean; hostNetns?: boolean }[]): string {
  mkdirSync(join(dir, '1', 'ns'), { recursive: true });
  writeFileSync(join(dir, '1', 'ns', 'net'), '');
  writeFileSync(join(dir, '1', 'cgroup'), '0::/init.scope\n');
  for (const p of procs) {
    mkdirSync(join(dir, String(p.pid), 'ns'), { recursive: true });
    if (p.hostNetns) linkSync(join(dir, '1', 'ns', 'net'), join(dir, String(p.pid), 'ns', 'net'));
    else writeFileSync(join(dir, String(p.pid), 'ns', 'net'), '');
    const path = p.systemd
      ? `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${p.uid.replaceAll('-', '_')}.slice/cri-containerd-abc.scope`
      : `/kubepods/burstable/pod${p.uid}/0123456789abcdef`;
    writeFileSync(join(dir, String(p.pid), 'cgroup'), `0::${path}\n`);
  }
  writeFileSync(join(dir, 'self'), ''); // not a pid: skipped
  return dir;
}

interface Ctx {
  api: KubeApiDouble;
  dir: string;
  feed: Feed | null;
  changes: number;
}

const quietLog = { warn: () => undefined, info: () => undefined };

async function startFeed(t: { context: Ctx }, procs: Parameters<typeof fakeProc>[1] = []): Promise<Feed> {
  const ctx = t.context;
  const feed = kubernetesFeed({
    kubeconfig: ctx.api.writeKubeconfig(ctx.dir),
    node: NODE,
    procRoot: fakeProc(join(ctx.dir, 'proc'), procs),
    config: DEFAULT_CONFIG,
    log: quietLog,
    backoff: { baseMs: 20, maxMs: 200 },
  });
  ctx.feed = feed;
  await feed.start(() => (ctx.changes += 1));
  return feed;
}

async function until<T>(what: string, f: () => T | null | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const byName = (records: PodRecord[] | undefined, name: string) => records?.find((r) => r.result.pod.name === name);
/** Inbound ports the Sidecar excluded (the always-excluded 15xxx ports left out). */
const excluded = (r: PodRecord | undefined) => (r?.result.status === 'captured' ? r.result.policy.excludeInboundPorts.filter((p) => p < 15000) : null);

test.beforeEach(async (t) => {
  const api = new KubeApiDouble();
  await api.start();
  (t.context as Ctx) = { api, dir: mkdtempSync(join(tmpdir(), 'sluice-test-kube-')), feed: null, changes: 0 };
});

test.afterEach.always(async (t) => {
  const ctx = t.context as Ctx;
  await ctx.feed?.close();
  await ctx.api.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('lists only this node\'s pods and finds each netns by cgroup, ignoring the netns annotation', async (t) => {
  const { api } = t.context as Ctx;
  api.upsert('pods', pod('a', UID_A, { annotations: { 'sluice.dev/netns': '/proc/1/ns/net' } }));
  api.upsert('pods', pod('b', UID_B));
  api.upsert('pods', pod('elsewhere', UID_OTHER, { node: 'node-b' }));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }, { pid: 41, uid: UID_B, systemd: true }, { pid: 42, uid: UID_OTHER }]);
  const read = await until('the first list', () => feed.read());
  t.deepEqual(read.records.map((r) => r.result.pod.name).sort(), ['a', 'b']);
  t.deepEqual(byName(read.records, 'a')!.netns, { kind: 'path', path: join((t.context as Ctx).dir, 'proc', '40', 'ns', 'net') });
  t.deepEqual(byName(read.records, 'b')!.netns, { kind: 'path', path: join((t.context as Ctx).dir, 'proc', '41', 'ns', 'net') });
  t.true(api.requests.some((r) => r.startsWith('GET /api/v1/pods?') && r.includes('fieldSelector=spec.nodeName%3Dnode-a') && r.includes('watch=true')));
});

test('a pod without a process yet is pending; a hostNetwork pod is refused', async (t) => {
  const { api } = t.context as Ctx;
  api.upsert('pods', pod('a', UID_A));
  api.upsert('pods', pod('h', UID_B, { hostNetwork: true }));
  const feed = await startFeed(t as never, [{ pid: 41, uid: UID_B }]);
  const read = await until('the first list', () => feed.read());
  t.is(byName(read.records, 'a')!.netns.kind, 'pending');
  t.like(byName(read.records, 'h')!.netns, { kind: 'missing' });
  t.regex((byName(read.records, 'h')!.netns as { reason: string }).reason, /hostNetwork/);
});

test('a process of the pod still in the node\'s netns is passed over for one in the pod\'s', async (t) => {
  const { api, dir } = t.context as Ctx;
  api.upsert('pods', pod('a', UID_A));
  api.upsert('pods', pod('b', UID_B));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A, hostNetns: true }, { pid: 44, uid: UID_A }, { pid: 41, uid: UID_B, hostNetns: true }]);
  const read = await until('the first list', () => feed.read());
  t.deepEqual(byName(read.records, 'a')!.netns, { kind: 'path', path: join(dir, 'proc', '44', 'ns', 'net') });
  t.is(byName(read.records, 'b')!.netns.kind, 'pending');
});

test('a Sidecar change through the watch reaches the next read, and calls back', async (t) => {
  const ctx = t.context as Ctx;
  ctx.api.upsert('pods', pod('a', UID_A));
  ctx.api.upsert('sidecars', sidecar('sc', 8001));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  await until('the first list', () => feed.read());
  t.deepEqual(excluded(byName(feed.read()!.records, 'a')), [8001]);
  const before = ctx.changes;
  ctx.api.upsert('sidecars', sidecar('sc', 8002));
  await until('the change', () => ctx.changes > before);
  t.deepEqual(excluded(byName(feed.read()!.records, 'a')), [8002]);
});

test('Sidecars fall back to v1beta1, then v1alpha3, when the newer version is not served', async (t) => {
  const { api } = t.context as Ctx;
  api.sidecarVersions = ['v1alpha3'];
  api.upsert('pods', pod('a', UID_A));
  api.upsert('sidecars', sidecar('sc', 8003, 'v1alpha3'));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  await until('the first list', () => feed.read());
  t.deepEqual(excluded(byName(feed.read()!.records, 'a')), [8003]);
  t.true(api.requests.some((r) => r.startsWith('GET /apis/networking.istio.io/v1beta1/sidecars')));
  await until('the v1alpha3 watch', () => api.requests.some((r) => r.startsWith('GET /apis/networking.istio.io/v1alpha3/sidecars?') && r.includes('watch=true')));
  t.like(feed.status().detail, { sidecarVersion: 'v1alpha3' });
});

test('without any Sidecar API the pods still get policies', async (t) => {
  const { api } = t.context as Ctx;
  api.sidecarVersions = [];
  api.upsert('pods', pod('a', UID_A));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  const read = await until('the first list', () => feed.read());
  t.is(byName(read.records, 'a')!.result.status, 'captured');
  t.like(feed.status().detail, { sidecarVersion: null });
});

test('a Sidecar that breaks Istio\'s schema is reported and ignored', async (t) => {
  const { api } = t.context as Ctx;
  api.upsert('pods', pod('a', UID_A));
  const bad = sidecar('sc', 8001);
  (bad.spec.ingress[0] as { captureMode: string }).captureMode = 'SOMETIMES';
  api.upsert('sidecars', bad);
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  const read = await until('the first list', () => feed.read());
  t.is(read.errors.length, 1);
  t.regex(read.errors[0]!, /Sidecar default\/sc: does not match Istio's Sidecar schema .*captureMode/);
  t.deepEqual(excluded(byName(read.records, 'a')), []);
});

test('a dropped watch reconnects from its resourceVersion and misses nothing', async (t) => {
  const ctx = t.context as Ctx;
  ctx.api.upsert('pods', pod('a', UID_A));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }, { pid: 41, uid: UID_B }]);
  await until('the first list', () => feed.read());
  await until('both watches', () => ctx.api.watchCount() === 2);
  ctx.api.dropWatches();
  ctx.api.upsert('pods', pod('b', UID_B)); // while no watch is open
  await until('pod b', () => byName(feed.read()!.records, 'b'));
  const lists = ctx.api.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && !r.includes('watch=true'));
  t.is(lists.length, 1, 'no re-list: the watch resumed from its resourceVersion');
});

test('bookmarks move the resourceVersion a reconnect resumes from', async (t) => {
  const ctx = t.context as Ctx;
  ctx.api.upsert('pods', pod('a', UID_A));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  await until('the first list', () => feed.read());
  await until('the pod watch', () => ctx.api.watchCount('pods') === 1);
  t.true(ctx.api.requests.some((r) => r.includes('allowWatchBookmarks=true')));
  ctx.api.upsert('sidecars', sidecar('other', 9000)); // moves the server's resourceVersion
  ctx.api.bookmark();
  const rv = ctx.api.resourceVersion;
  await new Promise((r) => setTimeout(r, 50));
  ctx.api.dropWatches();
  await until('a watch from the bookmark', () => ctx.api.requests.some((r) => r.startsWith('GET /api/v1/pods?') && r.includes(`resourceVersion=${rv}`)));
  t.pass();
});

test('410 Gone makes the informer list again, which drops a pod deleted meanwhile', async (t) => {
  const ctx = t.context as Ctx;
  ctx.api.upsert('pods', pod('a', UID_A));
  ctx.api.upsert('pods', pod('b', UID_B));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }, { pid: 41, uid: UID_B }]);
  await until('the first list', () => feed.read()?.records.length === 2);
  await ctx.api.stop();
  ctx.api.remove('pods', 'default', 'b');
  ctx.api.compact();
  // While the server is away the cache keeps both pods: nothing is pruned on a fault.
  t.is(feed.read()!.records.length, 2);
  await ctx.api.start();
  await until('pod b gone after the re-list', () => feed.read()!.records.length === 1);
  t.is(ctx.api.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && !r.includes('watch=true')).length, 2);
});

test('500s and a stopped server keep the last known state and report staleness', async (t) => {
  const ctx = t.context as Ctx;
  ctx.api.upsert('pods', pod('a', UID_A));
  ctx.api.upsert('sidecars', sidecar('sc', 8001));
  const feed = await startFeed(t as never, [{ pid: 40, uid: UID_A }]);
  await until('the first list', () => feed.read());
  const before = JSON.stringify(feed.read());
  ctx.api.failWith = 500;
  await until('a failed reconnect', () => ctx.api.requests.filter((r) => r.includes('watch=true')).length > 3);
  t.is(JSON.stringify(feed.read()), before);
  await new Promise((r) => setTimeout(r, 1100));
  t.true(feed.status().synced);
  t.true(feed.status().staleSeconds >= 1, `staleSeconds ${feed.status().staleSeconds}`);
  ctx.api.failWith = null;
  ctx.api.upsert('sidecars', sidecar('sc', 8004));
  await until('the change after recovery', () => excluded(byName(feed.read()!.records, 'a'))?.[0] === 8004);
  await until(`fresh again (${JSON.stringify(feed.status())})`, () => feed.status().staleSeconds === 0);
  t.pass();
});
