// The eBPF data plane end to end, in a private cgroup, private namespaces and a private
// bpffs directory: real programs, real connections, real listeners. This file: where
// connections go, what passes through untouched, and the original-destination lookup.
// DNS capture is in bpf-capture-dns.test.ts; policy changes, restarts and uninstall in
// bpf-capture-lifecycle.test.ts. The sandbox (harness/capture-suite.ts):
//
//   pod  10.1.0.2/24 fd00::2/64 (listeners 15001, 15006, 8080 start BEFORE capture)
//   peer 10.1.0.1/24 fd00::1/64, and the "remote" 10.2.0.5 / fd00:2::5 on its lo (80, 8080)
import test from 'ava';
import { bpfRequirementsMissing, connect, serverOf } from './bpf-fixture.js';
import { listenerSuite, podClient } from './harness/capture-suite.js';
import { holdConnection } from './harness/hold-connection.js';
import { getsockoptFacts, iptablesSave } from './harness/passthrough.js';

const missing = bpfRequirementsMissing();
const ready = listenerSuite(missing);

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
  const held = await holdConnection(e.cg, e.topo.pod.path, '10.2.0.5:80');
  try {
    const found = e.dp.lookupOriginalDestination({ ip: '10.1.0.2', port: held.port }, { ip: '10.1.0.2', port: 15001 });
    t.deepEqual(found, { ip: '10.2.0.5', port: 80 });
  } finally {
    held.close();
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
