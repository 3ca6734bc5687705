// The eBPF data plane end to end, in a private cgroup, private namespaces and a private
// bpffs directory: real programs, real connections, real listeners.
//
//   pod  10.1.0.2/24 fd00::2/64 (listeners 15001, 15006, 8080 start BEFORE capture)
//   peer 10.1.0.1/24 fd00::1/64, and the "remote" 10.2.0.5 / fd00:2::5 on its lo (80, 8080)
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { CGROUP_PROGRAMS, MAP_NAMES, netnsLinkPath, pinLayout, uninstall, type LoaderError } from '../../src/bpf/loader.js';
import type { CapturePolicy } from '../../src/policy/types.js';
import {
  bpfRequirementsMissing,
  type BpfSandbox,
  connect,
  createBpffsDir,
  createCgroup,
  runInCgroup,
  runInNetns,
  serverOf,
  spawnInCgroup,
  startServer,
  type TestCgroup,
  type TestServer,
} from './bpf-fixture.js';
import { createCaptureSandbox } from './harness/capture-sandbox.js';
import { getsockoptFacts, iptablesSave, manyRules } from './harness/passthrough.js';
import type { ProbeResult } from './harness/probe.js';
import type { Topology } from './harness/topology.js';

const missing = bpfRequirementsMissing();

interface Env {
  topo: Topology;
  cg: TestCgroup;
  bpffs: { path: string; destroy(): void };
  box: BpfSandbox;
  servers: TestServer[];
  dp: BpfDataPlane;
  cookie: bigint;
  policy: CapturePolicy;
  /** Observations made before anything was installed. */
  baseline: { peerOut: ProbeResult; getsockopt: string; iptablesSave: string };
  teardown(): Promise<void>;
}

let env: Env | null = null;
let setupError: Error | null = null;

const POD_TCP = [15001, 15006, 8080];
const PEER_TCP = [80, 8080];

test.before(async () => {
  if (missing) return;
  try {
    const sandbox = await createCaptureSandbox(async ({ topo, cg }, onStop) => {
      const servers: TestServer[] = [];
      onStop(() => Promise.all(servers.map((s) => s.stop())));
      // Listeners first: capture must find them already bound, as in a running pod.
      servers.push(await startServer(cg, 'pod', topo.pod.path, POD_TCP));
      servers.push(await startServer(cg, 'peer', topo.peer.path, PEER_TCP));
      const restore = await runInNetns(cg, topo.pod.path, 'iptables-legacy-restore', [], manyRules());
      if (restore.code !== 0) throw new Error(`iptables-legacy-restore in the pod netns failed: ${restore.stderr}`);
      const baseline = {
        peerOut: await connect(cg, { netnsPath: topo.peer.path, dst: '10.2.0.5:80', uid: 1000 }),
        getsockopt: await getsockoptFacts({ cg, topo }),
        iptablesSave: await iptablesSave({ cg, topo }),
      };
      return { servers, baseline };
    });
    const { box, dp, cookie, policy, prepared } = sandbox;
    env = { topo: box.topo, cg: box.cg, bpffs: box.bpffs, box, dp, cookie, policy, ...prepared, teardown: sandbox.teardown };
  } catch (err) {
    setupError = err as Error;
  }
});

test.after.always(() => env?.teardown());

/** The environment, or a failure naming what is missing. */
function ready(t: { fail(m: string): void }): Env | null {
  if (missing) t.fail(missing);
  else if (!env) t.fail(`setup failed: ${setupError?.stack ?? 'unknown'}`);
  return env;
}

const podClient = (e: Env, dst: string, uid: number, extra: { src?: string; gid?: number } = {}) => connect(e.cg, { netnsPath: e.topo.pod.path, dst, uid, ...extra });

test.serial('BPF kernel test requirements are met', (t) => {
  t.is(missing, null);
});

