// Summaries and the printed table. Each backend's figure is the median over rounds; each
// ratio is the median of per-round ratios, so a backend is compared with iptables as
// measured minutes, not a whole run, apart.
import type { BackendName, Direction } from './backends.js';
import type { LoadResult } from './load.js';
import type { MemoryReport } from './memory.js';

export interface Summary {
  rounds: number;
  connections: number;
  errors: number;
  mismatches: number;
  /** Medians over rounds. */
  rate: number;
  cpuUsPerConnection: number;
  connectP50Us: number;
  connectP99Us: number;
  cycleP50Us: number;
  cycleP99Us: number;
  /** Spread of the per-round rates: (max - min) / median. */
  rateSpread: number;
}

export interface Ratios {
  /** backend rate / iptables rate: above 1 is faster. */
  rate: number;
  /** backend / iptables for the rest: below 1 is cheaper or faster. */
  cpuPerConnection: number;
  connectP50: number;
  connectP99: number;
  cycleP50: number;
  cycleP99: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** -1 from native/bench.c means "not measured". */
const cpuOf = (r: LoadResult) => (r.cpuUsPerConnection >= 0 ? r.cpuUsPerConnection : NaN);

export function summarize(rounds: LoadResult[]): Summary {
  const rates = rounds.map((r) => r.rate);
  const rate = median(rates);
  return {
    rounds: rounds.length,
    connections: rounds.reduce((a, r) => a + r.connections, 0),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    mismatches: rounds.reduce((a, r) => a + r.mismatches, 0),
    rate,
    cpuUsPerConnection: median(rounds.map(cpuOf)),
    connectP50Us: median(rounds.map((r) => r.connectUs.p50)),
    connectP99Us: median(rounds.map((r) => r.connectUs.p99)),
    cycleP50Us: median(rounds.map((r) => r.cycleUs.p50)),
    cycleP99Us: median(rounds.map((r) => r.cycleUs.p99)),
    rateSpread: rate > 0 ? (Math.max(...rates) - Math.min(...rates)) / rate : NaN,
  };
}

/** Per-round ratios of `b` to `base` (rounds paired by index), then their median. */
export function pairedRatios(b: LoadResult[], base: LoadResult[]): Ratios {
  const n = Math.min(b.length, base.length);
  const r = (f: (x: LoadResult) => number) => median(Array.from({ length: n }, (_, i) => f(b[i]!) / f(base[i]!)));
  return {
    rate: r((x) => x.rate),
    cpuPerConnection: r(cpuOf),
    connectP50: r((x) => x.connectUs.p50),
    connectP99: r((x) => x.connectUs.p99),
    cycleP50: r((x) => x.cycleUs.p50),
    cycleP99: r((x) => x.cycleUs.p99),
  };
}

/** What the capture adds to a connection's CPU time: per-round differences from `none`, their median. */
export function captureCpuUs(b: LoadResult[], none: LoadResult[]): number {
  const n = Math.min(b.length, none.length);
  return median(Array.from({ length: n }, (_, i) => cpuOf(b[i]!) - cpuOf(none[i]!)));
}

export type Results = Partial<Record<Direction, Partial<Record<BackendName, LoadResult[]>>>>;

const num = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const times = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');

/** A header line and one row per backend; every column but the first right-aligned. */
function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)) + (i === 0 ? 0 : 2));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join('');
  return [line(head), ...rows.map(line)];
}

export function formatTable(title: string, runs: Partial<Record<BackendName, LoadResult[]>>): string {
  const entries = Object.entries(runs) as [BackendName, LoadResult[]][];
  const figures = entries.map(([name, rounds]) => {
    const s = summarize(rounds);
    const errs = s.mismatches > 0 ? `${s.errors} + ${s.mismatches} wrong listener!` : String(s.errors);
    const added = runs.none ? num(captureCpuUs(rounds, runs.none), 2) : '-';
    return [name, num(s.rate, 0), `${num(s.rateSpread * 100, 0)}%`, num(s.cpuUsPerConnection), added, num(s.connectP50Us), num(s.connectP99Us), num(s.cycleP50Us), num(s.cycleP99Us), errs];
  });
  const lines = [title, ...table(['backend', 'conn/s', 'spread', 'CPU µs/conn', 'added by capture', 'connect p50 µs', 'p99', 'cycle p50 µs', 'p99', 'errors'], figures)];
  const base = runs.iptables;
  if (base) {
    const ratios = entries
      .filter(([name]) => name !== 'iptables')
      .map(([name, rounds]) => {
        const r = pairedRatios(rounds, base);
        return [name, times(r.rate), times(r.cpuPerConnection), times(r.connectP50), times(r.connectP99), times(r.cycleP50), times(r.cycleP99)];
      });
    lines.push('', ...table(['vs iptables', 'rate', 'CPU/conn', 'connect p50', 'p99', 'cycle p50', 'p99'], ratios));
  }
  return lines.join('\n');
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

export function formatMemory(memory: Partial<Record<BackendName, MemoryReport>>): string {
  const lines = ['kernel memory after the run (reported, not asserted)'];
  for (const [name, m] of Object.entries(memory) as [BackendName, MemoryReport][]) {
    const parts: string[] = [];
    if (m.bpf) {
      parts.push(`BPF maps ${kib(m.bpf.mapBytes)} (${m.bpf.maps.length}), programs ${kib(m.bpf.programBytes)} (${m.bpf.programs.length})`);
      // Hash maps keep a bucket array sized by capacity, whatever they hold: name the big ones.
      const big = [...m.bpf.maps].sort((a, b) => b.memlockBytes - a.memlockBytes).slice(0, 2);
      if (big.length) parts.push(`largest ${big.map((x) => `${x.name} ${kib(x.memlockBytes)} for ${x.maxEntries} max`).join(', ')}`);
      const conns = m.bpf.maps.find((x) => x.name === 'sluice_conns');
      if (conns) parts.push(`sluice_conns entries ${conns.entries ?? '?'}`);
    }
    if (m.iptablesRules) parts.push(`iptables rules ${m.iptablesRules.ipv4} IPv4 + ${m.iptablesRules.ipv6} IPv6`);
    const ct = m.conntrack;
    const est = ct.objectBytes !== null ? ` (~${kib(ct.peakEntries * ct.objectBytes)} at ${ct.objectBytes} B each)` : '';
    parts.push(`conntrack entries ${ct.entries} now, peak ${ct.peakEntries}${ct.peakEntries > 0 ? est : ''}`);
    lines.push(`  ${name.padEnd(10)}${parts.join('; ')}`);
  }
  return lines.join('\n');
}
