// Fault suite (issue 9): connections closed every way leave 0 records in sluice_conns and
// a per-pod count of 0: FIN, RST, refused (no proxy listener), SYN to nowhere (the
// proxy's SYNs dropped), timeout (established, then every packet dropped), half-open (the
// proxy closed, the app killed with the socket in CLOSE_WAIT) and the proxy dying with
// connections open. 1,005,000 connections in all (the 1,000,000): see COUNTS.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { runLoad, startBenchServer, type BenchServer, type LoadResult } from '../../bench/load.js';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { bpfRequirementsMissing, createBpfSandbox, reapStale, runInNetns, spawnInCgroup, startServer, type TestServer } from '../kernel/bpf-fixture.js';
import { makePolicy } from '../kernel/harness/cases.js';
import { reapStaleNamespaces } from '../kernel/harness/topology.js';

const missing = bpfRequirementsMissing();
/**
 * Connections per way of closing. FIN and RST, the bulk, come from native/bench.c (tens of
 * thousands a second, every reply checked). The other ways go through the Python client
 * below: refused ones one after another (about 450 a second here, the slowest way), and
 * the ones that must all be open at once (SYN to nowhere, timeout, half-open, proxy dies)
 * 10,000 each (opened at about 5,000 a second), half the 20,000 descriptors a process gets
 * here, in the client and in the proxy.
 */
const COUNTS = { fin: 500_000, rst: 445_000, refused: 20_000, syn: 10_000, timeout: 10_000, halfopen: 10_000, proxydies: 10_000 };
/** The reply of every bulk connection: the proxy's listener and the original destination. */
const EXPECT = '15001 10.2.0.5:80';

const CLIENT = `
import encodings.idna, json, os, resource, select, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
os.setgid(1000); os.setuid(1000)
mode, n, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
DST = ('10.2.0.5', 80)
errors = {}
def err(e):
    k = type(e).__name__
    errors[k] = errors.get(k, 0) + 1
def wait_marker():
    print('ready', flush=True)
    while not os.path.exists(marker):
        time.sleep(0.05)
def open_all(line):
    socks = []
    for _ in range(n):
        s = socket.create_connection(DST, timeout=5)
        if line:
            s.sendall(b'leak\\n')
        socks.append(s)
    return socks
if mode == 'refused':
    for _ in range(n):
        try:
            s = socket.create_connection(DST, timeout=5)
            s.sendall(b'leak\\n')
            while s.recv(4096):
                pass
            s.close()
        except Exception as e:
            err(e)
elif mode == 'syn':
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(DST)
        socks.append(s)
    time.sleep(1.5)
    for s in socks:
        s.close()
elif mode == 'timeout':
    socks = open_all(False)
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, 18, 500)  # TCP_USER_TIMEOUT
    wait_marker()
    for s in socks:
        s.sendall(b'x')
    for s in socks:
        try:
            s.settimeout(10)
            s.recv(1)
        except Exception as e:
            err(e)
        s.close()
elif mode == 'proxydies':
    socks = open_all(False)
    wait_marker()
    # 10 s in all (not each) for every socket to see the proxy go.
    p, left, end = select.poll(), {s.fileno(): s for s in socks}, time.time() + 10
    for s in socks:
        p.register(s, select.POLLIN)
    while left and time.time() < end:
        for fd, _ in p.poll(100):
            p.unregister(fd)
            left.pop(fd)
    errors['StillOpen'] = len(left)
    for s in socks:
        try:
            s.setblocking(False)
            while s.recv(4096):
                pass
        except BlockingIOError:
            pass
        except Exception as e:
            err(e)
        s.close()
elif mode == 'halfopen':
    socks = open_all(True)
    time.sleep(0.5)  # the proxy answers and closes its side: every socket is in CLOSE_WAIT
    print('ready', flush=True)
    time.sleep(600)  # until killed
print(json.dumps({'mode': mode, 'errors': errors}), flush=True)
`;

test.before(async () => {
  if (missing) return;
  await reapStaleNamespaces();
  reapStale();
});