test.serial('an app connection to a remote address reaches the outbound listener with its original destination', async (t) => {
  const e = ready(t);
  if (!e) return;
  const r = await podClient(e, '10.2.0.5:80', 1000);
  const s = serverOf(r);
  t.is(`${s.server}:${s.port}`, 'pod:15001');
  t.is(s.origDst, '10.2.0.5:80');
  t.is(s.peer.split(':')[0], '10.1.0.2', 'the proxy sees the pod IP as the peer, as under REDIRECT');
  t.true(r.ok && r.clientPeer === '10.2.0.5:80', "the app's getpeername is the original destination");
});

test.serial('IPv6 and IPv4-mapped app connections are captured the same way', async (t) => {
  const e = ready(t);
  if (!e) return;
  const v6 = await podClient(e, '[fd00:2::5]:80', 1000);
  t.like(serverOf(v6), { server: 'pod', port: 15001, origDst: '[fd00:2::5]:80' });
  t.true(v6.ok && v6.clientPeer === '[fd00:2::5]:80');
  const mapped = await podClient(e, '[::ffff:10.2.0.5]:80', 1000);
  t.like(serverOf(mapped), { server: 'pod', port: 15001, origDst: '10.2.0.5:80' });
  t.true(mapped.ok && mapped.clientPeer === '[::ffff:10.2.0.5]:80');
});

test.serial("the proxy's own connection goes direct", async (t) => {
  const e = ready(t);
  if (!e) return;
  const s = serverOf(await podClient(e, '10.2.0.5:80', 1337));
  t.is(`${s.server}:${s.port}`, 'peer:80');
  t.is(s.peer.split(':')[0], '10.1.0.2');
});

test.serial('the proxy reaching its own pod IP is sent to the inbound listener (hairpin)', async (t) => {
  const e = ready(t);
  if (!e) return;
  const s = serverOf(await podClient(e, '10.1.0.2:8080', 1337, { src: '10.1.0.2' }));
  t.like(s, { server: 'pod', port: 15006, origDst: '10.1.0.2:8080' });
  const probe = serverOf(await podClient(e, '127.0.0.6:15002', 1337, { src: '127.0.0.1' }));
  t.like(probe, { server: 'pod', port: 15006, origDst: '127.0.0.6:15002' });
  t.is(probe.peer.split(':')[0], '127.0.0.1');
});

test.serial('the app reaching its own pod IP and the proxy forwarding from 127.0.0.6 go direct', async (t) => {
  const e = ready(t);
  if (!e) return;
  t.like(serverOf(await podClient(e, '10.1.0.2:8080', 1000)), { server: 'pod', port: 8080, origDst: '10.1.0.2:8080' });
  const fwd = serverOf(await podClient(e, '10.1.0.2:8080', 1337, { src: '127.0.0.6' }));
  t.like(fwd, { server: 'pod', port: 8080 });
  t.is(fwd.peer.split(':')[0], '127.0.0.6');
});

test.serial('inbound to an app port reaches the inbound listener with its original destination and source', async (t) => {
  const e = ready(t);
  if (!e) return;
  for (const [dst, peer] of [
    ['10.1.0.2:8080', '10.1.0.1'],
    ['[fd00::2]:8080', '[fd00::1]'],
  ] as const) {
    const r = await connect(e.cg, { netnsPath: e.topo.peer.path, dst });
    const s = serverOf(r);
    t.is(`${s.server}:${s.port}`, 'pod:15006', dst);
    t.is(s.origDst, dst);
    t.true(s.peer.startsWith(peer), `source kept: ${s.peer}`);
    t.true(r.ok && r.clientPeer === dst);
  }
});

test.serial('inbound to an excluded port reaches its real listener, or is refused like without capture', async (t) => {
  const e = ready(t);
  if (!e) return;
  const r = await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:15021' });
  t.false(r.ok);
  t.true(!r.ok && r.errno === 111, 'ECONNREFUSED: nothing listens on 15021 in the pod');
});

