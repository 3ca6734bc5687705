// Fault suite (issue 9): soak. SLUICE_SOAK_SECONDS (default 600, what CI runs) of mixed
// load against one daemon: a client connecting out of pod0, one connecting into it, a
// stream of lookups on the unix socket, and policy churn every 2 s (pod1 and its Sidecar
// come and go and change, pod0's excluded port changes). Every few seconds the daemon's
// RSS, open fds, event-loop delay (p99, from /metrics) and map entries are sampled; over
// the second half their trends (Theil–Sen slopes, robust to one stall) must be flat within
// the bounds below.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { SluiceMaps } from '../../src/bpf/maps.js';
import { bpfRequirementsMissing } from '../kernel/bpf-fixture.js';
import { createWorld, killAllDaemons, metric, parseMetrics, podObject, reapStaleWorld, startDaemon, waitFor } from '../kernel/harness/daemon.js';
import { leastSquaresSlope, theilSenSlope as slope } from '../support/slope.js';
import { runClient } from './load-client.js';

const missing = bpfRequirementsMissing();
const SECONDS = Number(process.env.SLUICE_SOAK_SECONDS ?? 600);
const SAMPLE_MS = 5000;
const POLICY_MAPS = ['sluice_pods', 'sluice_ports', 'sluice_cidrs', 'sluice_ifaces', 'sluice_binds', 'sluice_addrs', 'sluice_listen', 'sluice_pending'] as const;

/** Flat means: at most this much growth per minute over the second half. */
const BOUNDS = {
  rssMiB: 3, // flat once V8's young generation no longer grows to 2 x 64 MiB (run.ts) and malloc is trimmed; a leak of a few bytes per connection shows
  fds: 0.5,
  loopDelayMs: 2,
  conns: 50, // live records follow the load; a leak of one per close would be thousands
  policyEntries: 5, // churn alternates two states; a leaked set entry per edit would be 30/min
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** Anonymous (heap, V8, malloc) and file-backed (the node binary, libraries) parts of RSS, MiB. */
function rssParts(pid: number): { anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
}

/** Lookups on the unix socket, 100 a round, until `until`: how many were answered, and the errors. */
async function lookups(path: string, until: number): Promise<{ answered: number; errors: string[] }> {
  let answered = 0;
  const errors: string[] = [];
  while (Date.now() < until) {
    await new Promise<void>((resolve) => {
      const s = connect(path);
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        if (lines.length > 100) {
          answered += lines.filter((l) => l.startsWith('OK') || l.startsWith('NOTFOUND')).length;
          s.end();
          resolve();
        }
      });
      s.on('error', (err) => {
        errors.push(err.message);
        resolve();
      });
      s.on('connect', () => s.write(Array.from({ length: 100 }, (_, i) => `10.1.0.2:${20000 + i} 10.2.0.5:80\n`).join('')));
    });
    await sleep(200);
  }
  return { answered, errors };
}

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(() => killAllDaemons());

