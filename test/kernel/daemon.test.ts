// `sluice run` as a real child process against real programs, real namespaces and real
// connections: HTTP API, capture and lookups, live edits of the source file, bad input,
// kill -9 and restart, uninstall, and the host left alone. Each test builds its own world
// (pod namespaces, a private cgroup holding every probe, a private bpffs directory and a
// source file) and tears it down, whatever happens.
//
//   pod i   10.1.0.2  listeners 15001, 15006 (the sidecar), probes as uid 1000 (the app)
//   peer i  10.2.0.5:80 on its lo: where an uncaptured connection lands
import test, { type ExecutionContext } from 'ava';
import { existsSync, statSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { CGROUP_PROGRAMS, MAP_NAMES, netnsLinkPath } from '../../src/bpf/loader.js';
import { findCgroup2Mount } from '../../src/bpf/system.js';
import type { PodState } from '../../src/daemon/reconcile.js';
import { bpfRequirementsMissing, connect, reapStale, spawnInCgroup } from './bpf-fixture.js';
import {
  cgroupPrograms,
  createWorld,
  killAllDaemons,
  links,
  lsPinDir,
  mapIds,
  metric,
  metricNames,
  programIds,
  reapStaleWorkDirs,
  REMOTE,
  sluice,
  sourceYaml,
  startDaemon,
  waitFor,
  type Daemon,
  type Metrics,
  type PodSpec,
  type World,
} from './harness/daemon.js';
import { exec } from './harness/exec.js';
import type { ProbeResult } from './harness/probe.js';
import { findTool, tool } from './harness/requirements.js';
import { reapStaleNamespaces } from './harness/topology.js';

function requirementsMissing(): string | null {
  const missing = [bpfRequirementsMissing()].filter((m): m is string => m !== null);
  for (const t of ['bpftool', 'python3']) if (!findTool(t)) missing.push(`\`${t}\` on PATH (the daemon test checks pins with bpftool and holds connections open with python3)`);
  return missing.length ? missing.join('\n') : null;
}

const missing = requirementsMissing();
const worlds = new Set<World>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EXCLUDE_PORTS = 'traffic.sidecar.istio.io/excludeOutboundPorts';
/** The cgroup programs one installation attaches, by name. */
const PROGRAMS = CGROUP_PROGRAMS.map((p) => p.program as string).sort();

test.before(async () => {
  if (missing) return;
  await reapStaleNamespaces();
  reapStale();
  reapStaleWorkDirs();
});

test.after.always(async () => {
  await killAllDaemons();
  await Promise.all([...worlds].map((w) => w.destroy()));
});

/** Builds a world of `pods` pods, runs `body`, and always tears everything down. */
async function inWorld(t: ExecutionContext, pods: number, body: (w: World) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  const w = await createWorld(pods);
  worlds.add(w);
  try {
    await body(w);
  } finally {
    await killAllDaemons();
    await w.destroy();
    worlds.delete(w);
  }
}

const daemonFor = (w: World, extraArgs: string[] = []) => startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs });

/** Pod i of the world, as the source file names it. */
const podSpec = (w: World, i: number, annotations: Record<string, string> = {}): PodSpec => ({ name: `pod${i}`, netns: w.pods[i]!.pod.path, annotations });

/** An app connection (uid 1000) from pod i to the remote service. */
const appConnect = (w: World, i: number) => connect(w.cg, { netnsPath: w.pods[i]!.pod.path, dst: REMOTE, uid: 1000 });

function where(r: ProbeResult): string {
  return r.ok ? `${r.server.server}:${r.server.port} origDst=${r.server.origDst}` : `failed: ${r.error}`;
}

/** Captured: accepted by the pod's outbound listener, which reads the original destination. */
const captured = (r: ProbeResult, i: number) => r.ok && r.server.server === `pod${i}` && r.server.port === 15001 && r.server.origDst === REMOTE && r.clientPeer === REMOTE;
/** Passed: reached the remote service itself. */
const direct = (r: ProbeResult, i: number) => r.ok && r.server.server === `peer${i}` && r.server.port === 80;

async function pods(d: Daemon): Promise<PodState[]> {
  return d.json<PodState[]>('/v1/pods');
}

async function podState(d: Daemon, name: string): Promise<PodState | undefined> {
  return (await pods(d)).find((p) => p.name === name);
}

/** Waits until /readyz answers 200. */
const ready = (d: Daemon) => waitFor('/readyz 200', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 10_000);

