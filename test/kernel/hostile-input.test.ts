// Hostile input through a running `sluice run` (issue 9, items 2, 3, 4 and 7): every pod
// author writes the source file and may talk to the lookup socket. Each case must leave
// the daemon alive, reject only the bad input, and keep the good pods' kernel state.
import test, { type ExecutionContext } from 'ava';
import { statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { stringify } from 'yaml';
import type { PodState } from '../../src/daemon/reconcile.js';
import { bpfRequirementsMissing, connect } from './bpf-fixture.js';
import { createWorld, killAllDaemons, metric, podObject, reapStaleWorld, REMOTE, sourceYaml, startDaemon, waitFor, type Daemon, type PodSpec, type World } from './harness/daemon.js';

const missing = bpfRequirementsMissing();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EXCLUDE = 'traffic.sidecar.istio.io/excludeOutboundPorts';

test.before(async () => {
  if (!missing) await reapStaleWorld();
});
test.after.always(() => killAllDaemons());

async function inWorld(t: ExecutionContext, n: number, body: (w: World) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  const w = await createWorld(n);
  try {
    await body(w);
  } finally {
    await killAllDaemons();
    await w.destroy();
  }
}

const spec = (w: World, i: number, annotations: Record<string, string> = {}): PodSpec => ({ name: `pod${i}`, netns: w.pods[i]!.pod.path, annotations });
const daemon = (w: World, extra: string[] = []) => startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs: extra });
/** pod i's app connection to the remote service lands on its own outbound listener. */
async function captured(w: World, i: number): Promise<boolean> {
  const r = await connect(w.cg, { netnsPath: w.pods[i]!.pod.path, dst: REMOTE, uid: 1000 });
  return r.ok && r.server.server === `pod${i}` && r.server.port === 15001 && r.server.origDst === REMOTE;
}
const states = (d: Daemon) => d.json<PodState[]>('/v1/pods');
const stateOf = async (d: Daemon, name: string) => (await states(d)).find((p) => p.name === name);
const until = (d: Daemon, name: string, pred: (p: PodState) => boolean) =>
  waitFor(`pod ${name}`, async () => {
    const p = await stateOf(d, name);
    return p && pred(p) ? p : undefined;
  });

/** Answer lines for `lines` sent in one write on one connection. */
function pipelined(path: string, lines: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (d: string) => {
      buf += d;
      const got = buf.split('\n').slice(0, -1);
      if (got.length >= lines.length) {
        sock.end();
        resolve(got);
      }
    });
    sock.on('end', () => resolve(buf.split('\n').slice(0, -1)));
    sock.write(lines.map((l) => l + '\n').join(''));
  });
}

test.serial('YAML bombs: a 5,000-deep document read again and again, and an alias bomb, are each skipped alone; the daemon lives', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([spec(w, 0), spec(w, 1)]));
    const d = await daemon(w, ['--resync', '0.2']);
    await until(d, 'pod1', (p) => p.status === 'applied');
    let aliases = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 9; i++) aliases += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    const good = sourceYaml([spec(w, 0, { [EXCLUDE]: '80' }), spec(w, 1)]);
    w.write(`${'['.repeat(5000)}\n---\n${aliases}---\n${good}`);
    await until(d, 'pod0', (p) => p.policy?.excludeOutboundPorts?.[0] === 80);
    await sleep(1500); // several resyncs: the file is read again and again
    t.true(d.alive(), `the daemon lives:\n${d.output().slice(-2000)}`);
    t.is(metric(await d.metrics(), 'sluice_source_errors_total'), 2, 'two bad documents, each counted once (not on every resync)');
    t.regex(d.output(), /nested more than 64 levels/);
    t.regex(d.output(), /aliases expand too far/);
    t.false(await captured(w, 0), 'the good document after the bombs applied: port 80 excluded for pod0');
    t.true(await captured(w, 1));
  });
});

