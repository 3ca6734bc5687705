// The README's result tables from a `--json` document (one run or `--runs N`), as
// markdown: every cell is `median [lowest..highest]` (over rounds for one run, over the
// run medians for --runs), ratios to iptables the same way, and the targets' verdicts.
//   node --import tsx bench/results-md.ts r3.json > tables.md
import { readFileSync } from 'node:fs';
import type { Figure, Spread } from './figures.js';
import type { Judged } from './targets.js';

interface Doc {
  figures: Figure[];
  targets: Judged[];
}

const num = (x: number) => (!Number.isFinite(x) ? '-' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (s: Spread | null | undefined, suffix = '') => (s && Number.isFinite(s.median) ? `${num(s.median)}${suffix} [${num(s.min)}..${num(s.max)}]` : '-');

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function resultTables(doc: Doc): string {
  const by = new Map(doc.figures.map((f) => [f.id, f]));
  const v = (id: string) => cell(by.get(id)?.value);
  const r = (id: string) => cell(by.get(id)?.vsIptables, 'x');
  const has = (id: string) => by.has(id);
  const out: string[] = [];
  const backends = ['none', 'iptables', 'ebpf', 'ebpf+accel'];

  out.push('Connection rate (CPU µs per connection: client, stand-in and the pinned CPU\'s kernel threads; added = minus `none` in the same round):', '');
  const rows: string[][] = [];
  for (const d of ['outbound', 'inbound']) for (const b of backends) if (has(`rate.${d}.${b}`)) rows.push([`${d} ${b}`, v(`cpu.${d}.${b}`), v(`capture.${d}.${b}`), v(`rate.${d}.${b}`), v(`connectP50.${d}.${b}`), v(`cycleP50.${d}.${b}`), r(`rate.${d}.${b}`), r(`cpu.${d}.${b}`), r(`capture.${d}.${b}`)]);
  out.push(table(['', 'CPU µs/conn', 'added by capture µs', 'conn/s', 'connect p50 µs', 'cycle p50 µs', 'rate vs iptables', 'CPU vs iptables', 'added vs iptables'], rows), '');
  if (has('accelExtra.outbound')) out.push(`\`ebpf+accel\` minus \`ebpf\`, outbound, per round: ${v('accelExtra.outbound')} µs/conn.`, '');

  const phases = ['up4096', 'up65536', 'down4096', 'down65536'];
  if (has('stream.up65536MBps.iptables')) {
    out.push('Throughput of the app\'s connection to its proxy: MB/s, then CPU µs per MB:', '');
    out.push(table(['', ...phases.map((p) => `${p} MB/s`), ...phases.map((p) => `${p} µs/MB`)], backends.filter((b) => has(`stream.up65536MBps.${b}`)).map((b) => [b, ...phases.map((p) => v(`stream.${p}MBps.${b}`)), ...phases.map((p) => v(`stream.${p}CpuUsPerMB.${b}`))])), '');
    out.push('64-byte round trips:', '');
    out.push(table(['', 'round trips/s', 'p50 µs', 'p99 µs', 'CPU µs/rt'], backends.filter((b) => has(`stream.rttP50Us.${b}`)).map((b) => [b, ...['roundTripsPerSecond', 'rttP50Us', 'rttP99Us', 'cpuUsPerRoundTrip'].map((m) => v(`stream.${m}.${b}`))])), '');
    out.push('Against iptables (per-round ratios):', '');
    const ms = [...phases.map((p) => `${p}MBps`), ...phases.map((p) => `${p}CpuUsPerMB`), 'rttP50Us', 'rttP99Us', 'cpuUsPerRoundTrip'];
    out.push(table(['', ...ms], backends.filter((b) => b !== 'iptables' && has(`stream.rttP50Us.${b}`)).map((b) => [b, ...ms.map((m) => r(`stream.${m}.${b}`))])), '');
  }
  if (has('concurrent.rate.outbound.iptables')) {
    out.push('32 connections in flight, outbound, both CPUs:', '');
    out.push(table(['', 'conn/s', 'CPU µs/conn', 'added µs', 'rate vs iptables', 'CPU vs iptables', 'added vs iptables'], backends.filter((b) => has(`concurrent.rate.outbound.${b}`)).map((b) => [b, ...['rate', 'cpu', 'capture'].map((m) => v(`concurrent.${m}.outbound.${b}`)), ...['rate', 'cpu', 'capture'].map((m) => r(`concurrent.${m}.outbound.${b}`))])), '');
  }
  for (const curve of ['cidrs', 'pods', 'conns']) {
    const xs = [...new Set(doc.figures.flatMap((f) => new RegExp(`^curve\\.${curve}\\.cpu\\.(\\d+)\\.`).exec(f.id)?.[1] ?? []))].map(Number).sort((a, b) => a - b);
    if (!xs.length) continue;
    out.push(`Growth, ${curve} (outbound CPU µs per connection; capture = minus none, same round):`, '');
    out.push(table([curve, 'none', 'iptables', 'ebpf', 'iptables capture', 'ebpf capture', 'ebpf capture vs iptables'], xs.map((x) => [String(x), v(`curve.${curve}.cpu.${x}.none`), v(`curve.${curve}.cpu.${x}.iptables`), v(`curve.${curve}.cpu.${x}.ebpf`), v(`curve.${curve}.capture.${x}.iptables`), v(`curve.${curve}.capture.${x}.ebpf`), r(`curve.${curve}.capture.${x}.ebpf`)])), '');
    out.push(`Growth (last point over first, each over none): ebpf ${cell(by.get(`curve.${curve}.growth.ebpf`)?.value, 'x')}, iptables ${cell(by.get(`curve.${curve}.growth.iptables`)?.value, 'x')}.`, '');
  }
  const progs = [...new Set(doc.figures.flatMap((f) => /^profile\.\w+\.(sluice_\w+)\.nsPerCall$/.exec(f.id)?.[1] ?? []))].sort();
  if (progs.length) {
    out.push('Profile split, one ebpf round per direction (kernel.bpf_stats_enabled):', '');
    out.push(table(['program', 'outbound calls/conn', 'ns/call', 'inbound calls/conn', 'ns/call'], progs.map((p) => [p, v(`profile.outbound.${p}.callsPerConnection`), v(`profile.outbound.${p}.nsPerCall`), v(`profile.inbound.${p}.callsPerConnection`), v(`profile.inbound.${p}.nsPerCall`)])), '');
    out.push(`Programs per connection: outbound ${v('profile.outbound.programsUsPerConnection')} µs, inbound ${v('profile.inbound.programsUsPerConnection')} µs.`, '');
  }
  if (has('proxy.rate.http.iptables')) {
    out.push('Through real proxies (HAProxy sidecars, one HTTP request per connection):', '');
    const modes = ['floor', 'iptables', 'ebpf', 'ebpf+accel'];
    out.push(table(['', 'requests/s', 'rt p50 µs', 'rt p99 µs', 'CPU µs/req', 'over floor µs', 'rate vs iptables', 'p50 vs iptables', 'p99 vs iptables', 'CPU vs iptables'], modes.filter((m) => has(`proxy.rate.http.${m}`)).map((m) => [m, ...['rate', 'cycleP50', 'cycleP99', 'cpu', 'capture'].map((x) => v(`proxy.${x}.http.${m}`)), ...['rate', 'cycleP50', 'cycleP99', 'cpu'].map((x) => r(`proxy.${x}.http.${m}`))])), '');
  }
  const mem = doc.figures.filter((f) => f.id.startsWith('memory.mapMiB.'));
  if (mem.length) out.push(`BPF map memory at default sizes: ${mem.map((f) => `${f.id.slice('memory.mapMiB.'.length)} ${v(f.id)} MiB`).join(', ')}.`, '');
  out.push('Targets:', '');
  out.push(table(['target', 'figure', 'measured', 'verdict'], doc.targets.map((j) => [j.what.replace(/\|/g, '\\|'), `\`${j.figure}\``, cell(j.interval), `**${j.verdict}**`])));
  return `${out.join('\n')}\n`;
}

if (process.argv[1]?.endsWith('results-md.ts')) {
  const path = process.argv[2];
  if (!path) throw new Error('usage: node --import tsx bench/results-md.ts RESULTS.json');
  process.stdout.write(resultTables(JSON.parse(readFileSync(path, 'utf8')) as Doc));
}
