// The phases of one bench run, each filling its part of RunState: the interleaved rate and
// stream rounds, 32 concurrent clients, the profile split and the growth curves.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { TestCgroup } from '../test/kernel/bpf-fixture.js';
import { findTool } from '../test/kernel/harness/requirements.js';
import type { BackendName, BenchBackend, Cleanup, Direction } from './backends.js';
import { loadRound, runCurve, type CurveName, type CurvePoint, type RoundOptions } from './curves.js';
import { runStream, type LoadResult } from './load.js';
import type { BenchOptions } from './options.js';
import { profileRound, type Profile } from './profile.js';
import type { Progress } from './progress.js';
import type { ControlPlaneResult } from './control-plane-phase.js';
import type { ProxyResults } from './proxy.js';
import { accelDelta, addAccel, type AccelDelta, type Results, type StreamResults } from './report.js';

export interface RunState {
  results: Results;
  concurrent: Results;
  curves: Partial<Record<CurveName, CurvePoint[]>>;
  profiles: Profile[];
  streams: StreamResults;
  /** Acceleration counters over each direction's rate rounds, per eBPF backend. */
  rateAccel: Partial<Record<Direction, Partial<Record<BackendName, AccelDelta>>>>;
  peakConntrack: Map<BackendName, number>;
  proxy: ProxyResults | null;
  controlPlane: ControlPlaneResult | null;
}

export function emptyState(): RunState {
  return { results: {}, concurrent: {}, curves: {}, profiles: [], streams: {}, rateAccel: {}, peakConntrack: new Map(), proxy: null, controlPlane: null };
}

export interface PhaseContext {
  o: BenchOptions;
  backends: BenchBackend[];
  /** Inbound clients play other machines: a plain cgroup, no capture programs. */
  peerCgroup: TestCgroup;
  cleanup: Cleanup;
  ui: Progress;
  interrupted(): boolean;
}

/** Rate rounds in both directions, then a stream run per backend; each round a new order. */
export async function mainRounds(c: PhaseContext, s: RunState): Promise<void> {
  const { o, backends, ui } = c;
  for (let round = 0; round < o.rounds && !c.interrupted(); round++) {
    for (const d of o.directions) {
      const these = backends.filter((b) => b.directions.includes(d));
      // A rotating order, so no backend always runs first, right after the other direction.
      const order = these.map((_, i) => these[(i + round) % these.length]!);
      for (const b of order) {
        if (c.interrupted()) break;
        ui.progress(`round ${round + 1}/${o.rounds} ${d} ${b.name}`);
        const before = b.counters?.();
        const r: LoadResult = await loadRound(b, d, roundOptions(c));
        ((s.results[d] ??= {})[b.name] ??= []).push(r);
        if (before && b.counters) (s.rateAccel[d] ??= {})[b.name] = addAccel(s.rateAccel[d]?.[b.name], accelDelta(before, b.counters()));
        s.peakConntrack.set(b.name, Math.max(s.peakConntrack.get(b.name) ?? 0, await b.conntrack()));
        const problems = r.errors + r.mismatches > 0 ? `  errors ${r.errors}, mismatches ${r.mismatches} (first reply "${r.firstReply}", first error "${r.firstError}")` : '';
        ui.log(`round ${round + 1}/${o.rounds} ${d.padEnd(8)} ${b.name.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} conn/s  connect p50 ${r.connectUs.p50.toFixed(1)} µs  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/conn${problems}`);
      }
    }
    if (o.throughputMs === 0) continue;
    const order = backends.map((_, i) => backends[(i + round) % backends.length]!);
    for (const b of order) {
      if (c.interrupted()) break;
      ui.progress(`round ${round + 1}/${o.rounds} stream ${b.name}`);
      const t = b.streamTarget;
      const before = b.counters?.();
      const r = await runStream(b.podCgroup, {
        netnsPath: b.topo.pod.path,
        dst: t.dst,
        expect: t.expect,
        ...(t.uid !== undefined ? { uid: t.uid } : {}),
        writes: o.writes,
        pingSize: o.pingSize,
        warmupMs: o.warmupMs,
        durationMs: o.throughputMs,
        cpu: o.cpu,
        serverPid: b.serverPid,
      });
      const accel = before && b.counters ? accelDelta(before, b.counters()) : null;
      (s.streams[b.name] ??= []).push({ result: r, accel });
      const mb = (p: { bytes: number; seconds: number }) => (p.bytes / p.seconds / 1e6).toFixed(0);
      const phases = r.up.map((p, i) => `${p.write / 1024}K up ${mb(p)} down ${r.down[i] ? mb(r.down[i]!) : '-'}`).join(', ');
      const via = accel ? `  via sk_msg ${accel.redirectedBytes} of ${r.bytesSent + r.bytesReceived} bytes` : '';
      const problems = r.error || r.mismatch ? `  ${r.mismatch ? `wrong listener: "${r.reply}"` : r.error}` : '';
      ui.log(`round ${round + 1}/${o.rounds} stream   ${b.name.padEnd(10)} MB/s ${phases}; rt p50 ${r.ping.us.p50.toFixed(1)} µs${via}${problems}`);
    }
  }
}

