// sk_msg acceleration end to end, in a private cgroup, private namespaces and a private
// bpffs directory (harness/capture-suite.ts). The live sockmap regression check on this
// kernel, and the daemon's use of it, are in accelerate-check.test.ts.
//
//   pod  10.1.0.2  "proxy" echo listeners 15001 (outbound), 15006 (inbound) and the
//                  app's 8080, all in one process started before capture
//   peer 10.1.0.1  a second captured pod on the same "node" for the pod-to-pod pair
//
// Clients are long-lived (harness/accel-clients.ts): they run exchanges on command.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { decodeAccelKey, type AccelKey } from '../../src/bpf/codec.js';
import * as bpf from '../../src/bpf/libbpf.js';
import { pinnedLinkInfo } from '../../src/bpf/link-info.js';
import { DEFAULT_CAPACITY } from '../../src/bpf/map-table.js';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { ATTACH_TYPES } from '../../src/bpf/probe-facts.js';
import { kernelRelease } from '../../src/bpf/system.js';
import type { CapturePolicy } from '../../src/policy/types.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { openClient, startEcho } from './harness/accel-clients.js';
import { makePolicy } from './harness/cases.js';
import { captureSuite, type CaptureEnv } from './harness/capture-suite.js';
import { ADDRESSES } from './harness/topology.js';

const missing = bpfRequirementsMissing();

const ready = captureSuite(missing, async ({ topo, cg }, onStop) => {
  const echo = [await startEcho(cg, topo.pod.path, [15001, 15006, 8080])];
  onStop(() => echo.forEach((c) => c.kill('SIGKILL')));
  return { echo };
});

type Env = CaptureEnv<object>;

const KiB = 1024;
const PROXY_UID = 1337;
const APP_UID = 1000;

const accelKeys = (e: Env): AccelKey[] => e.dp.maps.keys('sluice_accel').map(decodeAccelKey);
const counters = (e: Env) => e.dp.readCounters();
const delta = (before: Record<string, bigint>, after: Record<string, bigint>, name: string) => Number((after[name] ?? 0n) - (before[name] ?? 0n));
const sortKeys = (ks: AccelKey[]) => ks.map((k) => JSON.stringify(k, (_, v) => (typeof v === 'bigint' ? v.toString() : v))).sort();

/**
 * Every byte went through the redirect, both ways. The one exception is by design: when
 * softirq processing is deferred, the client may write before the proxy's end is enrolled;
 * that socket then stays on TCP for good (accel_peer_missing), and the data is still intact.
 */
function expectAllRedirected(t: { is(a: unknown, b: unknown, m?: string): void; log(...m: unknown[]): void }, before: Record<string, bigint>, after: Record<string, bigint>, bytes: number): void {
  if (delta(before, after, 'accel_peer_missing') === 0) t.is(delta(before, after, 'accel_redirected_bytes'), bytes, 'all the bytes, both ways');
  else t.log('a side wrote before its peer was enrolled and stayed on TCP (accel_peer_missing), as designed');
}

async function untilEmpty(e: Env): Promise<number> {
  const deadline = Date.now() + 3000;
  let n = -1;
  while (Date.now() < deadline) {
    n = accelKeys(e).length;
    if (n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return n;
}

test.serial('BPF kernel test requirements are met', (t) => {
  t.is(missing, null);
});

/** The pinned sluice_accel as bpftool reads it from the kernel. */
function pinnedAccel(e: Env): { id: number; max_entries: number; bytes_memlock: number } {
  return JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', join(e.bpffs.path, 'maps', 'sluice_accel')], { encoding: 'utf8' })) as { id: number; max_entries: number; bytes_memlock: number };
}

/** Names of the programs attached to the pinned sluice_accel as sk_msg (BPF_PROG_QUERY, 6.0+): links and bpf_prog_attach alike. */
function skMsgProgramsOn(e: Env): string[] {
  const path = join(e.bpffs.path, 'maps', 'sluice_accel');
  const fd = bpf.objGet(path);
  try {
    const ids = bpf.progQuery(fd, ATTACH_TYPES.BPF_SK_MSG_VERDICT, path);
    return ids.map((id) => (JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(id)], { encoding: 'utf8' })) as { name: string }).name);
  } finally {
    bpf.closeFd(fd);
  }
}

