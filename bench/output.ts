// Assembles the run's figure list (figures.ts) from every phase, and prints the new
// phases' tables: concurrency, growth curves, the profile split.
import type { BackendName } from './backends.js';
import type { CurveName, CurvePoint } from './curves.js';
import { formatFigure, loadFigures, paired, spread, streamFigures, type ByDirection, type Figure } from './figures.js';
import type { LoadResult } from './load.js';
import type { MemoryReport } from './memory.js';
import type { Profile } from './profile.js';
import type { StreamResults } from './report.js';

export interface Phases {
  results: ByDirection;
  concurrent: ByDirection;
  streams: StreamResults;
  curves: Partial<Record<CurveName, CurvePoint[]>>;
  memory: Partial<Record<BackendName, MemoryReport>>;
  profiles: Profile[];
}

const cpu = (r: LoadResult) => (r.cpuUsPerConnection >= 0 ? r.cpuUsPerConnection : NaN);

/** Per round: (cpu at the last point / none's) over (cpu at the first point / none's). */
function growth(points: CurvePoint[], name: BackendName): number[] {
  const first = points[0]?.rounds;
  const last = points[points.length - 1]?.rounds;
  if (!first || !last || points.length < 2) return [];
  const a = last[name] ?? [];
  const b = first[name] ?? [];
  const na = last.none ?? [];
  const nb = first.none ?? [];
  const n = Math.min(a.length, b.length, na.length, nb.length);
  return Array.from({ length: n }, (_, i) => cpu(a[i]!) / cpu(na[i]!) / (cpu(b[i]!) / cpu(nb[i]!)));
}

export function allFigures(p: Phases): Figure[] {
  const out = [...loadFigures('', p.results), ...loadFigures('concurrent.', p.concurrent), ...streamFigures(p.streams)];
  const eb = p.results.outbound?.ebpf;
  const ac = p.results.outbound?.['ebpf+accel'];
  if (eb && ac) {
    const n = Math.min(eb.length, ac.length);
    out.push({ id: 'accelExtra.outbound', unit: 'µs/conn', value: spread(Array.from({ length: n }, (_, i) => cpu(ac[i]!) - cpu(eb[i]!))), vsIptables: null });
  }
  for (const [name, points] of Object.entries(p.curves) as [CurveName, CurvePoint[]][]) {
    out.push(...loadFigures(`curve.${name}.`, Object.fromEntries(points.map((pt) => [String(pt.x), pt.rounds]))));
    for (const b of ['ebpf', 'iptables'] as const) {
      const g = growth(points, b);
      if (g.length) out.push({ id: `curve.${name}.growth.${b}`, unit: 'x', ...paired(g, null) });
    }
  }
  for (const [name, m] of Object.entries(p.memory)) {
    if (m?.bpf) out.push({ id: `memory.mapMiB.${name}`, unit: 'MiB', value: spread([m.bpf.mapBytes / 2 ** 20]), vsIptables: null });
  }
  for (const prof of p.profiles) {
    for (const x of prof.programs) {
      out.push({ id: `profile.${prof.direction}.${x.name}.callsPerConnection`, unit: 'calls/conn', value: spread([x.callsPerConnection]), vsIptables: null });
      out.push({ id: `profile.${prof.direction}.${x.name}.nsPerCall`, unit: 'ns', value: spread([x.nsPerCall]), vsIptables: null });
    }
    out.push({ id: `profile.${prof.direction}.programsUsPerConnection`, unit: 'µs/conn', value: spread([prof.programsUsPerConnection]), vsIptables: null });
  }
  return out;
}

export function formatCurves(figures: Figure[], curves: Phases['curves']): string {
  const byId = new Map(figures.map((f) => [f.id, f]));
  const lines: string[] = [];
  for (const [name, points] of Object.entries(curves) as [CurveName, CurvePoint[]][]) {
    lines.push(`growth curve ${name}: CPU µs per captured outbound connection, median [min..max] over rounds; capture = minus none in the same round`);
    for (const pt of points) {
      for (const b of ['none', 'iptables', 'ebpf'] as const) {
        const c = byId.get(`curve.${name}.cpu.${pt.x}.${b}`);
        const add = byId.get(`curve.${name}.capture.${pt.x}.${b}`);
        if (c) lines.push(`  ${String(pt.x).padStart(7)} ${b.padEnd(9)} cpu ${formatFigure(c)}${add ? `;  capture ${formatFigure(add)}` : ''}`);
      }
    }
    for (const b of ['ebpf', 'iptables']) {
      const g = byId.get(`curve.${name}.growth.${b}`);
      if (g) lines.push(`  growth ${b} (last point over first, each over none): ${formatFigure(g)}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

export function formatConcurrent(figures: Figure[], title: string): string {
  const rows = figures.filter((f) => f.id.startsWith('concurrent.') && /\.(rate|cpu|capture)\./.test(f.id));
  return [title, ...rows.map((f) => `  ${f.id.replace('concurrent.', '').padEnd(30)} ${formatFigure(f)}`)].join('\n');
}