/** Waits until pod `name` has `status` in /v1/pods. */
const podStatus = (d: Daemon, name: string, status: PodState['status']) =>
  waitFor(`pod ${name} ${status}`, async () => {
    const p = await podState(d, name);
    return p?.status === status ? p : undefined;
  });

const waitMetric = (d: Daemon, what: string, pred: (m: Metrics) => boolean) =>
  waitFor(what, async () => {
    const m = await d.metrics();
    return pred(m) ? m : undefined;
  });

/** Sum of the kernel decision counters with this outcome (outbound-proxy, pass...). */
function decisions(m: Metrics, outcome: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k.startsWith('sluice_decisions_total{') && k.includes(`outcome="${outcome}"`)) sum += v;
  return sum;
}

/** Polls app connections from pod i every 50 ms until `pred` holds; the time since `since`. */
async function heldAfter(w: World, i: number, since: number, pred: (r: ProbeResult) => boolean, timeoutMs = 5000): Promise<{ ms: number; seen: string[] }> {
  const seen: string[] = [];
  for (;;) {
    const r = await appConnect(w, i);
    const now = Date.now();
    seen.push(where(r));
    if (pred(r)) return { ms: now - since, seen };
    if (now - since > timeoutMs) throw new Error(`the change did not hold within ${timeoutMs} ms; connections saw: ${seen.join(' | ')}`);
    await sleep(50);
  }
}

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

    for (const p of states) t.deepEqual(Object.keys(p).sort(), ['error', 'istioIptables', 'name', 'namespace', 'netns', 'netnsCookie', 'policy', 'status']);
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

/** A python client in pod 0 (uid 1000) that holds a connection to REMOTE open; its source port. */
async function holdConnection(w: World): Promise<{ port: number; close(): void }> {
  const [ip, port] = REMOTE.split(':');
  const script = `
import encodings.idna, os, socket, time  # idna: loaded while root can still read the stdlib
os.setgid(1000); os.setuid(1000)
s = socket.create_connection(('${ip}', ${port}))
print(s.getsockname()[1], flush=True)
time.sleep(600)  # stdin is /dev/null: only a kill ends it
`;
  const child = spawnInCgroup(w.cg, 'nsenter', [`--net=${w.pods[0]!.pod.path}`, 'python3', '-c', script]);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`holding client exited ${code}: ${stderr}`)));
  });
  return { port: Number(line.trim()), close: () => child.kill('SIGKILL') };
}

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

    const held = await holdConnection(w);
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

test.serial('live change: an edit of the file holds within 1 s, and a removed pod loses its policy', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0));
    const cookie0 = BigInt((await podState(d, 'pod0'))!.netnsCookie!);
    t.true(existsSync(netnsLinkPath(w.bpffs, cookie0)));

    // Excluding port 80, written in place.
    let since = Date.now();
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '80' }), podSpec(w, 1)]));
    const excluded = await heldAfter(w, 0, since, (r) => direct(r, 0));
    t.log(`exclude port 80 (write in place) held after ${excluded.ms} ms: ${excluded.seen.join(' | ')}`);
    t.true(excluded.ms < 1000, `held within 1 s (took ${excluded.ms} ms)`);
    t.deepEqual((await podState(d, 'pod0'))?.policy?.excludeOutboundPorts, [80]);
    t.true(captured(await appConnect(w, 1), 1), 'the other pod is untouched');

    // Back to capture, the file replaced by rename as an editor does.
    since = Date.now();
    w.replace(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const recaptured = await heldAfter(w, 0, since, (r) => captured(r, 0));
    t.log(`annotation removed (rename) held after ${recaptured.ms} ms`);
    t.true(recaptured.ms < 1000, `held within 1 s (took ${recaptured.ms} ms)`);

    // The pod leaves the file: its policy and its sk_lookup link go.
    since = Date.now();
    w.write(sourceYaml([podSpec(w, 1)]));
    const removed = await heldAfter(w, 0, since, (r) => direct(r, 0));
    t.log(`pod removed held after ${removed.ms} ms`);
    t.true(removed.ms < 1000, `held within 1 s (took ${removed.ms} ms)`);
    t.deepEqual((await pods(d)).map((p) => p.name), ['pod1']);
    t.false(existsSync(netnsLinkPath(w.bpffs, cookie0)), 'the sk_lookup link of the removed pod is gone');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_map_entries', { map: 'sluice_pods' }), 1);
    t.true(captured(await appConnect(w, 1), 1), 'the remaining pod is still captured');
  });
});