/** Sockmap links came in 6.10: before, sk_msg is attached with bpf_prog_attach and no link is pinned. */
function hasSockmapLinks(): boolean {
  const [major, minor] = kernelRelease().split('.').map(Number);
  return major! > 6 || (major === 6 && minor! >= 10);
}

test.serial('off, sluice_accel has one entry; switched on, a full one replaces it and the sk_msg link follows', (t) => {
  const e = ready(t);
  if (!e) return;
  const before = pinnedAccel(e);
  t.is(before.max_entries, 1, 'installed with acceleration off: minimal');
  t.is(e.dp.maps.info('sluice_accel').maxEntries, 1);
  e.dp.setAcceleration(true);
  const after = pinnedAccel(e);
  t.is(after.max_entries, DEFAULT_CAPACITY.connections);
  t.not(after.id, before.id, 'a new map');
  t.is(e.dp.maps.info('sluice_accel').maxEntries, DEFAULT_CAPACITY.connections, 'the data plane reads the new one');
  t.deepEqual(skMsgProgramsOn(e), ['sluice_sk_msg'], 'sk_msg runs on the new map');
  const link = pinnedLinkInfo(join(e.bpffs.path, 'links', 'sluice_sk_msg'));
  if (link) t.is(link.sockmapMapId, after.id, 'and its link is on the new map');
  else t.false(hasSockmapLinks(), `no sk_msg link pinned on ${kernelRelease()}, which has sockmap links (6.10+)`);
  t.log(`sluice_accel memlock: ${before.bytes_memlock} bytes off, ${after.bytes_memlock} on`);
  e.dp.setAcceleration(false);
  e.dp.setAcceleration(true);
  t.is(pinnedAccel(e).id, after.id, 'switching again keeps the full map');
});

test.serial('a captured app connection to its proxy is redirected both ways, intact with 4 KiB and 64 KiB writes', async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const before = counters(e);
  const client = await openClient(e, e.topo.pod.path, ADDRESSES.remote4, 80, APP_UID);
  try {
    const small = await client.run(4 * KiB, 1024 * KiB);
    const big = await client.run(64 * KiB, 1024 * KiB);
    t.like(small, { bytes: 1024 * KiB, intact: true });
    t.like(big, { bytes: 1024 * KiB, intact: true });
    // The capture sent the app to the pod IP (10.1.0.2:15001): a pod-address pair, no netns in the key.
    const app = client.local;
    t.is(app.ip, ADDRESSES.pod4);
    const proxy = { ip: ADDRESSES.pod4, port: 15001 };
    t.deepEqual(sortKeys(accelKeys(e)), sortKeys([
      { self: app, peer: proxy, netnsCookie: 0n },
      { self: proxy, peer: app, netnsCookie: 0n },
    ]), 'the sockhash holds the pair while it is open');
    const after = counters(e);
    t.is(delta(before, after, 'accel_enrolled'), 2);
    t.true(delta(before, after, 'accel_redirected') > 0);
    expectAllRedirected(t, before, after, 2 * 2048 * KiB);
  } finally {
    await client.close();
  }
  t.is(await untilEmpty(e), 0, 'empty once the connection is closed');
  t.is(delta(before, counters(e), 'accel_removed'), 2);
});

test.serial('IPv6: a captured app connection to its proxy is enrolled by its IPv6 addresses and redirected', async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const before = counters(e);
  const client = await openClient(e, e.topo.pod.path, ADDRESSES.remote6, 80, APP_UID);
  try {
    t.like(await client.run(64 * KiB, 512 * KiB), { intact: true });
    t.is(client.local.ip, ADDRESSES.pod6);
    const proxy = { ip: ADDRESSES.pod6, port: 15001 };
    t.deepEqual(sortKeys(accelKeys(e)), sortKeys([
      { self: client.local, peer: proxy, netnsCookie: 0n },
      { self: proxy, peer: client.local, netnsCookie: 0n },
    ]));
    expectAllRedirected(t, before, counters(e), 2 * 512 * KiB);
  } finally {
    await client.close();
  }
  t.is(await untilEmpty(e), 0);
});

