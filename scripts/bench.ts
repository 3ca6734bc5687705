// `npm run bench`: sluice's eBPF capture against iptables, as ratios measured in one run.
//
//   npm run bench -- [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N]
//                    [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound]
//                    [--throughput-ms N] [--writes 4096,65536] [--ping-size 64]
//
// Every backend (none, iptables, ebpf, ebpf+accel; with --spike-inbound instead sk_lookup
// alone and the tc + bpf_sk_assign spike, inbound only) gets its own private topology and
// proxy stand-in, set up once. Each round measures the connection rate outbound and
// inbound, then the throughput and round trips of one app-to-proxy connection (skipped
// with --throughput-ms 0 and with --spike-inbound). Rounds alternate between backends,
// each round in a new order, and each ratio is the median of per-round ratios.
// Connections are checked (the reply names the listener and the original destination),
// streamed bytes are compared with what was sent, and ebpf+accel's figures count only if
// its sk_msg counters show the bytes went by the redirect; timings are never asserted.
//
// Needs root, and builds nothing itself: `npm run bench` runs make first.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg, release } from 'node:os';
import { parseArgs } from 'node:util';
import { bpfRequirementsMissing, createCgroup, reapStale, type TestCgroup } from '../test/kernel/bpf-fixture.js';
import { makePolicy } from '../test/kernel/harness/cases.js';
import { checkRequirements, findTool } from '../test/kernel/harness/requirements.js';
import { reapStaleNamespaces } from '../test/kernel/harness/topology.js';
import { checkSockmapWakeup, type WakeupReport } from '../src/bpf/probes.js';
import { APP_PORT, APP_UID, Cleanup, REMOTE_PORT, REMOTE_STREAM_PORT, DIRECT_STREAM_PORT, setupBackend, spikeObjectMissing, type BackendName, type BenchBackend, type Direction } from '../bench/backends.js';
import { benchBinaryMissing, runLoad, runStream, type CloseMode, type LoadResult, type StreamResult } from '../bench/load.js';
import type { MemoryReport } from '../bench/memory.js';
import { accelDelta, addAccel, captureCpuUs, formatMemory, formatStreams, formatTable, pairedRatios, redirectedShare, summarize, summarizeStreams, type AccelDelta, type Results, type StreamResults } from '../bench/report.js';
import { ADDRESSES } from '../test/kernel/harness/topology.js';
import { CURVE_NAMES, loadRound, runCurve, type CurveName, type CurvePoint, type RoundOptions } from '../bench/curves.js';
import { formatFigure } from '../bench/figures.js';
import { allFigures, formatConcurrent, formatCurves } from '../bench/output.js';
import { formatProfile, profileRound, type Profile } from '../bench/profile.js';
import { childArgs, combineRuns, repeatRuns } from '../bench/runs.js';
import { renderSvg } from '../bench/svg.js';
import { formatTargets, judgeAll } from '../bench/targets.js';

