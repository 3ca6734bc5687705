// `sluice run` as a real child process against real programs, real namespaces and real
// connections: its HTTP API, and capture with lookups of an open connection over HTTP, the
// unix socket and `sluice lookup`. Live edits and bad input are in daemon-live.test.ts;
// restart, uninstall and the host left alone in daemon-lifecycle.test.ts.
// Each test builds its own world and tears it down (harness/daemon-suite.ts).
import test from 'ava';
import { createConnection, type Socket } from 'node:net';
import type { PodState } from '../../src/daemon/reconcile.js';
import { cgroupPrograms, decisions, metric, metricNames, REMOTE, sluice, sourceYaml, waitFor } from './harness/daemon.js';
import { appConnect, captured, daemonFor, daemonSuite, EXCLUDE_PORTS, pods, podSpec, PROGRAMS, ready, where } from './harness/daemon-suite.js';
import { holdConnection } from './harness/hold-connection.js';

const { missing, inWorld } = daemonSuite();

test.serial('daemon test requirements are met', (t) => {
  t.is(missing, null);
});

test.serial('HTTP: /healthz, /readyz only once attached and every pod reconciled, /v1/pods, /metrics', async (t) => {
  await inWorld(t, 2, async (w) => {
    // The source does not exist yet: the daemon lives, is healthy, and is not ready.
    const d = await daemonFor(w);
    t.is((await d.get('/healthz')).status, 200);
    t.is((await d.get('/readyz')).status, 503, 'no pod has been reconciled: not ready');
    t.deepEqual(await pods(d), []);
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS, 'the programs are attached before anything else');

    // One good pod and one with a bad annotation: ready means each is applied or rejected.
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1, { [EXCLUDE_PORTS]: 'eighty' })]));
    await ready(d);
    const states = await pods(d);
    t.deepEqual(
      states.map((p) => [p.name, p.status]),
      [
        ['pod0', 'applied'],
        ['pod1', 'rejected'],
      ],
      'ready only once every pod in the source is applied or rejected',
    );
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS);

    // istioIptables (the double-capture check) is there once that check has answered.
    for (const p of states) t.deepEqual(Object.keys(p).filter((k) => k !== 'istioIptables').sort(), ['error', 'name', 'namespace', 'netns', 'netnsCookie', 'policy', 'status']);
    const [a, b] = states as [PodState, PodState];
    t.like(a, { namespace: 'default', name: 'pod0', netns: w.pods[0]!.pod.path, error: null });
    t.regex(a.netnsCookie ?? '', /^\d+$/);
    t.deepEqual(a.policy?.podIPs, ['10.1.0.2', 'fd00::2']);
    t.deepEqual(a.policy?.proxyUids, [1337]);
    t.like(b, { namespace: 'default', name: 'pod1', netns: w.pods[1]!.pod.path, policy: null });
    t.regex(b.error ?? '', /excludeOutboundPorts/, 'the error names the bad annotation');

    // One captured connection and one bad lookup, so every family of series has samples.
    t.true(captured(await appConnect(w, 0), 0));
    t.is((await d.get('/v1/original-destination?src=nonsense&dst=10.1.0.2:15001')).status, 400);
    const res = await d.get('/metrics');
    t.is(res.status, 200);
    const m = await d.metrics();
    const names = metricNames(m);
    for (const n of ['sluice_decisions_total', 'sluice_map_entries', 'sluice_map_capacity', 'sluice_reconcile_errors_total', 'sluice_lookup_requests_total', 'sluice_source_errors_total', 'sluice_pods']) {
      t.true(names.has(n), `/metrics has ${n}`);
    }
    t.true([...names].every((n) => n.startsWith('sluice_')), `only sluice_* names: ${[...names].filter((n) => !n.startsWith('sluice_')).join(', ')}`);
    t.true(decisions(m, 'outbound-proxy') >= 1, 'decisions by outcome: outbound-proxy');
    t.true([...m.keys()].some((k) => k.startsWith('sluice_decisions_total{') && k.includes('outcome="pass"')), 'decisions by outcome: pass');
    t.is(metric(m, 'sluice_map_entries', { map: 'sluice_pods' }), 1, 'map fill: one pod policy');
    t.is(metric(m, 'sluice_map_capacity', { map: 'sluice_pods' }), 512);
    t.true(metric(m, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }) >= 1);
    t.true(metric(m, 'sluice_source_errors_total') >= 1, 'the missing source at startup was counted');
    t.is(metric(m, 'sluice_lookup_requests_total', { via: 'http', result: 'bad_request' }), 1);
    t.is(metric(m, 'sluice_pods', { status: 'applied' }), 1);
    t.is(metric(m, 'sluice_pods', { status: 'rejected' }), 1);
    t.is((await d.get('/nope')).status, 404);
  });
});

/** One request line on the lookup socket; the answer line. */
function askSocket(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createConnection(path);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl !== -1) {
        sock.end();
        resolve(buf.slice(0, nl));
      }
    });
    sock.write(line + '\n');
  });
}

test.serial('capture through the daemon; an open connection is looked up over HTTP, the unix socket and `sluice lookup`', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const d = await daemonFor(w);
    await ready(d);
    const r = await appConnect(w, 0);
    t.true(captured(r, 0), where(r));
    t.true(r.ok && r.server.local === '10.1.0.2:15001', 'the outbound listener accepted it on the pod address');

    const held = await holdConnection(w.cg, w.pods[0]!.pod.path, REMOTE);
    const src = `10.1.0.2:${held.port}`;
    const dst = '10.1.0.2:15001';
    try {
      const http = await d.get(`/v1/original-destination?src=${encodeURIComponent(src)}&dst=${encodeURIComponent(dst)}`);
      t.is(http.status, 200, http.body);
      t.deepEqual(JSON.parse(http.body), { originalDestination: REMOTE });
      t.is(await askSocket(w.lookupSocket, `${src} ${dst}`), `OK ${REMOTE}`);
      t.is(await askSocket(w.lookupSocket, `10.1.0.2:1 ${dst}`), 'NOTFOUND');
      t.regex(await askSocket(w.lookupSocket, 'garbage'), /^ERR /);
      const cli = await sluice(['lookup', src, dst, '--bpffs', w.bpffs]);
      t.is(cli.code, 0, cli.stderr);
      t.is(cli.stdout.trim(), REMOTE);
    } finally {
      held.close();
    }
    const m = await d.metrics();
    t.is(metric(m, 'sluice_lookup_requests_total', { via: 'http', result: 'found' }), 1);
    t.is(metric(m, 'sluice_lookup_requests_total', { via: 'unix', result: 'found' }), 1);
    t.is(metric(m, 'sluice_lookup_requests_total', { via: 'unix', result: 'not_found' }), 1);
    t.is(metric(m, 'sluice_lookup_requests_total', { via: 'unix', result: 'bad_request' }), 1);
    // The record goes with the connection.
    await waitFor('the lookup to answer 404 once the connection is closed', async () => ((await d.get(`/v1/original-destination?src=${src}&dst=${dst}`)).status === 404 ? true : undefined));
    t.true(metric(await d.metrics(), 'sluice_lookup_requests_total', { via: 'http', result: 'not_found' }) >= 1);
  });
});
