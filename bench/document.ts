// `--json PATH` of one run: every figure, the targets, and the raw rounds of every phase.
import { cpus, loadavg, release } from 'node:os';
import type { WakeupReport } from '../src/bpf/probes.js';
import type { BackendName } from './backends.js';
import type { Figure } from './figures.js';
import type { MemoryReport } from './memory.js';
import type { BenchOptions } from './options.js';
import type { RunState } from './phases.js';
import type { Judged } from './targets.js';
import { captureCpuUs, pairedRatios, summarize, summarizeStreams } from './report.js';

/** What one run hands its report, its picture and its document. */
export interface RunOutput {
  o: BenchOptions;
  started: string;
  loadBefore: number[];
  sockmap: WakeupReport | null;
  state: RunState;
  memory: Partial<Record<BackendName, MemoryReport>>;
  figures: Figure[];
  judged: Judged[];
}

export function runDocument(p: RunOutput): object {
  const { o, state: s } = p;
  const ratios: Record<string, Record<string, unknown>> = {};
  for (const d of o.directions) {
    const base = s.results[d]?.iptables;
    ratios[d] = Object.fromEntries(Object.entries(s.results[d] ?? {}).flatMap(([n, rs]) => (base && n !== 'iptables' ? [[n, pairedRatios(rs, base)]] : [])));
  }
  const summaries = Object.fromEntries(
    o.directions.map((d) => {
      const none = s.results[d]?.none;
      return [d, Object.fromEntries(Object.entries(s.results[d] ?? {}).map(([n, rs]) => [n, { ...summarize(rs), captureCpuUs: none ? captureCpuUs(rs, none) : null }]))];
    }),
  );
  return {
    started: p.started,
    command: process.argv.slice(2),
    kernel: release(),
    cpus: cpus().length,
    loadAverage: { start: p.loadBefore, end: loadavg() },
    options: {
      quick: o.quick,
      rounds: o.rounds,
      durationMs: o.durationMs,
      warmupMs: o.warmupMs,
      concurrency: o.concurrency,
      cpu: o.cpu,
      close: o.close,
      spikeInbound: o.spike,
      throughputMs: o.throughputMs,
      writes: o.writes,
      pingSize: o.pingSize,
      curveRounds: o.curveRounds,
      curvePoints: Object.fromEntries(o.curveNames.map((c) => [c, o.curvePoints[c]])),
      concurrentClients: o.concurrentClients,
      proxy: o.proxy,
      proxyRounds: o.proxyRounds,
      controlPlane: o.controlPlane,
      cpPods: o.cpPods,
      cpChanges: o.cpChanges,
    },
    figures: p.figures,
    targets: p.judged,
    profiles: s.profiles,
    concurrent: s.concurrent,
    curves: s.curves,
    sockmapCheck: p.sockmap && { verdict: p.sockmap.verdict, summary: p.sockmap.summary, accelerationForced: p.sockmap.verdict !== 'ok' },
    summaries,
    ratiosVsIptables: ratios,
    rounds: s.results,
    rateAccelCounters: s.rateAccel,
    throughput: o.throughputMs > 0 ? { ...summarizeStreams(s.streams), rounds: s.streams } : null,
    memory: p.memory,
    proxy: s.proxy,
    controlPlane: s.controlPlane,
  };
}
