// `--svg PATH`: the run's picture, drawn by vega-lite (compiled to a vega spec) and vega's
// headless SVG renderer. Top: ratios to iptables (median of per-round ratios, bars from
// the lowest to the highest round); below: the growth curves, CPU per connection against
// CIDRs, pods and live connections, ebpf against iptables (and none, the floor).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Figure } from './figures.js';

/** The ratios drawn at the top: id of the figure, label on the chart. */
const RATIOS: [string, string][] = [
  ['capture.outbound.ebpf', 'capture cost, outbound, ebpf'],
  ['capture.inbound.ebpf', 'capture cost, inbound, ebpf'],
  ['capture.outbound.ebpf+accel', 'capture cost, outbound, ebpf+accel'],
  ['cpu.outbound.ebpf', 'CPU/conn, outbound, ebpf'],
  ['cpu.inbound.ebpf', 'CPU/conn, inbound, ebpf'],
  ['rate.outbound.ebpf', 'conn/s, outbound, ebpf'],
  ['rate.inbound.ebpf', 'conn/s, inbound, ebpf'],
  ['concurrent.cpu.outbound.ebpf', 'CPU/conn, 32 clients, ebpf'],
  ['concurrent.rate.outbound.ebpf', 'conn/s, 32 clients, ebpf'],
  ['stream.rttP50Us.ebpf+accel', 'rt p50, ebpf+accel'],
  ['stream.up65536MBps.ebpf+accel', 'MB/s up 64K, ebpf+accel'],
  ['stream.up65536CpuUsPerMB.ebpf+accel', 'CPU/MB up 64K, ebpf+accel'],
  ['proxy.rate.http.ebpf', 'req/s via HAProxy, ebpf'],
  ['proxy.rate.http.ebpf+accel', 'req/s via HAProxy, ebpf+accel'],
  ['proxy.rate.http.floor', 'req/s via HAProxy, floor (no capture)'],
  ['proxy.cycleP50.http.ebpf', 'rt p50 via HAProxy, ebpf'],
  ['proxy.cycleP99.http.ebpf', 'rt p99 via HAProxy, ebpf'],
  ['proxy.cpu.http.ebpf', 'CPU/req via HAProxy, ebpf'],
];

const CURVE_TITLES: Record<string, string> = { cidrs: 'exclusion CIDRs + ports', pods: 'pods on the node', conns: 'records in sluice_conns' };

/** `spreadOf`: what the bars span, `round` within one run or `run median` across --runs. */
export function chartSpec(figures: Figure[], title: string, spreadOf = 'round'): TopLevelSpec {
  const byId = new Map(figures.map((f) => [f.id, f]));
  const ratios = RATIOS.flatMap(([id, label]) => {
    const r = byId.get(id)?.vsIptables;
    return r && Number.isFinite(r.median) ? [{ label, median: r.median, min: r.min, max: r.max }] : [];
  });
  const curves = figures.flatMap((f) => {
    const m = /^curve\.(\w+)\.cpu\.(\d+)\.(.+)$/.exec(f.id);
    return m && Number.isFinite(f.value.median) ? [{ curve: CURVE_TITLES[m[1]!] ?? m[1], x: Number(m[2]), backend: m[3], median: f.value.median, min: f.value.min, max: f.value.max }] : [];
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 13 },
    config: { font: 'sans-serif' },
    vconcat: [
      {
        title: `against iptables, same rounds (1 = iptables; bars: lowest to highest ${spreadOf})`,
        width: 520,
        height: { step: 18 },
        data: { values: ratios },
        layer: [
          // Linear, clipped to 0..4.5 (the 4x throughput target fits): a per-round capture ratio can go below 0 on a noisy machine.
          { mark: { type: 'rule', color: '#999', clip: true }, encoding: { x: { field: 'min', type: 'quantitative', title: 'ratio to iptables (1 = iptables)', scale: { domain: [0, 4.5], clamp: true } }, x2: { field: 'max' }, y: { field: 'label', type: 'nominal', sort: null, title: null, axis: { labelLimit: 300 } } } },
          { mark: { type: 'point', filled: true, size: 60, color: '#1f77b4' }, encoding: { x: { field: 'median', type: 'quantitative' }, y: { field: 'label', type: 'nominal', sort: null } } },
          { mark: { type: 'text', align: 'left', dx: 6, dy: -7, fontSize: 9 }, encoding: { x: { field: 'median', type: 'quantitative' }, y: { field: 'label', type: 'nominal', sort: null }, text: { field: 'median', type: 'quantitative', format: '.2f' } } },
          { data: { values: [{ one: 1 }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#d62728' }, encoding: { x: { field: 'one', type: 'quantitative' } } },
        ],
      },
      {
        title: `growth: CPU per captured outbound connection (median, bars: lowest to highest ${spreadOf})`,
        data: { values: curves },
        facet: { column: { field: 'curve', type: 'nominal', title: null } },
        spec: {
          width: 190,
          height: 180,
          layer: [
            { mark: { type: 'line', point: true }, encoding: { x: { field: 'x', type: 'quantitative', scale: { type: 'symlog' }, title: 'count (symlog)' }, y: { field: 'median', type: 'quantitative', title: 'CPU µs/conn (log)', scale: { type: 'log' } }, color: { field: 'backend', type: 'nominal' } } },
            { mark: 'rule', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' }, color: { field: 'backend', type: 'nominal' } } },
          ],
        },
        resolve: { scale: { x: 'independent' } },
      },
    ],
  };
}

export async function renderSvg(figures: Figure[], title: string, spreadOf = 'round'): Promise<string> {
  const view = new vega.View(vega.parse(compile(chartSpec(figures, title, spreadOf)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
