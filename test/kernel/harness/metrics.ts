// The daemon's /metrics, parsed: Prometheus text to a map of series, and the lookups the
// tests make in it.

/** Prometheus text: `name{a="x",b="y"}` (labels sorted) → value. */
export type Metrics = Map<string, number>;

export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

/** The value of one series (0 when absent); labels given as an object. */
export function metric(m: Metrics, name: string, labels: Record<string, string> = {}): number {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return m.get(l.length ? `${name}{${l.join(',')}}` : name) ?? 0;
}

/** Series names present (without labels). */
export function metricNames(m: Metrics): Set<string> {
  return new Set([...m.keys()].map((k) => k.split('{')[0]!));
}

/** Sum of the kernel decision counters with this outcome (outbound-proxy, pass...). */
export function decisions(m: Metrics, outcome: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k.startsWith('sluice_decisions_total{') && k.includes(`outcome="${outcome}"`)) sum += v;
  return sum;
}