/** none, iptables and ebpf, the backends the later phases compare. */
export function mainBackends(backends: BenchBackend[]): BenchBackend[] {
  return ['none', 'iptables', 'ebpf'].map((n) => backends.find((b) => b.name === n)).filter((b): b is BenchBackend => b !== undefined);
}

export function roundOptions(c: PhaseContext): RoundOptions {
  const { o } = c;
  return { warmupMs: o.warmupMs, durationMs: o.durationMs, close: o.close, cpu: o.cpu, concurrency: o.concurrency, peerCgroup: c.peerCgroup };
}

/**
 * Many clients at once on both CPUs: client unpinned, the stand-in's affinity widened for
 * the phase (then pinned back); CPU per connection is then the two processes only.
 */
export async function concurrentPhase(c: PhaseContext, s: RunState): Promise<void> {
  const { o, ui } = c;
  const main = mainBackends(c.backends);
  const all = `0-${cpus().length - 1}`;
  const affinity = (pid: number, list: string) => execFileSync(findTool('taskset') ?? 'taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
  for (const b of main) affinity(b.serverPid, all);
  try {
    for (let round = 0; round < o.rounds && !c.interrupted(); round++) {
      for (const b of main.map((_, i) => main[(i + round) % main.length]!)) {
        ui.progress(`concurrent round ${round + 1}/${o.rounds} ${b.name}`);
        const r = await loadRound(b, 'outbound', { ...roundOptions(c), cpu: null, concurrency: o.concurrentClients });
        ((s.concurrent.outbound ??= {})[b.name] ??= []).push(r);
        ui.log(`round ${round + 1}/${o.rounds} ${o.concurrentClients} clients ${b.name.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} conn/s  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/conn${r.errors + r.mismatches ? `  errors ${r.errors}, mismatches ${r.mismatches}` : ''}`);
      }
    }
  } finally {
    if (o.cpu !== null) for (const b of main) affinity(b.serverPid, String(o.cpu));
  }
}

export async function profilePhase(c: PhaseContext, s: RunState): Promise<void> {
  const ebpf = c.backends.find((b) => b.name === 'ebpf');
  if (!ebpf) return;
  for (const d of c.o.directions) {
    c.ui.progress(`profile ${d} ebpf (kernel.bpf_stats_enabled=1)`);
    s.profiles.push(await profileRound(ebpf, d, c.cleanup, () => loadRound(ebpf, d, { ...roundOptions(c), warmupMs: 0 })));
  }
}

export async function curvesPhase(c: PhaseContext, s: RunState): Promise<void> {
  const main = mainBackends(c.backends);
  if (main.length !== 3) return;
  for (const name of c.o.curveNames) {
    if (c.interrupted()) break;
    const xs = c.o.curvePoints[name];
    s.curves[name] = await runCurve(name, xs, { backends: main, cleanup: c.cleanup, round: roundOptions(c), rounds: c.o.curveRounds, progress: c.ui.progress });
    c.ui.log(`curve ${name} done (${xs.join(', ')})`);
  }
}