test.serial('connections closed every way leave 0 records in sluice_conns', async (t) => {
  if (missing) return t.fail(missing);
  const box = await createBpfSandbox();
  const servers: TestServer[] = [];
  let dp: BpfDataPlane | null = null;
  const marker = join(tmpdir(), `sluice-test-${process.pid}-${randomBytes(3).toString('hex')}-go`);
  const pod = box.topo.pod.path;
  const proxy = async () => {
    const s = await startServer(box.cg, 'pod', pod, [15001, 15006]);
    servers.push(s);
    return s;
  };
  const iptables = async (op: '-I' | '-D') => {
    const r = await runInNetns(box.cg, pod, 'iptables-legacy', [op, 'INPUT', '-p', 'tcp', '--dport', '15001', '-j', 'DROP']);
    if (r.code !== 0) throw new Error(`iptables in the pod netns: ${r.stderr}`);
  };
  /** Seconds each way took. */
  const took: Partial<Record<keyof typeof COUNTS, number>> = {};
  /** Runs one client mode; `during` runs once it says ready (then the marker is set). */
  const client = async (mode: Exclude<keyof typeof COUNTS, 'fin' | 'rst'>, during?: (kill: () => void) => Promise<void>) => {
    const t0 = Date.now();
    rmSync(marker, { force: true });
    const child = spawnInCgroup(box.cg, 'nsenter', [`--net=${pod}`, 'python3', '-c', CLIENT, mode, String(COUNTS[mode]), marker]);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = createInterface({ input: child.stdout! });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const out: string[] = [];
    lines.on('line', (l) => out.push(l));
    if (during) {
      await new Promise<void>((resolve, reject) => {
        lines.once('line', () => resolve());
        void exited.then((c) => reject(new Error(`${mode} client exited ${c} before ready: ${stderr}`)));
      });
      await during(() => child.kill('SIGKILL'));
      writeFileSync(marker, '');
    }
    const code = await exited;
    took[mode] = (Date.now() - t0) / 1000;
    const result = out.find((l) => l.startsWith('{'));
    if (mode !== 'halfopen' && (code !== 0 || !result)) throw new Error(`${mode} client exited ${code}: ${stderr}`);
    return result ? (JSON.parse(result) as { errors: Record<string, number> }) : { errors: {} };
  };
  let bench: BenchServer | null = null;
  const started = Date.now();
  try {
    servers.push(await startServer(box.cg, 'peer', box.topo.peer.path, [80]));
    dp = BpfDataPlane.install({ cgroupDir: box.cg.path, bpffsDir: box.bpffs.path });
    const cookie = dp.cookieOf(pod);
    dp.applyPolicy(cookie, makePolicy());
    dp.setConnQuota(0);
    const before = dp.readCounters();

    // The bulk: the bench's server plays the proxy (it asks SO_ORIGINAL_DST of each).
    bench = await startBenchServer(box.cg, pod, [15001, 15006], [], null);
    const bulk: Partial<Record<'fin' | 'rst', LoadResult>> = {};
    for (const close of ['fin', 'rst'] as const) {
      const r = await runLoad(box.cg, { netnsPath: pod, dst: '10.2.0.5:80', expect: EXPECT, uid: 1000, concurrency: 64, warmupMs: 0, durationMs: 240_000, close, cpu: null, count: COUNTS[close] });
      bulk[close] = r;
      took[close] = r.seconds;
      t.deepEqual({ connections: r.connections, errors: r.errors, mismatches: r.mismatches }, { connections: COUNTS[close], errors: 0, mismatches: 0 }, `${close}: ${r.firstError || r.firstReply}`);
    }
    await bench.stop();
    bench = null;

    let current = await proxy();
    await client('halfopen', async (kill) => kill());
    await client('timeout', () => iptables('-I'));
    await iptables('-D');
    // A new proxy: the old one still holds the timed-out connections (their closes were
    // dropped), and 10,000 more would pass its 20,000 descriptors.
    await current.stop();
    current = await proxy();
    const proxyDied = await client('proxydies', async () => {
      await current.stop(); // the proxy goes away with every connection open
    });
    current = await proxy();
    await iptables('-I');
    await client('syn');
    await iptables('-D');
    await current.stop();
    const refused = (await client('refused')).errors;
    t.deepEqual(Object.keys(refused), ['ConnectionRefusedError'], 'no proxy listener: refused');
    t.is(refused.ConnectionRefusedError, COUNTS.refused, 'every one of them');

    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (dp.maps.count('sluice_conns') > 0 || dp.connCount(cookie) > 0n)) await new Promise((r) => setTimeout(r, 100));
    const after = dp.readCounters();
    const delta = (k: string) => Number((after[k] ?? 0n) - (before[k] ?? 0n));
    const total = Object.values(COUNTS).reduce((a, b) => a + b, 0);
    t.log(`the proxy died: ${JSON.stringify(proxyDied.errors)}`);
    t.is(proxyDied.errors.StillOpen, 0, 'every connection saw the proxy die');
    const ways = Object.entries(COUNTS).map(([k, v]) => `${k} ${v} in ${took[k as keyof typeof COUNTS]?.toFixed(1)} s`);
    t.log(`${total} connections (${ways.join(', ')}; fin ${Math.round(bulk.fin!.rate)}/s, rst ${Math.round(bulk.rst!.rate)}/s) in ${((Date.now() - started) / 1000).toFixed(1)} s: records written ${delta('conn_recorded')}, deleted ${delta('conn_deleted')}, left ${dp.maps.count('sluice_conns')}`);
    t.is(dp.maps.count('sluice_conns'), 0, 'no record outlives its connection');
    t.is(dp.connCount(cookie), 0n, "the pod's live-record count is back to 0");
    t.is(delta('conn_recorded'), delta('conn_deleted'));
    t.true(delta('conn_recorded') >= COUNTS.fin + COUNTS.rst, `${delta('conn_recorded')} records written`);
    const established = COUNTS.fin + COUNTS.rst + COUNTS.timeout + COUNTS.halfopen + COUNTS.proxydies;
    t.is(delta('conn_recorded'), established, 'one record for each established connection (refused and SYN-only ones never get one)');
    // Every connection was recorded: none was turned away by a full map or a quota, so
    // the 0 above is the records' own teardown, not the capacity of sluice_conns.
    const refusals = ['conn_map_full', 'conn_quota_exceeded', 'conn_quota_refused', 'sock_storage_failed'];
    t.deepEqual(Object.fromEntries(refusals.map((k) => [k, delta(k)])), Object.fromEntries(refusals.map((k) => [k, 0])));
  } finally {
    rmSync(marker, { force: true });
    await bench?.stop();
    dp?.close();
    await Promise.all(servers.map((s) => s.stop()));
    await box.destroy();
  }
});
