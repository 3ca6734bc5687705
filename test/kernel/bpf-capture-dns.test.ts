// DNS capture end to end (the sandbox of harness/capture-suite.ts): with dnsCapture on, an
// app's UDP (connected and sendto, IPv4, IPv6 and IPv4-mapped) and TCP DNS reach a
// loopback-only listener, as Istio's agent binds 15053, and each reply comes from the
// server the app asked; the proxy's own DNS goes to the real server.
import test from 'ava';
import { createInterface } from 'node:readline';
import { bpfRequirementsMissing, runInNetns, spawnInCgroup, startServer } from './bpf-fixture.js';
import { listenerSuite } from './harness/capture-suite.js';

const missing = bpfRequirementsMissing();
const ready = listenerSuite(missing);

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