test.serial(`soak: ${SECONDS} s of load and policy churn, RSS, fds, event-loop delay and map entries stay flat`, async (t) => {
  if (missing) return t.fail(missing);
  t.timeout((SECONDS + 180) * 1000);
  const w = await createWorld(2);
  try {
    let gen = 0;
    const write = () => {
      gen++;
      const docs: object[] = [podObject({ name: 'pod0', netns: w.pods[0]!.pod.path, annotations: { 'traffic.sidecar.istio.io/excludeOutboundPorts': String(9000 + (gen % 7)) } })];
      if (gen % 3 !== 0) {
        docs.push(podObject({ name: 'pod1', namespace: 'churn', netns: w.pods[1]!.pod.path, annotations: { 'traffic.sidecar.istio.io/excludeOutboundCIDRs': `10.${gen % 5}.0.0/16` } }));
        docs.push({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'churn' }, spec: { ingress: [{ port: { number: 8000 + (gen % 4), protocol: 'HTTP', name: 'http' }, defaultEndpoint: `127.0.0.1:${8000 + (gen % 4)}` }] } });
      }
      w.replace(docs.map((d) => stringify(d)).join('---\n'));
    };
    write();
    const d = await startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs: ['--resync', '2'] });
    await waitFor('/readyz', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 15_000);
    const pid = d.child.pid!;
    const start = Date.now();
    const until = start + SECONDS * 1000;
    const load = Promise.all([
      runClient(w, w.pods[0]!.pod.path, ['10.2.0.5', '80', 'pod0', '15001', '10.2.0.5:80', String(SECONDS), '1000']),
      runClient(w, w.pods[0]!.peer.path, ['10.1.0.2', '8080', 'pod0', '15006', '10.1.0.2:8080', String(SECONDS), '0']),
    ]);
    const looked = lookups(w.lookupSocket, until);
    const churn = (async () => {
      while (Date.now() < until) {
        await sleep(2000);
        write();
      }
    })();

    const scrapeErrors: string[] = [];
    let slowest = 0;
    const samples: { t: number; rss: number; anon: number; heap: number; fds: number; loop: number; conns: number; policy: number }[] = [];
    const maps = SluiceMaps.open(w.bpffs);
    try {
      while (Date.now() < until) {
        await sleep(SAMPLE_MS);
        if (!d.alive()) break;
        // A slow answer is a sample too (the delay is what is measured); only a failure is not.
        const at = Date.now();
        const m = await fetch(`http://127.0.0.1:${d.port}/metrics`, { signal: AbortSignal.timeout(30_000) })
          .then(async (r) => parseMetrics(await r.text()))
          .catch((e: Error) => {
            scrapeErrors.push(e.message);
            return null;
          });
        slowest = Math.max(slowest, Date.now() - at);
        if (!m) continue;
        samples.push({
          t: (Date.now() - start) / 60_000,
          rss: rssMiB(pid),
          anon: rssParts(pid).anon,
          heap: metric(m, 'sluice_nodejs_heap_size_used_bytes') / 1048576,
          fds: readdirSync(`/proc/${pid}/fd`).length,
          loop: metric(m, 'sluice_nodejs_eventloop_lag_p99_seconds') * 1000,
          conns: maps.count('sluice_conns'),
          policy: POLICY_MAPS.reduce((n, name) => n + maps.count(name), 0),
        });
      }
    } finally {
      maps.close();
    }
    const [results, { answered, errors }] = await Promise.all([load, looked, churn]);
    t.true(d.alive(), `the daemon is still running: ${d.alive() ? '' : d.output().slice(-3000)}`);
    const half = samples.slice(Math.floor(samples.length / 2));
    const xs = half.map((s) => s.t);
    const slopes = {
      rssMiB: slope(xs, half.map((s) => s.rss)),
      fds: slope(xs, half.map((s) => s.fds)),
      loopDelayMs: slope(xs, half.map((s) => s.loop)),
      conns: slope(xs, half.map((s) => s.conns)),
      policyEntries: slope(xs, half.map((s) => s.policy)),
    };
    const last = samples.at(-1)!;
    t.log(`${SECONDS} s, ${samples.length} samples, ${gen} policy edits, ${answered} lookups; replies: ${JSON.stringify(results)}`);
    t.log(`slowest /metrics answer ${slowest} ms; scrape errors: ${scrapeErrors.length}`);
    t.deepEqual(scrapeErrors, [], 'every /metrics scrape answered within 30 s');
    t.log(`last sample: rss ${last.rss.toFixed(1)} MiB, ${last.fds} fds, loop p99 ${last.loop.toFixed(2)} ms, ${last.conns} records, ${last.policy} policy entries`);
    // Where RSS is, so a failure says whether the JS heap or native memory grew.
    const first = samples[0]!;
    t.log(`rss first/last ${first.rss.toFixed(1)}/${last.rss.toFixed(1)} MiB: anonymous ${first.anon.toFixed(1)}/${last.anon.toFixed(1)}, JS heap used ${first.heap.toFixed(1)}/${last.heap.toFixed(1)}; second-half slopes: anonymous ${slope(xs, half.map((s) => s.anon)).toFixed(3)}, heap ${slope(xs, half.map((s) => s.heap)).toFixed(3)} MiB/min`);
    t.log(`least-squares slopes, for comparison: loop ${leastSquaresSlope(xs, half.map((s) => s.loop)).toFixed(3)} ms/min, rss ${leastSquaresSlope(xs, half.map((s) => s.rss)).toFixed(3)} MiB/min`);
    t.log(`slopes per minute over the second half: ${Object.entries(slopes).map(([k, v]) => `${k} ${v.toFixed(3)} (bound ${BOUNDS[k as keyof typeof BOUNDS]})`).join(', ')}`);
    // Only growth counts: a falling RSS or delay (GC settling, load elsewhere easing) is no leak.
    for (const [k, v] of Object.entries(slopes)) t.true(v <= BOUNDS[k as keyof typeof BOUNDS], `${k}: slope ${v.toFixed(3)}/min`);
    for (const [i, r] of results.entries()) {
      t.is(r.failed, 0, `client ${i}: failed connections: ${r.seen.join(' | ')}`);
      t.is(r.wrong, 0, `client ${i}: mis-steered replies: ${r.seen.join(' | ')}`);
    }
    t.true(answered > 0, 'lookups were answered');
    t.deepEqual(errors, [], 'no lookup connection failed');
  } finally {
    await killAllDaemons();
    await w.destroy();
  }
});
