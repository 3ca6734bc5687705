// The targets, each judged on an interval (the control-plane ones when the run has
// --control-plane; otherwise they read "not measured"):
// met when the whole interval is on the right side, not met when all of it is on the
// wrong side, unsettled when it straddles the target. Within one run the interval is the
// lowest to highest round; across --runs it is the lowest to highest run median.
import type { Figure, Spread } from './figures.js';

export interface Target {
  what: string;
  figure: string;
  /** Which part of the figure: its ratio to iptables, or its value. */
  of: 'vsIptables' | 'value';
  op: '<' | '<=' | '>=';
  bound: number;
  /** The optional phase that measures it; none: every run does. */
  phase?: 'control-plane';
}

export const TARGETS: Target[] = [
  { what: 'capture overhead outbound <= 0.2x iptables', figure: 'capture.outbound.ebpf', of: 'vsIptables', op: '<=', bound: 0.2 },
  { what: 'capture overhead inbound <= 0.2x iptables', figure: 'capture.inbound.ebpf', of: 'vsIptables', op: '<=', bound: 0.2 },
  { what: 'connection rate outbound >= 1.2x iptables', figure: 'rate.outbound.ebpf', of: 'vsIptables', op: '>=', bound: 1.2 },
  { what: 'connection rate inbound >= 1.2x iptables', figure: 'rate.inbound.ebpf', of: 'vsIptables', op: '>=', bound: 1.2 },
  { what: 'ebpf+accel connection cost <= ebpf + 0.5 µs (outbound)', figure: 'accelExtra.outbound', of: 'value', op: '<=', bound: 0.5 },
  { what: 'ebpf+accel round trip p50 <= 0.6x iptables', figure: 'stream.rttP50Us.ebpf+accel', of: 'vsIptables', op: '<=', bound: 0.6 },
  { what: 'ebpf+accel 64 KiB up-throughput >= 4x iptables', figure: 'stream.up65536MBps.ebpf+accel', of: 'vsIptables', op: '>=', bound: 4 },
  { what: 'CPU/conn at the most CIDRs+ports over 1 of each <= 1.1x (ebpf)', figure: 'curve.cidrs.growth.ebpf', of: 'value', op: '<=', bound: 1.1 },
  { what: 'CPU/conn at the most live records over an empty map <= 1.1x (ebpf)', figure: 'curve.conns.growth.ebpf', of: 'value', op: '<=', bound: 1.1 },
  { what: 'CPU/conn at the most pods over 1 pod <= 1.1x (ebpf)', figure: 'curve.pods.growth.ebpf', of: 'value', op: '<=', bound: 1.1 },
  { what: 'BPF map memory, acceleration off, <= 4 MiB', figure: 'memory.mapMiB.ebpf', of: 'value', op: '<=', bound: 4 },
  { what: 'policy change p99 < 100 ms (Sidecar edit, 512 pods)', figure: 'controlPlane.policyChangeP99Ms.512pods', of: 'value', op: '<', bound: 100, phase: 'control-plane' },
  { what: 'cold start, 512 pods, to all captured < 1 s (ms)', figure: 'controlPlane.coldStartMs.512pods', of: 'value', op: '<', bound: 1000, phase: 'control-plane' },
  { what: 'daemon RSS with 512 pods < 80 MB', figure: 'controlPlane.rssMB.512pods', of: 'value', op: '<', bound: 80, phase: 'control-plane' },
  { what: 'original-destination lookups (unix socket) >= 100k/s', figure: 'controlPlane.lookupsPerSecond', of: 'value', op: '>=', bound: 100_000, phase: 'control-plane' },
];

export type Verdict = 'met' | 'not met' | 'unsettled' | 'not measured';

export interface Judged {
  what: string;
  figure: string;
  interval: Spread | null;
  verdict: Verdict;
}

export function judge(t: Target, s: Spread | null | undefined): Verdict {
  if (!s || !Number.isFinite(s.min) || !Number.isFinite(s.max)) return 'not measured';
  const good = (x: number) => (t.op === '<' ? x < t.bound : t.op === '<=' ? x <= t.bound : x >= t.bound);
  if (good(s.min) && good(s.max)) return 'met';
  if (!good(s.min) && !good(s.max)) return 'not met';
  return 'unsettled';
}

export function judgeAll(figures: Figure[]): Judged[] {
  const byId = new Map(figures.map((f) => [f.id, f]));
  return TARGETS.map((t) => {
    const f = byId.get(t.figure);
    const interval = f ? (t.of === 'vsIptables' ? f.vsIptables : f.value) : null;
    return { what: t.what, figure: t.figure, interval, verdict: judge(t, interval) };
  });
}

export function formatTargets(judged: Judged[], basis: string): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const lines = [`targets (${basis}; met / not met / unsettled when the interval straddles the target)`];
  for (const j of judged) {
    const iv = j.interval ? `${f(j.interval.median)} [${f(j.interval.min)}..${f(j.interval.max)}]` : '-';
    lines.push(`  ${j.verdict.padEnd(13)}${j.what.padEnd(68)}${iv}`);
  }
  return lines.join('\n');
}