test.serial('a namespace with no policy is untouched', async (t) => {
  const e = ready(t);
  if (!e) return;
  const before = e.dp.readCounters().connect_no_policy ?? 0n;
  const now = await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.2.0.5:80', uid: 1000 });
  t.true(now.ok && e.baseline.peerOut.ok);
  if (now.ok && e.baseline.peerOut.ok) {
    t.deepEqual({ ...now.server, peer: '' }, { ...e.baseline.peerOut.server, peer: '' });
    t.is(now.clientPeer, e.baseline.peerOut.clientPeer);
  }
  t.true((e.dp.readCounters().connect_no_policy ?? 0n) > before, 'the programs did run, and let it be');
});

test.serial('getsockopt passes through untouched, including buffers above 4 KiB', async (t) => {
  const e = ready(t);
  if (!e) return;
  t.is(await getsockoptFacts(e), e.baseline.getsockopt);
  const saved = await iptablesSave(e);
  t.true(saved.length > 4096, `iptables-legacy-save printed ${saved.length} bytes`);
  t.is(saved, e.baseline.iptablesSave);
});

test.serial("the daemon can look up an open connection's original destination; the record goes with the connection", async (t) => {
  const e = ready(t);
  if (!e) return;
  // A client that connects and holds the connection open until it is killed (its stdin is
  // /dev/null, so it must not wait on stdin: that returned at once and raced the lookup).
  const hold = `
import encodings.idna, os, socket, time  # idna: loaded while root can still read the stdlib
os.setgid(1000); os.setuid(1000)
s = socket.create_connection(('10.2.0.5', 80))
print(s.getsockname()[1], flush=True)
time.sleep(60)
`;
  const child = spawnInCgroup(e.cg, 'nsenter', [`--net=${e.topo.pod.path}`, 'python3', '-c', hold]);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`holding client exited ${code}: ${stderr}`)));
    });
    const port = Number(line.trim());
    const found = e.dp.lookupOriginalDestination({ ip: '10.1.0.2', port }, { ip: '10.1.0.2', port: 15001 });
    t.deepEqual(found, { ip: '10.2.0.5', port: 80 });
  } finally {
    child.kill('SIGKILL');
  }
  const deadline = Date.now() + 3000;
  let left = -1;
  while (Date.now() < deadline) {
    left = e.dp.mapUsage().find((u) => u.map === 'sluice_conns')!.entries;
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(left, 0, 'no original-destination record outlives its connection');
});

/** A DNS listener bound to loopback only, as Istio's agent binds 15053: UDP on 127.0.0.1 and
 * ::1, TCP on 127.0.0.1. Each answer says whom it saw, and SO_ORIGINAL_DST for TCP. */
const LOOPBACK_DNS_SERVER = `
import json, selectors, socket, struct
sel = selectors.DefaultSelector()
for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.bind((host, 15053))
    sel.register(u, selectors.EVENT_READ, 'udp')
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(('127.0.0.1', 15053))
t.listen(16)
sel.register(t, selectors.EVENT_READ, 'tcp')
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if key.data == 'udp':
            q, peer = s.recvfrom(512)
            s.sendto(json.dumps({'listener': 'dns', 'peer': peer[0], 'q': q.decode()}).encode(), peer)
            continue
        c, peer = s.accept()
        c.settimeout(2)
        q = c.recv(512)
        od = c.getsockopt(socket.SOL_IP, 80, 16)
        orig = '%s:%d' % (socket.inet_ntoa(od[4:8]), struct.unpack('!H', od[2:4])[0])
        c.sendall(json.dumps({'listener': 'dns', 'peer': peer[0], 'origDst': orig, 'q': q.decode()}).encode())
        c.close()
`;

