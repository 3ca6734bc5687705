// The bench's --proxy and --control-plane figures and verdicts on made-up measurements,
// and its options. No timing is measured here.
import test from 'ava';
import { controlPlaneFiguresOf, type ControlPlaneResult } from '../../bench/control-plane-phase.js';
import type { LoadResult } from '../../bench/load.js';
import { parseBenchArgs } from '../../bench/options.js';
import { proxyFigures } from '../../bench/proxy-report.js';
import { judgeAll } from '../../bench/targets.js';

function load(rate: number, cpu: number, p50: number, p99: number, mismatches = 0): LoadResult {
  const us = { p50, p99, mean: p50 };
  return { connections: rate, errors: 0, mismatches, seconds: 1, rate, connectUs: us, cycleUs: us, cpuUsPerConnection: cpu, kthreadUsPerConnection: 0, firstReply: '', firstError: '' };
}

test('proxy figures: capture is CPU over the floor of the same round, ratios pair rounds with iptables', (t) => {
  const figures = proxyFigures({
    rounds: {
      floor: [load(5000, 200, 190, 300), load(5200, 190, 180, 280)],
      iptables: [load(4000, 250, 240, 400), load(4200, 240, 230, 380)],
      ebpf: [load(4800, 210, 200, 320), load(5000, 200, 190, 300, 1)],
    },
    accel: null,
    failed: {},
  });
  const byId = new Map(figures.map((f) => [f.id, f]));
  t.deepEqual(byId.get('proxy.capture.http.ebpf')?.value, { median: 10, min: 10, max: 10, n: 2 });
  t.deepEqual(byId.get('proxy.capture.http.iptables')?.value, { median: 50, min: 50, max: 50, n: 2 });
  t.is(byId.get('proxy.capture.http.ebpf')?.vsIptables?.median, 0.2);
  t.is(byId.get('proxy.rate.http.ebpf')?.vsIptables?.max, 4800 / 4000);
  t.is(byId.get('proxy.cycleP99.http.ebpf')?.vsIptables?.max, 320 / 400);
  t.is(byId.get('proxy.cycleP99.http.iptables')?.vsIptables, null);
  t.is(byId.get('proxy.capture.http.floor'), undefined, 'the floor has no capture of its own');
  t.is(byId.get('proxy.mismatches.http.ebpf')?.value.median, 1, 'wrong replies are summed over rounds');
});

const cp = (o: Partial<ControlPlaneResult> = {}): ControlPlaneResult => ({
  pods: 512,
  coldStartMs: 900,
  healthyMs: 300,
  rssMiB: 70,
  sidecarChangeMs: { p50: 20, p99: 100, max: 120, n: 100 },
  lookups: [{ answers: 1, wrong: 0, seconds: 1, rate: 90_000 }, { answers: 1, wrong: 0, seconds: 1, rate: 110_000 }],
  ...o,
});

test('control-plane targets: judged on the phase figures, strictly where the issue says "<"', (t) => {
  const verdict = (r: ControlPlaneResult) => Object.fromEntries(judgeAll(controlPlaneFiguresOf(r)).filter((j) => j.figure.startsWith('controlPlane.')).map((j) => [j.figure, j.verdict]));
  t.deepEqual(verdict(cp()), {
    'controlPlane.policyChangeP99Ms.512pods': 'not met', // exactly 100 is not < 100
    'controlPlane.coldStartMs.512pods': 'met',
    'controlPlane.rssMB.512pods': 'met', // 70 MiB = 73.4 MB
    'controlPlane.lookupsPerSecond': 'unsettled', // rounds on both sides of 100k
  });
  t.is(verdict(cp({ rssMiB: 77 }))['controlPlane.rssMB.512pods'], 'not met', '77 MiB is 80.7 MB');
  // Another pod count is another figure: the 512-pod targets are then not measured.
  t.is(verdict(cp({ pods: 64 }))['controlPlane.coldStartMs.512pods'], 'not measured');
  t.true(judgeAll([]).filter((j) => j.figure.startsWith('controlPlane.')).every((j) => j.verdict === 'not measured'));
});

test('options: the new phases are opt-in; --quick shortens, explicit options win', (t) => {
  const plain = parseBenchArgs([]);
  t.false(plain.proxy);
  t.false(plain.controlPlane);
  t.is(plain.cpPods, 512);
  const q = parseBenchArgs(['--quick', '--proxy', '--control-plane', '--rounds', '4']);
  t.true(q.proxy && q.controlPlane);
  t.is(q.rounds, 4);
  t.is(q.proxyRounds, 4);
  t.is(q.durationMs, 300);
  t.false(parseBenchArgs(['--proxy', '--spike-inbound']).proxy, 'the spike runs inbound only');
});
