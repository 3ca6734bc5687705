// Summaries and the printed table. Each backend's figure is the median over rounds; each
// ratio is the median of per-round ratios, so a backend is compared with iptables as
// measured minutes, not a whole run, apart.
import type { BackendName, Direction } from './backends.js';
import type { LoadResult, StreamResult } from './load.js';
import type { MemoryReport } from './memory.js';

export interface Summary {
  rounds: number;
  connections: number;
  errors: number;
  mismatches: number;
  /** Medians over rounds. */
  rate: number;
  cpuUsPerConnection: number;
  kthreadUsPerConnection: number;
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
    kthreadUsPerConnection: median(rounds.map((r) => (r.kthreadUsPerConnection >= 0 ? r.kthreadUsPerConnection : NaN))),
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
    return [name, num(s.rate, 0), `${num(s.rateSpread * 100, 0)}%`, num(s.cpuUsPerConnection), num(s.kthreadUsPerConnection), added, num(s.connectP50Us), num(s.connectP99Us), num(s.cycleP50Us), num(s.cycleP99Us), errs];
  });
  const lines = [title, ...table(['backend', 'conn/s', 'spread', 'CPU µs/conn', 'in kthreads', 'added by capture', 'connect p50 µs', 'p99', 'cycle p50 µs', 'p99', 'errors'], figures)];
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
    lines.push(`  ${name.padEnd(11)}${parts.join('; ')}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- throughput

/** What the acceleration counters of a backend's data plane did during one run. */
export interface AccelDelta {
  enrolled: number;
  enrolFailed: number;
  redirected: number;
  redirectedBytes: number;
  peerMissing: number;
  off: number;
}

export function accelDelta(before: Record<string, bigint>, after: Record<string, bigint>): AccelDelta {
  const d = (k: string) => Number((after[k] ?? 0n) - (before[k] ?? 0n));
  return { enrolled: d('accel_enrolled'), enrolFailed: d('accel_enrol_failed'), redirected: d('accel_redirected'), redirectedBytes: d('accel_redirected_bytes'), peerMissing: d('accel_peer_missing'), off: d('accel_off') };
}

export function addAccel(a: AccelDelta | undefined, b: AccelDelta): AccelDelta {
  if (!a) return { ...b };
  return { enrolled: a.enrolled + b.enrolled, enrolFailed: a.enrolFailed + b.enrolFailed, redirected: a.redirected + b.redirected, redirectedBytes: a.redirectedBytes + b.redirectedBytes, peerMissing: a.peerMissing + b.peerMissing, off: a.off + b.off };
}

/** One stream run of a backend, and its counters when it has a data plane. */
export interface StreamRun {
  result: StreamResult;
  accel: AccelDelta | null;
}

export type StreamResults = Partial<Record<BackendName, StreamRun[]>>;

interface Metric {
  key: string;
  head: string;
  of(r: StreamResult): number;
}

const MB = 1e6;
const sizeName = (b: number) => (b % 1024 === 0 ? `${b / 1024}K` : `${b}B`);

/** The figures of a stream run, named after its phases (as the first run has them). */
export function streamMetrics(sample: StreamResult): { rates: Metric[]; cpu: Metric[]; ping: Metric[] } {
  const rates: Metric[] = [];
  const cpu: Metric[] = [];
  for (const dir of ['up', 'down'] as const) {
    sample[dir].forEach((p, i) => {
      const name = `${dir} ${sizeName(p.write)}`;
      const phase = (r: StreamResult) => r[dir][i];
      rates.push({ key: `${dir}${p.write}MBps`, head: name, of: (r) => (phase(r) ? phase(r)!.bytes / phase(r)!.seconds / MB : NaN) });
      cpu.push({ key: `${dir}${p.write}CpuUsPerMB`, head: name, of: (r) => (phase(r) && phase(r)!.bytes > 0 ? phase(r)!.cpuNs / 1000 / (phase(r)!.bytes / MB) : NaN) });
    });
  }
  const ping: Metric[] = [
    { key: 'roundTripsPerSecond', head: 'round trips/s', of: (r) => r.ping.roundTrips / r.ping.seconds },
    { key: 'rttP50Us', head: 'p50 µs', of: (r) => r.ping.us.p50 },
    { key: 'rttP99Us', head: 'p99 µs', of: (r) => r.ping.us.p99 },
    { key: 'cpuUsPerRoundTrip', head: 'CPU µs/rt', of: (r) => (r.ping.roundTrips > 0 ? r.ping.cpuNs / 1000 / r.ping.roundTrips : NaN) },
  ];
  return { rates, cpu, ping };
}

function firstResult(runs: StreamResults): StreamResult | null {
  for (const rs of Object.values(runs)) for (const r of rs ?? []) if (r.result.up.length && !r.result.error) return r.result;
  return null;
}

/** The share of the connection's bytes that went through the sk_msg redirect (null: no data plane). */
export function redirectedShare(runs: StreamRun[]): number | null {
  if (runs.some((r) => r.accel === null)) return null;
  const total = runs.reduce((a, r) => a + r.result.bytesSent + r.result.bytesReceived, 0);
  const redirected = runs.reduce((a, r) => a + r.accel!.redirectedBytes, 0);
  return total > 0 ? redirected / total : NaN;
}

/** Medians over rounds, and per-round ratios against iptables, of every stream figure. */
export function summarizeStreams(runs: StreamResults): { summaries: Record<string, Record<string, number | null>>; ratios: Record<string, Record<string, number>> } {
  const sample = firstResult(runs);
  const summaries: Record<string, Record<string, number | null>> = {};
  const ratios: Record<string, Record<string, number>> = {};
  if (!sample) return { summaries, ratios };
  const m = streamMetrics(sample);
  const all = [...m.rates, ...m.cpu, ...m.ping];
  const base = runs.iptables;
  for (const [name, rs] of Object.entries(runs) as [BackendName, StreamRun[]][]) {
    summaries[name] = Object.fromEntries([...all.map((x) => [x.key, median(rs.map((r) => x.of(r.result)))]), ['redirectedShare', redirectedShare(rs)]]);
    if (base && name !== 'iptables') {
      const n = Math.min(rs.length, base.length);
      ratios[name] = Object.fromEntries(all.map((x) => [x.key, median(Array.from({ length: n }, (_, i) => x.of(rs[i]!.result) / x.of(base[i]!.result)))]));
    }
  }
  return { summaries, ratios };
}

export function formatStreams(title: string, runs: StreamResults): string {
  const sample = firstResult(runs);
  if (!sample) return `${title}\n  no stream run completed`;
  const m = streamMetrics(sample);
  const entries = Object.entries(runs) as [BackendName, StreamRun[]][];
  const med = (rs: StreamRun[], x: Metric) => median(rs.map((r) => x.of(r.result)));
  const share = (rs: StreamRun[]) => {
    const s = redirectedShare(rs);
    return s === null ? '-' : `${num(s * 100, 0)}%`;
  };
  // Acceleration figures that did not come from the redirect say so wherever they appear.
  const label = (n: BackendName) => {
    const s = n === 'ebpf+accel' ? redirectedShare(runs[n] ?? []) : 1;
    return s !== null && s >= 0.99 ? n : `${n} (NOT via sk_msg)`;
  };
  const lines = [title, '', '  MB/s (10^6 bytes per second), then CPU µs per MB (client, proxy stand-in and the CPU\'s kernel threads)'];
  lines.push(...table(['backend', ...m.rates.map((x) => x.head), ...m.cpu.map((x) => `${x.head} µs/MB`), 'via sk_msg'], entries.map(([n, rs]) => [label(n), ...m.rates.map((x) => num(med(rs, x), 0)), ...m.cpu.map((x) => num(med(rs, x), 1)), share(rs)])));
  lines.push('', `  ${sample.ping.size} B request/response round trips`);
  lines.push(...table(['backend', ...m.ping.map((x) => x.head)], entries.map(([n, rs]) => [label(n), ...m.ping.map((x, i) => num(med(rs, x), i === 0 ? 0 : 1))])));
  const base = runs.iptables;
  if (base) {
    const { ratios } = summarizeStreams(runs);
    const cols = [...m.rates.map((x) => [x.key, `${x.head} MB/s`]), ...m.cpu.map((x) => [x.key, `${x.head} CPU`]), ['rttP50Us', 'rt p50'], ['rttP99Us', 'rt p99'], ['cpuUsPerRoundTrip', 'CPU/rt']] as const;
    lines.push('', ...table(['vs iptables', ...cols.map((c) => c[1])], Object.entries(ratios).map(([n, r]) => [label(n as BackendName), ...cols.map((c) => times(r[c[0]]))])));
  }
  return lines.join('\n');
}
