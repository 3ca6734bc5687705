// sk_msg acceleration end to end, in a private cgroup, private namespaces and a private
// bpffs directory, and the live sockmap regression check on this kernel.
//
//   pod  10.1.0.2  "proxy" echo listeners 15001 (outbound), 15006 (inbound) and the
//                  app's 8080, all in one process started before capture
//   peer 10.1.0.1  a second captured pod on the same "node" for the pod-to-pod pair
//
// Clients are long-lived: they run exchanges on command (stdin), so the test can look at
// the sockhash while a connection is open and flip the switch in the middle of one.
import test from 'ava';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { decodeAccelKey, type AccelKey } from '../../src/bpf/codec.js';
import { pinnedLinkInfo } from '../../src/bpf/link-info.js';
import { DEFAULT_CAPACITY } from '../../src/bpf/map-table.js';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { checkSockmapWakeup, type WakeupReport } from '../../src/bpf/probes.js';
import { decideAcceleration, type DaemonOptions } from '../../src/daemon/run.js';
import { InputError } from '../../src/policy/errors.js';
import type { CapturePolicy } from '../../src/policy/types.js';
import { BPFFS_ROOT, bpfRequirementsMissing, type BpfSandbox, type TestCgroup } from './bpf-fixture.js';
import { makePolicy } from './harness/cases.js';
import { createCaptureSandbox } from './harness/capture-sandbox.js';
import { ADDRESSES, type Topology } from './harness/topology.js';
import pino from 'pino';

const missing = bpfRequirementsMissing();

/** Echo listeners: every byte read is written back, so both directions are checked. */
const ECHO_SERVER = `
import socket, sys, threading
def handle(c):
    with c:
        while True:
            d = c.recv(1 << 20)
            if not d:
                return
            c.sendall(d)
def serve(l):
    while True:
        c, _ = l.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
for port in map(int, sys.argv[1].split(',')):
    l = socket.socket(socket.AF_INET6)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('::', port))
    l.listen(64)
    threading.Thread(target=serve, args=(l,), daemon=True).start()
print('ready', flush=True)
sys.stdin.read()
`;

/**
 * One connection; each stdin line "W N" writes N bytes of random data in W-byte writes,
 * reading each echo back before the next write, and prints whether every byte came back
 * intact. An empty line closes the connection.
 */
const CLIENT = `
import encodings.idna, json, os, socket, sys  # idna: loaded while root can still read the stdlib
dst, port, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if uid:
    os.setgid(uid); os.setuid(uid)
s = socket.create_connection((dst, port))
me = s.getsockname()
print(json.dumps({'local': [me[0], me[1]]}), flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    w, n = map(int, line.split())
    intact, sent = True, 0
    while sent < n:
        chunk = os.urandom(w)
        s.sendall(chunk)
        got = bytearray()
        while len(got) < w:
            d = s.recv(w - len(got))
            if not d:
                print(json.dumps({'error': 'eof after %d bytes' % sent}), flush=True)
                sys.exit(1)
            got += d
        intact = intact and bytes(got) == chunk
        sent += w
    print(json.dumps({'write': w, 'bytes': sent, 'intact': intact}), flush=True)
s.close()
`;

interface Env {
  topo: Topology;
  cg: TestCgroup;
  bpffs: { path: string; destroy(): void };
  box: BpfSandbox;
  dp: BpfDataPlane;
  podCookie: bigint;
  echo: ChildProcess[];
  teardown(): Promise<void>;
}

let env: Env | null = null;
let setupError: Error | null = null;
const KiB = 1024;
const PROXY_UID = 1337;
const APP_UID = 1000;