const { values: args } = parseArgs({
  allowNegative: true,
  options: {
    rounds: { type: 'string', default: '5' },
    'duration-ms': { type: 'string', default: '2000' },
    'warmup-ms': { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '1' },
    cpu: { type: 'string' },
    close: { type: 'string', default: 'rst' },
    json: { type: 'string' },
    svg: { type: 'string' },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    curves: { type: 'string' },
    'curve-rounds': { type: 'string' },
    'concurrent-clients': { type: 'string', default: '32' },
    profile: { type: 'boolean', default: true },
    'spike-inbound': { type: 'boolean', default: false },
    'throughput-ms': { type: 'string', default: '1000' },
    writes: { type: 'string', default: '4096,65536' },
    'ping-size': { type: 'string', default: '64' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log('npm run bench -- [--quick] [--runs N] [--svg PATH] [--curves cidrs,pods,conns|none] [--curve-rounds N] [--concurrent-clients 32|0] [--no-profile] [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N] [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound] [--throughput-ms N] [--writes 4096,65536] [--ping-size 64]');
  process.exit(0);
}

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

// --quick: short rounds and few curve points, under 3 minutes; options given win.
const quick = args.quick;
const given = (name: string) => process.argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const pick = (name: keyof typeof args, quickValue: string) => (quick && !given(name) ? quickValue : (args[name] as string));
const rounds = int('rounds', pick('rounds', '3'), 1);
const durationMs = int('duration-ms', pick('duration-ms', '300'), 100);
const warmupMs = int('warmup-ms', pick('warmup-ms', '100'), 0);
const runs = int('runs', args.runs, 1);
const curveRounds = int('curve-rounds', args['curve-rounds'] ?? String(rounds), 1);
const concurrentClients = int('concurrent-clients', args['concurrent-clients'], 0);
const curveNames = (args.curves ?? CURVE_NAMES.join(',')).split(',').filter((c) => c && c !== 'none') as CurveName[];
for (const c of curveNames) if (!CURVE_NAMES.includes(c)) throw new Error(`--curves takes ${CURVE_NAMES.join(',')} or none, got ${c}`);
const CURVE_POINTS: Record<CurveName, number[]> = quick
  ? { cidrs: [1, 100, 10000], pods: [1, 16], conns: [0, 200000] }
  : { cidrs: [1, 10, 100, 1000, 10000], pods: [1, 8, 64, 512], conns: [0, 1000, 10000, 100000, 200000] };
const concurrency = int('concurrency', args.concurrency, 1);
// Client and server on one CPU: the rate is then CPU time per connection, and the other
// core absorbs the machine's other work. The last CPU, unless told otherwise.
const cpu = args.cpu === 'none' ? null : args.cpu !== undefined ? int('cpu', args.cpu, 0) : cpus().length - 1;
if (args.close !== 'rst' && args.close !== 'fin') throw new Error(`--close is rst or fin, got ${args.close}`);
const close = args.close as CloseMode;
const spike = args['spike-inbound'];
const throughputMs = spike ? 0 : int('throughput-ms', pick('throughput-ms', '300'), 0);
// Write sizes must divide the client's 4 MiB chunk (native/bench.c checks it too).
const writes = args.writes.split(',').map((w) => int('writes', w, 1));
const pingSize = int('ping-size', args['ping-size'], 1);

const backendNames: BackendName[] = spike ? ['none', 'iptables', 'ebpf', 'sk_lookup', 'tc_assign'] : ['none', 'iptables', 'ebpf', 'ebpf+accel'];
const directions: Direction[] = spike ? ['inbound'] : ['outbound', 'inbound'];

function requirements(): void {
  const missing: string[] = [];
  const bpf = bpfRequirementsMissing();
  if (bpf) missing.push(bpf);
  try {
    checkRequirements({ iptables: true });
  } catch (err) {
    missing.push((err as Error).message);
  }
  const bin = benchBinaryMissing();
  if (bin) missing.push(bin);
  if (!findTool('bpftool')) missing.push('`bpftool` (memory figures of the BPF maps and programs)');
  if (spike) {
    if (!findTool('tc')) missing.push('`tc` from iproute2 (the tc spike)');
    const obj = spikeObjectMissing();
    if (obj) missing.push(obj);
  }
  if (missing.length) throw new Error(`bench requirements missing:\n${missing.join('\n')}`);
}

// A live progress line on a terminal (rewritten in place); the round lines scroll above it.
const t0 = Date.now();
let progressShown = false;
const clearProgress = () => {
  if (progressShown) process.stderr.write('\r\x1b[K');
  progressShown = false;
};
const log = (m: string) => {
  clearProgress();
  process.stderr.write(`${m}\n`);
};
const progress = (m: string) => {
  if (!process.stderr.isTTY) return;
  const s = Math.round((Date.now() - t0) / 1000);
  process.stderr.write(`\r\x1b[K[${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}] ${m}`.slice(0, (process.stderr.columns || 100) + 3));
  progressShown = true;
};

if (runs > 1) {
  // The whole bench again in separate processes; figures are then medians across runs.
  const script = fileURLToPath(import.meta.url);
  const docs = await repeatRuns(script, childArgs(process.argv.slice(2)), runs, log);
  const figures = combineRuns(docs);
  const judged = judgeAll(figures);
  console.log(`\nsluice bench, ${runs} runs: each figure is the median of the runs' medians [lowest..highest run median]`);
  for (const f of figures) if (!/(^|\.)(errors|mismatches)\./.test(f.id)) console.log(`  ${f.id.padEnd(44)} ${formatFigure(f)}`);
  console.log(`\n${formatTargets(judged, `interval: lowest to highest of ${runs} run medians`)}`);
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ runs: docs.length, figures, targets: judged, perRun: docs }, null, 2)}\n`);
  if (args.svg) writeFileSync(args.svg, await renderSvg(figures, `sluice bench, ${runs} runs, kernel ${release()}`));
  process.exit(0);
}

const cleanup = new Cleanup();
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${sig}: removing the bench's namespaces, cgroups and pins`);
    void cleanup.run().then((failures) => {
      for (const f of failures) log(`cleanup: ${f}`);
      process.exit(130);
    });
  });
}