test.serial('bad input: malformed YAML keeps the last good policies, and is counted', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    const before = metric(await d.metrics(), 'sluice_source_errors_total');

    w.write('apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n  annotations: :\n');
    await waitMetric(d, 'sluice_source_errors_total to grow', (m) => metric(m, 'sluice_source_errors_total') > before);
    await sleep(200);
    t.true(d.alive(), 'the daemon lives');
    t.is((await d.get('/healthz')).status, 200);
    t.true(captured(await appConnect(w, 0), 0), 'pod0 keeps its policy');
    t.true(captured(await appConnect(w, 1), 1), 'pod1 keeps its policy');
    t.deepEqual(
      (await pods(d)).map((p) => [p.name, p.status]),
      [
        ['pod0', 'applied'],
        ['pod1', 'applied'],
      ],
      '/v1/pods still shows the policies in force',
    );

    // One broken document, one good one: the good one is applied, the broken pod kept.
    const good = sourceYaml([podSpec(w, 1, { [EXCLUDE_PORTS]: '80' })]);
    w.write(`apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n---\n${good}`);
    await heldAfter(w, 1, Date.now(), (r) => direct(r, 1));
    t.true(captured(await appConnect(w, 0), 0), 'the pod in the broken document is unknown, not gone: still captured');
    t.true(d.alive());
    t.is(metric(await d.metrics(), 'sluice_map_entries', { map: 'sluice_pods' }), 2);
  });
});

test.serial('bad input: a bad annotation rejects that pod alone, which keeps its last good policy', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    const before = metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'policy_rejected' });

    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1, { [EXCLUDE_PORTS]: '80,99999' })]));
    const bad = await podStatus(d, 'pod1', 'rejected');
    t.regex(bad.error ?? '', /excludeOutboundPorts/);
    t.regex(bad.error ?? '', /99999/);
    t.deepEqual(bad.policy?.excludeOutboundPorts, [], 'the last good policy is reported as the one in force');
    t.true(captured(await appConnect(w, 1), 1), 'and is the one in the kernel: port 80 still captured');
    t.like(await podState(d, 'pod0'), { status: 'applied', error: null });
    t.true(captured(await appConnect(w, 0), 0), 'the other pod is applied and captured');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), before + 1, 'counted once, by reason');
    t.is(metric(m, 'sluice_pods', { status: 'rejected' }), 1);

    // An unrelated edit re-reconciles everything: the same bad pod is not counted again.
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '443' }), podSpec(w, 1, { [EXCLUDE_PORTS]: '80,99999' })]));
    await waitFor('pod0 to exclude 443', async () => ((await podState(d, 'pod0'))?.policy?.excludeOutboundPorts?.[0] === 443 ? true : undefined));
    t.is(metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), before + 1);
    t.true(d.alive());
  });
});

test.serial('bad input: a pod whose netns vanished is rejected and its entry removed; the daemon lives', async (t) => {
  await inWorld(t, 1, async (w) => {
    const gonePath = await w.extraNetns();
    w.write(sourceYaml([podSpec(w, 0), { name: 'gone', netns: gonePath, ips: ['10.9.0.9'] }]));
    const d = await daemonFor(w, ['--resync', '0.5']);
    await ready(d);
    const gone = (await podStatus(d, 'gone', 'applied'))!;
    const cookie = BigInt(gone.netnsCookie!);
    t.true(existsSync(netnsLinkPath(w.bpffs, cookie)));
    t.is(metric(await d.metrics(), 'sluice_map_entries', { map: 'sluice_pods' }), 2);
    const before = metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'netns_unavailable' });

    // The namespace goes away; the file does not change. The periodic resync notices.
    await exec(tool('ip'), ['netns', 'del', gonePath.split('/').pop()!]);
    const rejected = await podStatus(d, 'gone', 'rejected');
    t.true(rejected.error?.includes(gonePath), rejected.error ?? '');
    t.is(rejected.policy, null, 'a vanished netns loses its entry');
    const m = await waitMetric(d, 'the pod policy entry to go', (x) => metric(x, 'sluice_map_entries', { map: 'sluice_pods' }) === 1);
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'netns_unavailable' }), before + 1, 'counted once');
    t.false(existsSync(netnsLinkPath(w.bpffs, cookie)), 'its sk_lookup link pin is gone');
    t.true(d.alive());
    t.like(await podState(d, 'pod0'), { status: 'applied' });
    t.true(captured(await appConnect(w, 0), 0), 'the other pod is unaffected');
  });
});

