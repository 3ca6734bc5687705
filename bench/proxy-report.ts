// The `--proxy` phase's figures and table. Ids: proxy.<metric>.http.<mode> for rate,
// cpu, capture (CPU per request over the floor's, same round), connectP50, cycleP50 and
// cycleP99 (the round trip of one request on a new connection), errors and mismatches.
import { formatFigure, loadFigures, paired, type Figure } from './figures.js';
import { PROXY_EXPECT, PROXY_GROUP, PROXY_MODES, type ProxyResults } from './proxy.js';

export function proxyFigures(p: ProxyResults): Figure[] {
  const out = loadFigures('proxy.', { [PROXY_GROUP]: p.rounds }, 'floor');
  const base = p.rounds.iptables ?? null;
  for (const mode of PROXY_MODES) {
    const rs = p.rounds[mode];
    if (!rs) continue;
    const f = (r: (typeof rs)[number]) => r.cycleUs.p99;
    out.push({ id: `proxy.cycleP99.${PROXY_GROUP}.${mode}`, unit: 'µs', ...paired(rs.map(f), mode === 'iptables' || !base ? null : base.map(f)) });
  }
  return out;
}

export function formatProxy(figures: Figure[], p: ProxyResults, title: string): string {
  const byId = new Map(figures.map((f) => [f.id, f]));
  const rows: [string, string][] = [
    ['rate', 'requests/s'],
    ['cycleP50', 'round trip p50'],
    ['cycleP99', 'round trip p99'],
    ['cpu', 'CPU per request'],
    ['capture', 'CPU over floor'],
  ];
  const lines = [title, `  every reply checked: it must contain ${PROXY_EXPECT}`];
  for (const mode of PROXY_MODES) {
    for (const [metric, label] of rows) {
      const f = byId.get(`proxy.${metric}.${PROXY_GROUP}.${mode}`);
      if (f) lines.push(`  ${mode.padEnd(11)} ${label.padEnd(16)} ${formatFigure(f, 1)}`);
    }
    const errs = byId.get(`proxy.errors.${PROXY_GROUP}.${mode}`)?.value.median ?? 0;
    const wrong = byId.get(`proxy.mismatches.${PROXY_GROUP}.${mode}`)?.value.median ?? 0;
    if (errs + wrong > 0) lines.push(`  ${mode.padEnd(11)} errors ${errs}, wrong replies ${wrong}`);
  }
  for (const [mode, why] of Object.entries(p.failed)) lines.push(`  ${mode.padEnd(11)} NOT MEASURED: ${why}`);
  if (p.accel) lines.push(`  ebpf+accel sk_msg counters over its rounds: ${p.accel.enrolled} sockets enrolled, ${p.accel.redirected} messages (${p.accel.redirectedBytes} bytes) redirected, ${p.accel.peerMissing} without an enrolled peer`);
  return lines.join('\n');
}

/** A mode that answered nothing does not measure its capture. */
export function proxyProblems(p: ProxyResults, log: (m: string) => void): boolean {
  let bad = false;
  for (const mode of PROXY_MODES) {
    const rs = p.rounds[mode] ?? [];
    if (p.failed[mode]) {
      bad = true;
      log(`proxy ${mode}: not measured: ${p.failed[mode]}`);
    } else if (rs.reduce((a, r) => a + r.connections, 0) === 0) {
      bad = true;
      log(`proxy ${mode}: no request answered (first error "${rs[0]?.firstError ?? ''}")`);
    }
  }
  return bad;
}