/** DNS the ways resolvers send it, as uid argv[1] (only the cases named after it, if any); prints what each socket saw. */
const DNS_CLIENT = `
import encodings.idna, json, os, socket, sys  # idna: loaded while root can still read the stdlib
uid = int(sys.argv[1])
only = sys.argv[2:]
os.setgroups([]); os.setgid(uid); os.setuid(uid)
def fmt(a):
    return '[%s]:%d' % a[:2] if ':' in a[0] else '%s:%d' % a[:2]
def answer(s):
    data, frm = s.recvfrom(2048)
    return {'server': json.loads(data), 'from': fmt(frm)}
out = {}
def case(name, fn):
    if only and name not in only:
        return
    try:
        out[name] = fn()
    except OSError as e:
        out[name] = {'error': str(e)}
def connected(fam, dst):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
    s.connect(dst); s.send(b'q')
    r = answer(s)
    r['peer'] = fmt(s.getpeername()); r['local'] = s.getsockname()[0]
    return r
def unconnected(fam, dst):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b'q', dst)
    return answer(s)
def in_turn():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b'a', ('10.2.0.5', 53)); a = answer(s)['from']
    s.sendto(b'b', ('10.2.0.6', 53)); b = answer(s)['from']
    return [a, b]
def tcp():
    s = socket.create_connection(('10.2.0.5', 53), timeout=2)
    s.sendall(b'q')
    return {'server': json.loads(s.recv(2048)), 'peer': fmt(s.getpeername())}
case('connected-v4', lambda: connected(socket.AF_INET, ('10.2.0.5', 53)))
case('connected-v6', lambda: connected(socket.AF_INET6, ('fd00:2::5', 53)))
case('sendto-v4', lambda: unconnected(socket.AF_INET, ('10.2.0.5', 53)))
case('sendto-v6', lambda: unconnected(socket.AF_INET6, ('fd00:2::5', 53)))
case('sendto-v4-mapped', lambda: unconnected(socket.AF_INET6, ('::ffff:10.2.0.5', 53)))
case('two-servers-in-turn', in_turn)
case('tcp-v4', tcp)
print(json.dumps(out, sort_keys=True))
`;