function titleOf(d: Direction): string {
  const common = `${rounds} rounds x ${(durationMs / 1000).toFixed(1)} s, concurrency ${concurrency}, ${cpu === null ? 'unpinned' : `client+server on CPU ${cpu}`}, close ${close}`;
  return d === 'outbound'
    ? `outbound: app (uid ${APP_UID}) in pod connects to ${ADDRESSES.remote4}:${REMOTE_PORT}, captured to the 15001 listener, which reads SO_ORIGINAL_DST (${common})`
    : `inbound: client in peer connects to ${ADDRESSES.pod4}:${APP_PORT}, steered to the 15006 listener (${common})`;
}

const results: Results = {};
const concurrent: Results = {};
const curves: Partial<Record<CurveName, CurvePoint[]>> = {};
const profiles: Profile[] = [];
const streams: StreamResults = {};
/** Acceleration counters over each direction's rate rounds, per eBPF backend. */
const rateAccel: Partial<Record<Direction, Partial<Record<BackendName, AccelDelta>>>> = {};
let sockmap: WakeupReport | null = null;
const memory: Partial<Record<BackendName, MemoryReport>> = {};
const started = new Date().toISOString();
const loadBefore = loadavg();
let exitCode = 0;

try {
  requirements();
  const reaped = [...(await reapStaleNamespaces()), ...reapStale()];
  if (reaped.length) log(`removed leftovers of earlier runs: ${reaped.join(', ')}`);
  if (backendNames.includes('ebpf+accel')) {
    // What `sluice run --accelerate` would decide here. The bench switches acceleration on
    // in its own install whatever the answer (as --accelerate-force does) and says so.
    log('running the sockmap wake-up check (sluice doctor)');
    sockmap = await checkSockmapWakeup();
    log(`sockmap check: ${sockmap.verdict} (${sockmap.summary})`);
  }

  const policy = makePolicy();
  const backends: BenchBackend[] = [];
  for (const name of backendNames) {
    if (interrupted) break;
    log(`setting up ${name}`);
    backends.push(await setupBackend(name, { cleanup, policy, cpu }));
  }
  // Inbound clients play other machines: a plain cgroup, no capture programs.
  const peerCgroup: TestCgroup = createCgroup();
  cleanup.push(`cgroup ${peerCgroup.path}`, () => peerCgroup.destroy());
  const peakConntrack = new Map<BackendName, number>();

  for (let round = 0; round < rounds && !interrupted; round++) {
    for (const d of directions) {
      const these = backends.filter((b) => b.directions.includes(d));
      // A rotating order, so no backend always runs first, right after the other direction.
      const order = these.map((_, i) => these[(i + round) % these.length]!);
      for (const b of order) {
        if (interrupted) break;
        progress(`round ${round + 1}/${rounds} ${d} ${b.name}`);
        const t = b.target(d);
        const before = b.counters?.();
        const r: LoadResult = await runLoad(t.netns === 'pod' ? b.podCgroup : peerCgroup, {
          netnsPath: t.netns === 'pod' ? b.topo.pod.path : b.topo.peer.path,
          dst: t.dst,
          expect: t.expect,
          ...(t.uid !== undefined ? { uid: t.uid } : {}),
          concurrency,
          warmupMs,
          durationMs,
          close,
          cpu,
          serverPid: b.serverPid,
        });
        ((results[d] ??= {})[b.name] ??= []).push(r);
        if (before && b.counters) (rateAccel[d] ??= {})[b.name] = addAccel(rateAccel[d]?.[b.name], accelDelta(before, b.counters()));
        peakConntrack.set(b.name, Math.max(peakConntrack.get(b.name) ?? 0, await b.conntrack()));
        const problems = r.errors + r.mismatches > 0 ? `  errors ${r.errors}, mismatches ${r.mismatches} (first reply "${r.firstReply}", first error "${r.firstError}")` : '';
        log(`round ${round + 1}/${rounds} ${d.padEnd(8)} ${b.name.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} conn/s  connect p50 ${r.connectUs.p50.toFixed(1)} µs  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/conn${problems}`);
      }
    }
    if (throughputMs === 0) continue;
    const order = backends.map((_, i) => backends[(i + round) % backends.length]!);
    for (const b of order) {
      if (interrupted) break;
      progress(`round ${round + 1}/${rounds} stream ${b.name}`);
      const t = b.streamTarget;
      const before = b.counters?.();
      const r = await runStream(b.podCgroup, {
        netnsPath: b.topo.pod.path,
        dst: t.dst,
        expect: t.expect,
        ...(t.uid !== undefined ? { uid: t.uid } : {}),
        writes,
        pingSize,
        warmupMs,
        durationMs: throughputMs,
        cpu,
        serverPid: b.serverPid,
      });
      const accel = before && b.counters ? accelDelta(before, b.counters()) : null;
      (streams[b.name] ??= []).push({ result: r, accel });
      const mb = (p: { bytes: number; seconds: number }) => (p.bytes / p.seconds / 1e6).toFixed(0);
      const phases = r.up.map((p, i) => `${p.write / 1024}K up ${mb(p)} down ${r.down[i] ? mb(r.down[i]!) : '-'}`).join(', ');
      const via = accel ? `  via sk_msg ${accel.redirectedBytes} of ${r.bytesSent + r.bytesReceived} bytes` : '';
      const problems = r.error || r.mismatch ? `  ${r.mismatch ? `wrong listener: "${r.reply}"` : r.error}` : '';
      log(`round ${round + 1}/${rounds} stream   ${b.name.padEnd(10)} MB/s ${phases}; rt p50 ${r.ping.us.p50.toFixed(1)} µs${via}${problems}`);
    }
  }
  if (interrupted) throw new Error('interrupted');

  const main = ['none', 'iptables', 'ebpf'].map((n) => backends.find((b) => b.name === n)).filter((b): b is BenchBackend => b !== undefined);
  const roundOpts: RoundOptions = { warmupMs, durationMs, close, cpu, concurrency, peerCgroup };
  // Many clients at once on both CPUs: client unpinned, the stand-in's affinity widened
  // for the phase (then pinned back); CPU per connection is then the two processes only.
  if (concurrentClients > 0 && !spike) {
    const all = `0-${cpus().length - 1}`;
    const affinity = (pid: number, list: string) => execFileSync(findTool('taskset') ?? 'taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
    for (const b of main) affinity(b.serverPid, all);
    try {
      for (let round = 0; round < rounds && !interrupted; round++) {
        for (const b of main.map((_, i) => main[(i + round) % main.length]!)) {
          progress(`concurrent round ${round + 1}/${rounds} ${b.name}`);
          const r = await loadRound(b, 'outbound', { ...roundOpts, cpu: null, concurrency: concurrentClients });
          ((concurrent.outbound ??= {})[b.name] ??= []).push(r);
          log(`round ${round + 1}/${rounds} ${concurrentClients} clients ${b.name.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} conn/s  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/conn${r.errors + r.mismatches ? `  errors ${r.errors}, mismatches ${r.mismatches}` : ''}`);
        }
      }
    } finally {
      if (cpu !== null) for (const b of main) affinity(b.serverPid, String(cpu));
    }
  }
  const ebpfBackend = backends.find((b) => b.name === 'ebpf');
  if (args.profile && ebpfBackend) {
    for (const d of directions) {
      progress(`profile ${d} ebpf (kernel.bpf_stats_enabled=1)`);
      profiles.push(await profileRound(ebpfBackend, d, cleanup, () => loadRound(ebpfBackend, d, { ...roundOpts, warmupMs: 0 })));
    }
  }
  if (!spike && main.length === 3) {
    for (const c of curveNames) {
      if (interrupted) break;
      curves[c] = await runCurve(c, CURVE_POINTS[c], { backends: main, cleanup, round: roundOpts, rounds: curveRounds, progress });
      log(`curve ${c} done (${CURVE_POINTS[c].join(', ')})`);
    }
  }
  if (interrupted) throw new Error('interrupted');
  clearProgress();

  for (const b of backends) memory[b.name] = await b.memory(peakConntrack.get(b.name) ?? 0);

  console.log(`\nsluice bench, ${started}, kernel ${release()}, ${cpus().length} CPUs, load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} at start`);
  console.log(`iptables: ${execFileSync(findTool('iptables')!, ['-V'], { encoding: 'utf8' }).trim()}; figures are medians over rounds, ratios medians of per-round ratios`);
  console.log(`CPU figures: time the client and the server ran${cpu === null ? '' : `, plus CPU ${cpu}'s kernel threads (ksoftirqd/${cpu}, kworker/${cpu}:*)`} (/proc/PID/schedstat)\n`);
  if (sockmap) {
    console.log(`sockmap wake-up check: ${sockmap.verdict} (${sockmap.summary})`);
    console.log(
      sockmap.verdict === 'ok'
        ? 'ebpf+accel: acceleration switched on in its private install, as `sluice run --accelerate` would allow here\n'
        : 'ebpf+accel: `sluice run --accelerate` refuses on this kernel; the bench FORCES acceleration on in its private install (as --accelerate-force) to measure it\n',
    );
  }
  for (const d of directions) {
    console.log(formatTable(titleOf(d), results[d] ?? {}));
    for (const [name, a] of Object.entries(rateAccel[d] ?? {})) {
      if (name === 'ebpf+accel' || a.enrolled + a.redirected > 0) console.log(`  ${name} sk_msg counters over these rounds (warm-up included): ${a.enrolled} sockets enrolled, ${a.redirected} messages (${a.redirectedBytes} bytes) redirected, ${a.peerMissing} without an enrolled peer`);
    }
    console.log('');
  }
  if (throughputMs > 0) {
    const title = `throughput: one connection, app (uid ${APP_UID}) in pod to ${ADDRESSES.remote4}:${REMOTE_STREAM_PORT} captured to the 15001 listener (none: straight to the stand-in's ${DIRECT_STREAM_PORT}); up = app writes, down = proxy writes; ${writes.join(' and ')} B writes, ${(throughputMs / 1000).toFixed(1)} s each after ${warmupMs} ms warm-up, TCP_NODELAY, every byte checked; ${cpu === null ? 'unpinned' : `client+server on CPU ${cpu}`}`;
    console.log(`${formatStreams(title, streams)}\n`);
  }
  console.log(formatMemory(memory));
  const figures = allFigures({ results, concurrent, streams, curves, memory, profiles });
  const judged = judgeAll(figures);
  console.log('');
  if (concurrentClients > 0 && concurrent.outbound) console.log(`${formatConcurrent(figures, `outbound, ${concurrentClients} connections in flight from one epoll client, client and stand-in unpinned (both CPUs); median [min..max] over rounds, ratio to iptables per round`)}\n`);
  for (const p of profiles) console.log(`${formatProfile(p)}\n`);
  if (Object.keys(curves).length) console.log(formatCurves(figures, curves));
  console.log(`${formatTargets(judged, `one run, interval: lowest to highest of ${rounds} rounds`)}\n`);
  for (const f of figures) {
    // A wrong listener or original destination in any phase means its figures measure something else.
    if (/(^|\.)mismatches\./.test(f.id) && f.value.median > 0) {
      exitCode = 1;
      log(`${f.id}: ${f.value.median} connection(s) reached the wrong listener or saw the wrong original destination`);
    }
  }
  if (args.svg) {
    writeFileSync(args.svg, await renderSvg(figures, `sluice bench ${started.slice(0, 16)}, kernel ${release()}, ${quick ? '--quick, ' : ''}${rounds} rounds`));
    log(`wrote ${args.svg}`);
  }

  for (const d of directions) {
    for (const [name, rs] of Object.entries(results[d] ?? {})) {
      const s = summarize(rs);
      if (s.mismatches > 0 || s.connections === 0) {
        exitCode = 1;
        log(`${d} ${name}: ${s.mismatches} connection(s) reached the wrong listener or saw the wrong original destination; its figures do not measure that capture`);
      } else if (s.errors > 0) {
        log(`${d} ${name}: ${s.errors} connection(s) failed (see the rounds above)`);
      }
    }
  }
  for (const [name, runs] of Object.entries(streams)) {
    const empty = (r: StreamResult) => [...r.up, ...r.down].some((p) => p.bytes === 0 || p.seconds <= 0) || r.ping.roundTrips === 0;
    const broken = runs.filter((r) => r.result.error || r.result.mismatch || r.result.up.length < writes.length || r.result.down.length < writes.length || empty(r.result));
    const corrupt = runs.filter((r) => [...r.result.up, ...r.result.down, r.result.ping].some((p) => p.bad >= 0));
    if (broken.length || corrupt.length) {
      exitCode = 1;
      const first = broken[0]?.result;
      if (broken.length) log(`stream ${name}: ${broken.length} run(s) incomplete (${first?.mismatch ? `reached "${first.reply}"` : first?.error || 'a phase moved nothing'}); its figures do not measure that capture`);
      if (corrupt.length) log(`stream ${name}: ${corrupt.length} run(s) received bytes that differ from what was sent (see "bad" in the JSON)`);
    }
    // Never credit the redirect with figures it did not produce, nor the plain data plane with one.
    const share = redirectedShare(runs);
    const all = runs.reduce((a, r) => addAccel(a, r.accel ?? accelDelta({}, {})), undefined as AccelDelta | undefined);
    if (name === 'ebpf+accel' && (share === null || !(share >= 0.99))) {
      exitCode = 1;
      log(`stream ebpf+accel: the accelerated path was NOT taken for ${share === null ? 'all' : `${((1 - share) * 100).toFixed(1)}% of`} the bytes (accel_redirected_bytes ${all?.redirectedBytes ?? 0}, enrolled ${all?.enrolled ?? 0}, enrol failed ${all?.enrolFailed ?? 0}, peer missing ${all?.peerMissing ?? 0}, off ${all?.off ?? 0}); its figures are not the sk_msg path`);
    } else if (name !== 'ebpf+accel' && share !== null && share > 0) {
      exitCode = 1;
      log(`stream ${name}: ${all?.redirectedBytes} bytes went by the sk_msg redirect with acceleration off`);
    }
  }

  if (args.json) {
    const ratios: Record<string, Record<string, unknown>> = {};
    for (const d of directions) {
      const base = results[d]?.iptables;
      ratios[d] = Object.fromEntries(Object.entries(results[d] ?? {}).flatMap(([n, rs]) => (base && n !== 'iptables' ? [[n, pairedRatios(rs, base)]] : [])));
    }
    const summaries = Object.fromEntries(
      directions.map((d) => {
        const none = results[d]?.none;
        return [d, Object.fromEntries(Object.entries(results[d] ?? {}).map(([n, rs]) => [n, { ...summarize(rs), captureCpuUs: none ? captureCpuUs(rs, none) : null }]))];
      }),
    );
    const doc = {
      started,
      command: process.argv.slice(2),
      kernel: release(),
      cpus: cpus().length,
      loadAverage: { start: loadBefore, end: loadavg() },
      options: { quick, rounds, durationMs, warmupMs, concurrency, cpu, close, spikeInbound: spike, throughputMs, writes, pingSize, curveRounds, curvePoints: Object.fromEntries(curveNames.map((c) => [c, CURVE_POINTS[c]])), concurrentClients },
      figures,
      targets: judged,
      profiles,
      concurrent,
      curves,
      sockmapCheck: sockmap && { verdict: sockmap.verdict, summary: sockmap.summary, accelerationForced: sockmap.verdict !== 'ok' },
      summaries,
      ratiosVsIptables: ratios,
      rounds: results,
      rateAccelCounters: rateAccel,
      throughput: throughputMs > 0 ? { ...summarizeStreams(streams), rounds: streams } : null,
      memory,
    };
    writeFileSync(args.json, `${JSON.stringify(doc, null, 2)}\n`);
    log(`wrote ${args.json}`);
  }
} catch (err) {
  if (!interrupted) {
    log(`bench failed: ${(err as Error).message}`);
    exitCode = 1;
  }
} finally {
  const failures = await cleanup.run();
  for (const f of failures) log(`cleanup: ${f}`);
  if (failures.length) exitCode = 1;
}
if (!interrupted) process.exit(exitCode);