test.serial("a loopback pair (the proxy to the app at 127.0.0.1) is keyed with the pod's netns cookie", async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const before = counters(e);
  const client = await openClient(e, e.topo.pod.path, '127.0.0.1', 8080, PROXY_UID);
  try {
    t.like(await client.run(4 * KiB, 256 * KiB), { intact: true });
    const app = { ip: '127.0.0.1', port: 8080 };
    t.deepEqual(sortKeys(accelKeys(e)), sortKeys([
      { self: client.local, peer: app, netnsCookie: e.cookie },
      { self: app, peer: client.local, netnsCookie: e.cookie },
    ]));
    expectAllRedirected(t, before, counters(e), 2 * 256 * KiB); // sk_msg found the peer under the same netns cookie
  } finally {
    await client.close();
  }
  t.is(await untilEmpty(e), 0);
});

test.serial('a pair between two captured pods on one node is enrolled by pod addresses and redirected across namespaces', async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const peerCookie = e.dp.cookieOf(e.topo.peer.path);
  const peerPolicy: CapturePolicy = makePolicy({ pod: { namespace: 'default', name: 'peer' }, podIPs: [ADDRESSES.peer4, ADDRESSES.peer6] });
  e.dp.applyPolicy(peerCookie, peerPolicy);
  const before = counters(e);
  // The peer's proxy (its own connections pass) reaches the pod, whose inbound capture hands
  // the connection to 15006 without NAT: the pod side's local address stays 10.1.0.2:8080.
  const client = await openClient(e, e.topo.peer.path, ADDRESSES.pod4, 8080, PROXY_UID);
  try {
    t.like(await client.run(64 * KiB, 1024 * KiB), { intact: true });
    const pod = { ip: ADDRESSES.pod4, port: 8080 };
    t.deepEqual(sortKeys(accelKeys(e)), sortKeys([
      { self: client.local, peer: pod, netnsCookie: 0n },
      { self: pod, peer: client.local, netnsCookie: 0n },
    ]));
    expectAllRedirected(t, before, counters(e), 2 * 1024 * KiB);
  } finally {
    await client.close();
    e.dp.removePolicy(peerCookie);
  }
  t.is(await untilEmpty(e), 0);
  t.deepEqual(e.dp.maps.keys('sluice_addrs').length, 2, "only the pod's addresses are left once the peer's policy is gone");
});

test.serial('switching off in the middle of a connection keeps the data in order; then the pair stays on TCP', async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const client = await openClient(e, e.topo.pod.path, ADDRESSES.remote4, 80, APP_UID);
  try {
    t.like(await client.run(64 * KiB, 512 * KiB), { intact: true });
    const before = counters(e);
    e.dp.setAcceleration(false);
    t.like(await client.run(4 * KiB, 512 * KiB), { intact: true });
    e.dp.setAcceleration(true);
    t.like(await client.run(4 * KiB, 256 * KiB), { intact: true });
    const after = counters(e);
    t.is(delta(before, after, 'accel_redirected'), 0, 'nothing redirected once a socket went by TCP');
    t.is(delta(before, after, 'accel_off'), 2, 'one message on each side saw the switch off');
  } finally {
    await client.close();
  }
  t.is(await untilEmpty(e), 0);
});

test.serial('with the switch off nothing is enrolled, and data flows by TCP', async (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(false);
  t.false(e.dp.acceleration());
  const before = counters(e);
  const client = await openClient(e, e.topo.pod.path, ADDRESSES.remote4, 80, APP_UID);
  try {
    t.like(await client.run(4 * KiB, 256 * KiB), { intact: true });
    t.like(await client.run(64 * KiB, 1024 * KiB), { intact: true });
    t.deepEqual(accelKeys(e), []);
  } finally {
    await client.close();
  }
  const after = counters(e);
  t.is(delta(before, after, 'accel_enrolled'), 0);
  t.is(delta(before, after, 'accel_redirected'), 0);
});

test.serial('a restarted loader adopts the sk_msg link; the switch is whatever the new daemon sets', (t) => {
  const e = ready(t);
  if (!e) return;
  e.dp.setAcceleration(true);
  const again = BpfDataPlane.install({ cgroupDir: e.cg.path, bpffsDir: e.bpffs.path });
  try {
    t.true(again.installReport!.updated.includes('sluice_sk_msg'));
    t.true(again.acceleration(), 'the pinned switch survives the restart itself');
    again.setAcceleration(false); // what run.ts does without --accelerate
    t.false(e.dp.acceleration());
  } finally {
    again.close();
  }
});
