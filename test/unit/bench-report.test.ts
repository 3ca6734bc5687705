// The bench's throughput report on made-up runs: which figures come out, how ratios pair
// rounds, and that acceleration figures the redirect did not produce are marked. No
// timing is measured here.
import test from 'ava';
import type { StreamResult } from '../../bench/load.js';
import { accelDelta, formatStreams, redirectedShare, summarizeStreams, type StreamRun } from '../../bench/report.js';

/** A run that moved `mbps` MB/s in every phase and spent `usPerMB` µs of CPU per MB. */
function run(mbps: number, usPerMB: number, rttUs: number, redirectedBytes: number | null): StreamRun {
  const phase = (write: number) => ({ write, bytes: mbps * 1e6, seconds: 1, cpuNs: usPerMB * mbps * 1000, kthreadNs: 0, bad: -1 });
  const result: StreamResult = {
    reply: '15001 10.2.0.5:81',
    mismatch: false,
    error: '',
    bytesSent: 1000,
    bytesReceived: 1000,
    up: [phase(4096), phase(65536)],
    down: [phase(4096), phase(65536)],
    ping: { size: 64, roundTrips: 1000, seconds: 1, cpuNs: 1000 * rttUs * 1000, kthreadNs: 0, bad: -1, us: { p50: rttUs, p99: 2 * rttUs, mean: rttUs } },
  };
  const accel = redirectedBytes === null ? null : { ...accelDelta({}, {}), redirectedBytes };
  return { result, accel };
}

test('figures are medians over rounds and ratios pair the rounds with iptables', (t) => {
  const { summaries, ratios } = summarizeStreams({
    iptables: [run(1000, 800, 8, null), run(500, 800, 8, null), run(1000, 800, 8, null)],
    ebpf: [run(2000, 400, 6, 0), run(1000, 400, 6, 0), run(1500, 400, 6, 0)],
  });
  t.is(summaries.ebpf!.up4096MBps, 1500);
  t.is(summaries.ebpf!.up65536CpuUsPerMB, 400);
  t.is(summaries.ebpf!.rttP99Us, 12);
  t.is(summaries.ebpf!.redirectedShare, 0);
  t.is(summaries.iptables!.redirectedShare, null, 'no data plane, no share');
  // Per round: 2, 2, 1.5; the median is 2 (unpaired medians would give 1.5).
  t.is(ratios.ebpf!.up4096MBps, 2);
  t.is(ratios.ebpf!.cpuUsPerRoundTrip, 0.75);
});

test('the share of bytes that went through the redirect counts both directions', (t) => {
  t.is(redirectedShare([run(1, 1, 1, 2000)]), 1);
  t.is(redirectedShare([run(1, 1, 1, 500), run(1, 1, 1, 1500)]), 0.5);
  t.is(redirectedShare([run(1, 1, 1, null)]), null);
});

test('ebpf+accel figures that did not go through sk_msg are marked in every table', (t) => {
  const out = formatStreams('title', { iptables: [run(1000, 800, 8, null)], 'ebpf+accel': [run(2000, 400, 4, 10)] });
  t.is(out.split('\n').filter((l) => l.includes('ebpf+accel (NOT via sk_msg)')).length, 3);
  const fine = formatStreams('title', { iptables: [run(1000, 800, 8, null)], 'ebpf+accel': [run(2000, 400, 4, 2000)] });
  t.false(fine.includes('NOT via sk_msg'));
  t.regex(fine, /ebpf\+accel\s+2\.00x/);
});