test.serial('non-string annotations (true, {}, 42) reject that pod alone; later pods apply and /readyz turns 200', async (t) => {
  await inWorld(t, 2, async (w) => {
    const bad = (name: string, netns: unknown) => {
      const o = podObject({ name, netns: 'x' }) as { metadata: { annotations: Record<string, unknown> } };
      o.metadata.annotations['sluice.dev/netns'] = netns;
      return stringify(o);
    };
    w.write([bad('bool', true), bad('map', {}), bad('num', 42), sourceYaml([spec(w, 0), spec(w, 1)])].join('---\n'));
    const d = await daemon(w);
    await waitFor('/readyz 200', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 10_000);
    for (const name of ['bool', 'map', 'num']) {
      const p = await stateOf(d, name);
      t.is(p?.status, 'rejected', name);
      t.regex(p?.error ?? '', /sluice\.dev\/netns/, `${name}: the error names the key`);
    }
    t.is((await stateOf(d, 'pod0'))?.status, 'applied');
    t.is((await stateOf(d, 'pod1'))?.status, 'applied');
    t.true(await captured(w, 1));
    t.is(metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), 3);
  });
});

test.serial('lookup socket: a cookie above 2^64, 250 pipelined requests, mode 0600; the same bad input over HTTP is a 400', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([spec(w, 0)]));
    const d = await daemon(w);
    t.is(statSync(w.lookupSocket).mode & 0o777, 0o600, 'only root may connect');
    const huge = '99999999999999999999'; // 20 digits, above 2^64 - 1
    const [answer] = await pipelined(w.lookupSocket, [`10.1.0.2:1 10.1.0.2:15001 ${huge}`]);
    t.regex(answer ?? '', /^ERR .*netns/);
    const http = await d.get(`/v1/original-destination?src=127.0.0.1:1&dst=127.0.0.1:15001&netns=${huge}`);
    t.is(http.status, 400, http.body);
    const answers = await pipelined(w.lookupSocket, Array(250).fill('10.1.0.2:1 10.1.0.2:15001'));
    t.is(answers.length, 250);
    t.true(answers.every((a) => a === 'NOTFOUND'), answers.find((a) => a !== 'NOTFOUND'));
    const [long] = await pipelined(w.lookupSocket, ['x'.repeat(5000)]);
    t.is(long, 'ERR request line too long');
    t.true(d.alive(), d.output().slice(-2000));
  });
});

test.serial('lookup socket with --lookup-group 0: mode 0660, group 0', async (t) => {
  await inWorld(t, 0, async (w) => {
    w.write('');
    await daemon(w, ['--lookup-group', '0']);
    const st = statSync(w.lookupSocket);
    t.is(st.mode & 0o777, 0o660);
    t.is(st.gid, 0);
  });
});

test.serial('an empty or truncated source never removes policies by itself; a duplicate pod is reported and the first kept', async (t) => {
  await inWorld(t, 2, async (w) => {
    const full = sourceYaml([spec(w, 0), spec(w, 1)]);
    w.write(full);
    const d = await daemon(w);
    await until(d, 'pod1', (p) => p.status === 'applied');
    // Truncate, then write: the daemon reads the empty (or cut) file after its 50 ms
    // debounce, then the whole one. Nothing may be removed in between.
    for (const partial of ['', full.slice(0, full.lastIndexOf('---'))]) {
      w.write(partial);
      await sleep(100);
      w.write(full);
      await sleep(400);
      const removed = metric(await d.metrics(), 'sluice_map_writes_total', { op: 'remove' });
      t.is(removed, 0, `nothing removed after reading ${partial === '' ? 'an empty file' : 'a cut file'}`);
      t.true(await captured(w, 1));
    }
    // Duplicates: the first is used on every pass, reported once.
    w.write(`${full}---\n${sourceYaml([spec(w, 1, { [EXCLUDE]: '80' })])}`);
    await waitFor('a duplicate counted', async () => (metric(await d.metrics(), 'sluice_source_duplicates_total') === 1 ? true : undefined));
    t.deepEqual((await stateOf(d, 'pod1'))?.policy?.excludeOutboundPorts, [], 'the first pod1 is used');
    t.is((await states(d)).filter((p) => p.name === 'pod1').length, 1);
    // A deliberate removal still happens: the same text read twice.
    w.write(sourceYaml([spec(w, 0)]));
    await waitFor('pod1 removed', async () => ((await stateOf(d, 'pod1')) === undefined ? true : undefined));
    await waitFor('pod1 uncaptured', async () => ((await captured(w, 1)) ? undefined : true));
    t.true(await captured(w, 0));
  });
});
