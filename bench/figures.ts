// Every figure of a run as one flat list: the median over rounds with its spread (min and
// max over rounds), and the ratio to iptables measured in the same rounds (per-round
// ratios: median, min, max). `--json` writes the list; `--runs` and the SVG read it.
import type { BackendName, Direction } from './backends.js';
import type { LoadResult } from './load.js';
import { median, streamMetrics, type Results, type StreamResults } from './report.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Figure {
  /** Stable name, e.g. `rate.outbound.ebpf` or `curve.cidrs.1000.ebpf.capture`. */
  id: string;
  unit: string;
  /** Over rounds. */
  value: Spread;
  /** backend / iptables per round (null for iptables itself and for figures without a pair). */
  vsIptables: Spread | null;
}

export function spread(xs: number[]): Spread {
  const ok = xs.filter(Number.isFinite);
  return { median: median(ok), min: ok.length ? Math.min(...ok) : NaN, max: ok.length ? Math.max(...ok) : NaN, n: ok.length };
}

/** Per-round values of `f` for `b`, and per-round ratios to `base` (rounds paired by index). */
export function paired(b: number[], base: number[] | null): { value: Spread; vsIptables: Spread | null } {
  const n = base ? Math.min(b.length, base.length) : 0;
  return { value: spread(b), vsIptables: base ? spread(Array.from({ length: n }, (_, i) => b[i]! / base[i]!)) : null };
}

const cpuOf = (r: LoadResult) => (r.cpuUsPerConnection >= 0 ? r.cpuUsPerConnection : NaN);

/** CPU per connection minus `none`'s in the same round. */
export function addedCpu(rs: LoadResult[], none: LoadResult[]): number[] {
  const n = Math.min(rs.length, none.length);
  return Array.from({ length: n }, (_, i) => cpuOf(rs[i]!) - cpuOf(none[i]!));
}

/**
 * Rate, CPU per connection, what the capture adds (over `floor`, `none` unless told),
 * latencies: for every backend of every group.
 */
export function loadFigures(prefix: string, results: Results | Partial<Record<string, Partial<Record<string, LoadResult[]>>>>, floor = 'none'): Figure[] {
  const out: Figure[] = [];
  for (const [group, byBackend] of Object.entries(results) as [string, Partial<Record<string, LoadResult[]>> | undefined][]) {
    if (!byBackend) continue;
    const base = byBackend.iptables ?? null;
    const none = byBackend[floor] ?? null;
    for (const [name, rs] of Object.entries(byBackend) as [string, LoadResult[]][]) {
      const pair = (unit: string, metric: string, f: (r: LoadResult) => number) => {
        const p = paired(rs.map(f), name === 'iptables' ? null : base ? base.map(f) : null);
        out.push({ id: `${prefix}${metric}.${group}.${name}`, unit, ...p });
      };
      pair('conn/s', 'rate', (r) => r.rate);
      pair('µs/conn', 'cpu', cpuOf);
      pair('µs', 'connectP50', (r) => r.connectUs.p50);
      pair('µs', 'cycleP50', (r) => r.cycleUs.p50);
      if (none && name !== floor) {
        const mine = addedCpu(rs, none);
        const p = paired(mine, name === 'iptables' || !base ? null : addedCpu(base, none));
        out.push({ id: `${prefix}capture.${group}.${name}`, unit: 'µs/conn', ...p });
      }
      const r0 = rs[0];
      if (r0) {
        // Sums over rounds, not medians: one wrong listener anywhere counts.
        for (const k of ['errors', 'mismatches'] as const) {
          const total = rs.reduce((a, r) => a + r[k], 0);
          out.push({ id: `${prefix}${k}.${group}.${name}`, unit: 'count', value: { median: total, min: total, max: total, n: rs.length }, vsIptables: null });
        }
      }
    }
  }
  return out;
}

export function streamFigures(streams: StreamResults): Figure[] {
  const sample = Object.values(streams)
    .flatMap((rs) => rs ?? [])
    .find((r) => r.result.up.length && !r.result.error)?.result;
  if (!sample) return [];
  const m = streamMetrics(sample);
  const base = streams.iptables ?? null;
  const out: Figure[] = [];
  for (const [name, rs] of Object.entries(streams) as [BackendName, NonNullable<StreamResults[BackendName]>][]) {
    for (const x of [...m.rates, ...m.cpu, ...m.ping]) {
      const p = paired(
        rs.map((r) => x.of(r.result)),
        name === 'iptables' || !base ? null : base.map((r) => x.of(r.result)),
      );
      out.push({ id: `stream.${x.key}.${name}`, unit: x.key.endsWith('MBps') ? 'MB/s' : x.key.includes('PerMB') ? 'µs/MB' : x.key === 'roundTripsPerSecond' ? 'rt/s' : 'µs', ...p });
    }
  }
  return out;
}

/** Directions as groups, for loadFigures. */
export type ByDirection = Partial<Record<Direction, Partial<Record<BackendName, LoadResult[]>>>>;

const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** `median [min..max]`, and the ratio the same way: for the printed tables. */
export function formatFigure(f: Figure, digits = 2): string {
  const v = `${fmt(f.value.median, digits)} [${fmt(f.value.min, digits)}..${fmt(f.value.max, digits)}] ${f.unit}`;
  return f.vsIptables ? `${v}  ${fmt(f.vsIptables.median, 2)}x [${fmt(f.vsIptables.min, 2)}..${fmt(f.vsIptables.max, 2)}] of iptables` : v;
}