test.serial('bad input: a full map (--max-pods 1) rejects the second pod with a clear error and a metric', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w, ['--max-pods', '1']);
    await ready(d);
    t.like(await podState(d, 'pod0'), { status: 'applied' });
    const full = (await podState(d, 'pod1'))!;
    t.is(full.status, 'rejected');
    t.regex(full.error ?? '', /sluice_pods is full/);
    t.regex(full.error ?? '', /--max-pods/, 'the error names the flag that raises the capacity');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'map_full' }), 1);
    t.is(metric(m, 'sluice_map_entries', { map: 'sluice_pods' }), 1);
    t.is(metric(m, 'sluice_map_capacity', { map: 'sluice_pods' }), 1);
    t.true(captured(await appConnect(w, 0), 0), 'the applied pod is captured');
    t.true(direct(await appConnect(w, 1), 1), 'the rejected pod is simply not captured');

    // Edits keep coming: still no crash, and the first pod's change is applied.
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '80' }), podSpec(w, 1)]));
    await heldAfter(w, 0, Date.now(), (r) => direct(r, 0));
    t.true(d.alive());
    t.is((await podState(d, 'pod1'))?.status, 'rejected');
  });
});

test.serial('restart: kill -9 while connections flow; capture never stops and the new daemon adopts the pins', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const first = await daemonFor(w);
    await ready(first);
    const progsBefore = await cgroupPrograms(w.cg.path);

    type Phase = 'before' | 'down' | 'after';
    let phase: Phase = 'before';
    let stop = false;
    const outcomes: { phase: Phase; ok: boolean; what: string }[] = [];
    const traffic = (async () => {
      while (!stop) {
        const p = phase;
        const r = await appConnect(w, 0);
        outcomes.push({ phase: p, ok: captured(r, 0), what: where(r) });
      }
    })();
    let second: Daemon | null = null;
    try {
      await waitFor('connections before the kill', async () => (outcomes.length >= 5 ? true : undefined));
      await first.kill9();
      phase = 'down';
      const whileDown = await appConnect(w, 0);
      t.true(captured(whileDown, 0), `a connection made while the daemon is dead is captured: ${where(whileDown)}`);
      await waitFor('connections while the daemon is down', async () => (outcomes.filter((o) => o.phase === 'down').length >= 3 ? true : undefined));
      second = await startDaemon({ ...first.options });
      await ready(second);
      phase = 'after';
      await waitFor('connections after the restart', async () => (outcomes.filter((o) => o.phase === 'after').length >= 5 ? true : undefined));
    } finally {
      stop = true;
      await traffic;
    }
    const count = (p: Phase) => outcomes.filter((o) => o.phase === p).length;
    t.log(`connections: ${count('before')} before, ${count('down')} while down, ${count('after')} after the restart`);
    const missed = outcomes.filter((o) => !o.ok);
    t.deepEqual(missed, [], 'every connection, before, during and after, was captured');

    const m = await second!.metrics();
    t.is(metric(m, 'sluice_programs_attached', { how: 'adopted' }), PROGRAMS.length + 1, 'every cgroup link and the sk_msg link adopted, its program swapped in place');
    t.is(metric(m, 'sluice_programs_attached', { how: 'new' }), 0, 'nothing attached twice');
    t.is(metric(m, 'sluice_maps_adopted'), MAP_NAMES.length, 'every pinned map reused with its contents');
    t.like(await podState(second!, 'pod0'), { status: 'applied' });
    const progsAfter = await cgroupPrograms(w.cg.path);
    t.deepEqual(progsAfter.map((p) => p.name).sort(), progsBefore.map((p) => p.name).sort(), 'still exactly one of each program on the cgroup');
    t.true(second!.output().includes('"updated":["sluice_connect4"'), 'the restart log says the links were updated in place');
  });
});