test.serial('DNS capture: UDP (connected and sendto) and TCP reach a loopback-only DNS listener, replies come from the server asked', async (t) => {
  const e = ready(t);
  if (!e) return;
  const dnsServer = spawnInCgroup(e.cg, 'nsenter', [`--net=${e.topo.pod.path}`, 'python3', '-c', LOOPBACK_DNS_SERVER]);
  let stderr = '';
  dnsServer.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const peerDns = await startServer(e.cg, 'peer', e.topo.peer.path, [], [53]);
  const client = async (uid: number, ...cases: string[]) => {
    const r = await runInNetns(e.cg, e.topo.pod.path, 'python3', ['-c', DNS_CLIENT, String(uid), ...cases]);
    if (r.code !== 0) throw new Error(`DNS client failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, Record<string, unknown> | string[]>;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: dnsServer.stdout! }).once('line', () => resolve());
      dnsServer.once('exit', (code) => reject(new Error(`DNS listener exited ${code}: ${stderr}`)));
    });
    const before = e.dp.readCounters();
    e.dp.applyPolicy(e.cookie, { ...e.policy, dnsCapture: true });
    const app = await client(1000);
    const asked = (server: string, peer: string, q = 'q') => ({ server: { listener: 'dns', peer, q }, from: server });
    t.deepEqual(app['connected-v4'], { ...asked('10.2.0.5:53', '10.1.0.2'), peer: '10.2.0.5:53', local: '10.1.0.2' });
    t.deepEqual(app['connected-v6'], { ...asked('[fd00:2::5]:53', 'fd00::2'), peer: '[fd00:2::5]:53', local: 'fd00::2' });
    t.deepEqual(app['sendto-v4'], asked('10.2.0.5:53', '10.1.0.2'));
    t.deepEqual(app['sendto-v6'], asked('[fd00:2::5]:53', 'fd00::2'));
    t.deepEqual(app['sendto-v4-mapped'], asked('[::ffff:10.2.0.5]:53', '10.1.0.2'), 'an IPv6 socket sees the IPv4 server IPv4-mapped');
    t.deepEqual(app['two-servers-in-turn'], ['10.2.0.5:53', '10.2.0.6:53'], 'one socket, two servers asked in turn');
    t.deepEqual(app['tcp-v4'], { server: { listener: 'dns', peer: '10.1.0.2', origDst: '10.2.0.5:53', q: 'q' }, peer: '10.2.0.5:53' });
    const after = e.dp.readCounters();
    t.is((after.dns_reply_restored ?? 0n) - (before.dns_reply_restored ?? 0n), 7n, 'one restored reply per UDP answer');
    t.is(after.dns_bind_failed, before.dns_bind_failed);
    // The proxy's own DNS goes to the real server.
    const proxy = await client(1337, 'sendto-v4', 'connected-v4');
    t.like(proxy['sendto-v4'], { server: { server: 'peer', port: 53 }, from: '10.2.0.5:53' });
    t.like(proxy['connected-v4'], { server: { server: 'peer', port: 53 }, from: '10.2.0.5:53', peer: '10.2.0.5:53' });
  } finally {
    e.dp.applyPolicy(e.cookie, e.policy);
    dnsServer.kill('SIGKILL');
    await peerDns.stop();
  }
});

test.serial('a policy change reaches the kernel at once: excluding port 80 lets the app go direct', async (t) => {
  const e = ready(t);
  if (!e) return;
  try {
    e.dp.applyPolicy(e.cookie, { ...e.policy, excludeOutboundPorts: [80] });
    t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
    t.is(serverOf(await podClient(e, '10.2.0.5:8080', 1000)).port, 15001, 'other ports still captured');
  } finally {
    e.dp.applyPolicy(e.cookie, e.policy);
  }
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).port, 15001);
  t.is(e.dp.mapUsage().find((u) => u.map === 'sluice_ports')!.entries, e.policy.excludeInboundPorts.length, 'the old sets were removed');
});

test.serial('removing the policy releases the pod, and its sk_lookup link', async (t) => {
  const e = ready(t);
  if (!e) return;
  try {
    e.dp.removePolicy(e.cookie);
    t.false(existsSync(netnsLinkPath(e.bpffs.path, e.cookie)));
    t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
    t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 8080);
  } finally {
    e.dp.applyPolicy(e.cookie, e.policy);
  }
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).port, 15001);
  t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 15006);
});

test.serial("each netns links only the small entry; the one steering program sits in the pinned prog array", async (t) => {
  const e = ready(t);
  if (!e) return;
  const { exec } = await import('./harness/exec.js');
  const show = async (args: string[]) => JSON.parse((await exec('bpftool', ['-j', ...args])).stdout) as Record<string, any>;
  const link = await show(['link', 'show', 'pinned', netnsLinkPath(e.bpffs.path, e.cookie)]);
  const entry = await show(['prog', 'show', 'id', String(link.prog_id)]);
  t.is(entry.name, 'sluice_sk_lookup');
  const array = await show(['map', 'dump', 'pinned', `${pinLayout(e.bpffs.path).maps}/sluice_lookup_prog`]);
  // bpftool prints a prog array's value (the program id) as little-endian hex bytes.
  const bytes = (array as unknown as { value: string[] | number }[])[0]!.value;
  const steerId = Array.isArray(bytes) ? Buffer.from(bytes.map((b) => parseInt(b, 16))).readUInt32LE() : bytes;
  const steer = await show(['prog', 'show', 'id', String(steerId)]);
  t.is(steer.name, 'sluice_sk_lookup_steer');
  // The per-pod verifier run is the entry's: a few instructions, not decide_inbound.
  t.true(entry.bytes_xlated * 8 < steer.bytes_xlated, `entry ${entry.bytes_xlated} B, steering ${steer.bytes_xlated} B`);
});

test.serial('a restarted loader adopts every pin, and interception never stops', async (t) => {
  const e = ready(t);
  if (!e) return;
  let stop = false;
  const outcomes: string[] = [];
  const traffic = (async () => {
    while (!stop) {
      const r = await podClient(e, '10.2.0.5:80', 1000);
      outcomes.push(r.ok ? `${r.server.server}:${r.server.port}` : r.error);
    }
  })();
  const reports = [];
  try {
    for (let i = 0; i < 5; i++) {
      const again = BpfDataPlane.install({ cgroupDir: e.cg.path, bpffsDir: e.bpffs.path });
      reports.push(again.installReport!);
      t.deepEqual(again.listPolicies(), [e.cookie], 'the policy survived');
      again.close();
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    stop = true;
    await traffic;
  }
  for (const r of reports) {
    t.deepEqual(r.attached, [], 'nothing attached twice');
    t.is(r.updated.length, CGROUP_PROGRAMS.length + 1, 'every cgroup link, and the sk_msg link, got the new program in place');
    t.is(r.adoptedMaps.length, MAP_NAMES.length);
  }
  t.true(outcomes.length > 0);
  t.deepEqual([...new Set(outcomes)], ['pod:15001'], 'every connection during the restarts was captured');
});

test.serial('a proxy that restarts its listeners gets inbound connections again (sockops enrols them)', async (t) => {
  const e = ready(t);
  if (!e) return;
  const pod = e.servers.find((s) => s.name === 'pod')!;
  await pod.stop();
  e.servers.splice(e.servers.indexOf(pod), 1);
  const refused = await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080', timeoutMs: 1000 });
  t.false(refused.ok, 'no proxy listener: refused, never delivered around the proxy');
  e.servers.push(await startServer(e.cg, 'pod', e.topo.pod.path, POD_TCP));
  const s = serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' }));
  t.like(s, { server: 'pod', port: 15006, origDst: '10.1.0.2:8080' });
  t.true((e.dp.readCounters().listener_added ?? 0n) >= 4n);
});

test.serial("a pin dir holding another version's map is refused by name, and nothing is attached", async (t) => {
  if (missing) return t.fail(missing);
  const cg = createCgroup();
  const bpffs = createBpffsDir();
  try {
    // sluice_counters of another map type: not one an upgrade can migrate (fewer counters
    // would be migrated in place: test/faults/upgrade.test.ts).
    const maps = pinLayout(bpffs.path).maps;
    await runInCgroup(cg, 'mkdir', ['-p', maps]);
    const made = await runInCgroup(cg, 'bpftool', ['map', 'create', `${maps}/sluice_counters`, 'type', 'array', 'key', '4', 'value', '8', 'entries', '3', 'name', 'sluice_counters']);
    t.is(made.code, 0, made.stderr);
    const err = t.throws(() => BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: bpffs.path }));
    t.is((err as LoaderError).code, 'PINNED_MAP_INCOMPATIBLE');
    t.regex(err!.message, /sluice_counters .*type 2 pinned, 6 in this build.*sluice uninstall --bpffs/);
    const shown = await runInCgroup(cg, 'bpftool', ['-j', 'cgroup', 'show', cg.path]);
    t.deepEqual(JSON.parse(shown.stdout.trim() || '[]'), [], 'nothing attached to the cgroup');
    t.deepEqual(readdirSync(maps), ['sluice_counters'], 'no map created or pinned');
  } finally {
    bpffs.destroy();
    await cg.destroy();
  }
});

test.serial('uninstall removes links, pins and maps; the pod is then untouched', async (t) => {
  const e = ready(t);
  if (!e) return;
  const report = uninstall(e.bpffs.path);
  for (const { program } of CGROUP_PROGRAMS) t.true(report.detached.includes(program), `${program} detached`);
  t.true(report.detached.includes(`netns/${e.cookie}`));
  t.false(existsSync(pinLayout(e.bpffs.path).root));
  const shown = await new Promise<string>((resolve) => {
    const c = spawn('bpftool', ['-j', 'cgroup', 'show', e.cg.path], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('close', () => resolve(out.trim()));
  });
  t.deepEqual(JSON.parse(shown || '[]'), [], 'bpftool cgroup show lists nothing');
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
  t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 8080);
});