function lineReader(child: ChildProcess): { next(what: string): Promise<string>; rl: Interface } {
  const rl = createInterface({ input: child.stdout! });
  const queue: string[] = [];
  let waiter: ((l: string) => void) | null = null;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  rl.on('line', (l) => (waiter ? (waiter(l), (waiter = null)) : queue.push(l)));
  return {
    rl,
    next: (what) =>
      queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${what}: no output after 20s; stderr: ${stderr}`)), 20_000);
            waiter = (l) => {
              clearTimeout(timer);
              resolve(l);
            };
            child.once('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`${what}: exited ${code}; stderr: ${stderr}`));
            });
          }),
  };
}

/** `python3 -c script args` in the netns, as a process of the cgroup, driven through its stdin. */
function spawnPython(cg: TestCgroup, netnsPath: string, script: string, args: string[]): ChildProcess {
  const join = 'echo $$ > "$0/cgroup.procs" && exec "$@"';
  const child = spawn('/bin/sh', ['-c', join, cg.path, 'nsenter', `--net=${netnsPath}`, 'python3', '-c', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => {});
  return child;
}

async function startEcho(cg: TestCgroup, netnsPath: string, ports: number[]): Promise<ChildProcess> {
  const child = spawnPython(cg, netnsPath, ECHO_SERVER, [ports.join(',')]);
  const line = await lineReader(child).next(`echo server on ${ports.join(',')}`);
  if (line !== 'ready') throw new Error(`echo server: ${line}`);
  return child;
}

interface Exchange {
  write: number;
  bytes: number;
  intact: boolean;
}

/** A long-lived client connection in `netnsPath` as `uid`. */
async function openClient(e: Env, netnsPath: string, dst: string, port: number, uid: number) {
  const child = spawnPython(e.cg, netnsPath, CLIENT, [dst, String(port), String(uid)]);
  const lines = lineReader(child);
  const hello = JSON.parse(await lines.next(`client to ${dst}:${port}`)) as { local: [string, number] };
  return {
    local: { ip: hello.local[0].replace(/^::ffff:/, ''), port: hello.local[1] },
    async run(write: number, bytes: number): Promise<Exchange> {
      child.stdin!.write(`${write} ${bytes}\n`);
      const r = JSON.parse(await lines.next(`exchange of ${bytes} bytes in ${write}-byte writes`)) as Exchange & { error?: string };
      if (r.error) throw new Error(r.error);
      return r;
    },
    async close(): Promise<void> {
      child.stdin!.end('\n');
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    },
    kill: () => child.kill('SIGKILL'),
  };
}

test.before(async () => {
  if (missing) return;
  try {
    const sandbox = await createCaptureSandbox(async ({ topo, cg }, onStop) => {
      const echo = [await startEcho(cg, topo.pod.path, [15001, 15006, 8080])];
      onStop(() => echo.forEach((c) => c.kill('SIGKILL')));
      return echo;
    });
    const { box, dp, cookie: podCookie, prepared: echo } = sandbox;
    env = { topo: box.topo, cg: box.cg, bpffs: box.bpffs, box, dp, podCookie, echo, teardown: sandbox.teardown };
  } catch (err) {
    setupError = err as Error;
  }
});

test.after.always(() => env?.teardown());

function ready(t: { fail(m: string): void }): Env | null {
  if (missing) t.fail(missing);
  else if (!env) t.fail(`setup failed: ${setupError?.stack ?? 'unknown'}`);
  return env;
}

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
  t.is(pinnedLinkInfo(join(e.bpffs.path, 'links', 'sluice_sk_msg'))?.sockmapMapId, after.id, 'sk_msg runs on the new map');
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
      { self: client.local, peer: app, netnsCookie: e.podCookie },
      { self: app, peer: client.local, netnsCookie: e.podCookie },
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

let wakeup: WakeupReport | null = null;

test.serial('the sockmap regression check gives a definite answer on this kernel, and leaves nothing behind', async (t) => {
  if (missing) return t.fail(missing);
  // Other kernel tests run concurrently: only names that are not theirs count.
  const notTests = (names: string[]) => names.filter((n) => !/^sluice-test-\d+-/.test(n)).sort();
  const netns = () => notTests(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
  const pins = () => notTests(readdirSync(BPFFS_ROOT));
  const netnsBefore = netns();
  const pinsBefore = pins();
  wakeup = await checkSockmapWakeup();
  t.log(`kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}: ${wakeup.verdict} (${wakeup.summary})`);
  t.log(`single waits: ${wakeup.observations.map((o) => `${o.path}/${o.waiter} woke=${o.woke} fionread=${o.fionread}/${o.readableAfter}`).join('; ')}`);
  t.log(`stress: ${wakeup.stress.map((s) => `${s.path} ${s.mode}: ${s.rounds} rounds, ${s.stalls} stalls, max wait ${s.maxWaitMs} ms`).join('; ')}`);
  t.true(wakeup.verdict === 'ok' || wakeup.verdict === 'regressed' || wakeup.verdict === 'limited', `a definite answer, not ${wakeup.verdict}`);
  t.is(wakeup.observations.length, 6);
  t.true(wakeup.redirected > 0, 'the check did go through the sk_msg redirect');
  t.deepEqual(netns(), netnsBefore, 'its network namespace was private and anonymous');
  t.deepEqual(pins(), pinsBefore, 'its maps were never pinned');
});

test.serial('sluice run --accelerate follows the check: refused with a message naming sluice doctor, unless forced', async (t) => {
  if (missing) return t.fail(missing);
  const report = wakeup ?? (await checkSockmapWakeup());
  const log = pino({ level: 'silent' });
  const opts: DaemonOptions = { source: 'file:/dev/null', config: {} as DaemonOptions['config'], bpffs: '/nonexistent', listen: '127.0.0.1:0', accelerate: true, sockmapCheck: async () => report };
  if (report.verdict === 'ok') {
    t.true(await decideAcceleration(opts, log));
  } else {
    const err = await t.throwsAsync(decideAcceleration(opts, log), { instanceOf: InputError });
    t.is((err as InputError).code, 'ACCELERATE_REFUSED');
    t.regex(err!.message, /--accelerate refused: .*sluice doctor.*--accelerate-force/);
  }
  t.true(await decideAcceleration({ ...opts, accelerateForce: true }, log), '--accelerate-force overrides');
  t.false(await decideAcceleration({ ...opts, accelerate: false }, log), 'no flag: off, and the check does not even run');
});