test.serial('uninstall: `sluice uninstall` leaves nothing, checked with bpftool and ls', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0));

    // What this run put in the kernel: the cgroup programs, the pod's sk_lookup link, and the maps they use.
    const podIno = statSync(w.pods[0]!.pod.path).ino;
    const ours = (await cgroupPrograms(w.cg.path)).map((p) => p.id);
    const skLookup = (await links()).filter((l) => l.type === 'netns' && l.netns_ino === podIno);
    t.is(skLookup.length, 1, 'the pod netns has one sk_lookup link');
    ours.push(...skLookup.map((l) => l.prog_id));
    const ourMaps = new Set<number>();
    for (const id of ours) for (const m of (await exec(tool('bpftool'), ['-j', 'prog', 'show', 'id', String(id)]).then((r) => JSON.parse(r.stdout) as { map_ids?: number[] })).map_ids ?? []) ourMaps.add(m);
    t.true(ourMaps.size >= MAP_NAMES.length, `the programs use the sluice maps (${ourMaps.size})`);

    // Stopping the daemon detaches nothing.
    await d.stop();
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS);
    t.true(captured(await appConnect(w, 0), 0), 'capture goes on without the daemon');

    const r = await sluice(['uninstall', '--cgroup', w.cg.path, '--bpffs', w.bpffs]);
    t.is(r.code, 0, r.stderr);
    t.log(r.stdout.trim());
    const ls = await lsPinDir(w.bpffs);
    t.true(ls.code !== 0 || ls.stdout.trim() === '', `ls ${w.bpffs}: ${ls.stdout}${ls.stderr}`);
    t.false(existsSync(w.bpffs), 'the pin directory is gone');
    t.deepEqual(await cgroupPrograms(w.cg.path), [], 'bpftool cgroup show lists nothing');
    t.deepEqual(
      (await links()).filter((l) => l.type === 'netns' && l.netns_ino === podIno),
      [],
      'no sk_lookup link in the pod netns',
    );
    // Programs and maps are freed once their last reference goes (RCU: not at once).
    const left = await waitFor(
      'our programs and maps to be freed',
      async () => {
        const progs = await programIds();
        const maps = await mapIds();
        const l = [...ours.filter((id) => progs.has(id)).map((id) => `prog ${id}`), ...[...ourMaps].filter((id) => maps.has(id)).map((id) => `map ${id}`)];
        return l.length === 0 ? l : undefined;
      },
      5000,
      100,
    ).catch((e: Error) => [e.message]);
    t.deepEqual(left, [], 'no program or map of this run is left in bpftool prog/map show');
    t.true(direct(await appConnect(w, 0), 0), 'the pod is untouched now');
  });
});

/** A loopback server in the host netns (this process, outside the cgroup) that answers like the probe. */
function hostServer(): Promise<{ port: number; accepted: { local: string; remote: string }[]; close(): Promise<void> }> {
  const accepted: { local: string; remote: string }[] = [];
  const server = createServer((sock) => {
    const local = `${sock.localAddress}:${sock.localPort}`;
    const remote = `${sock.remoteAddress}:${sock.remotePort}`;
    accepted.push({ local, remote });
    sock.setEncoding('utf8');
    sock.once('data', () => {
      sock.end(JSON.stringify({ server: 'host', port: sock.localPort, peer: remote, local, origDst: null, origDstErrno: 0, tag: '-' }) + '\n');
    });
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ port, accepted, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

test.serial('host untouched: nothing on the root cgroup, host loopback connections are not redirected', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0), 'the daemon captures in the pod');

    const root = findCgroup2Mount()!;
    const onRoot = (await cgroupPrograms(root)).filter((p) => p.name.startsWith('sluice'));
    t.deepEqual(onRoot, [], `bpftool cgroup show ${root}: no sluice program on the host root cgroup`);

    const server = await hostServer();
    try {
      // A host process outside the cgroup.
      const reply = await new Promise<string>((resolve, reject) => {
        const c = createConnection({ host: '127.0.0.1', port: server.port }, () => c.write('hello\n'));
        let buf = '';
        c.setEncoding('utf8');
        c.on('data', (x: string) => (buf += x));
        c.on('end', () => resolve(buf));
        c.on('error', reject);
      });
      t.like(JSON.parse(reply), { server: 'host', port: server.port });
      // A host-netns process inside the private cgroup, as an app uid: the programs run
      // for it, and let it be (the host netns has no policy).
      const before = metric(await d.metrics(), 'sluice_datapath_events_total', { event: 'connect_no_policy' });
      const r = await connect(w.cg, { netnsPath: `/proc/${process.pid}/ns/net`, dst: `127.0.0.1:${server.port}`, uid: 1000 });
      t.true(r.ok && r.server.server === 'host' && r.server.port === server.port, where(r));
      t.true(r.ok && r.clientPeer === `127.0.0.1:${server.port}`);
      t.true(metric(await d.metrics(), 'sluice_datapath_events_total', { event: 'connect_no_policy' }) > before, 'the programs saw it and let it be');
      t.is(server.accepted.length, 2);
      for (const a of server.accepted) t.is(a.local, `127.0.0.1:${server.port}`, 'accepted on the port it was sent to: not redirected');
    } finally {
      await server.close();
    }
    t.true(d.alive());
  });
});
