// The stdout report of one run: header, rate tables, streams, memory, concurrency,
// profile, curves and the targets, in that order.
import { execFileSync } from 'node:child_process';
import { cpus, release } from 'node:os';
import { ADDRESSES } from '../test/kernel/harness/topology.js';
import { findTool } from '../test/kernel/harness/requirements.js';
import { APP_PORT, APP_UID, DIRECT_STREAM_PORT, REMOTE_PORT, REMOTE_STREAM_PORT, type Direction } from './backends.js';
import type { RunOutput } from './document.js';
import type { BenchOptions } from './options.js';
import { formatConcurrent, formatCurves } from './output.js';
import { formatProfile } from './profile.js';
import { formatControlPlane } from './control-plane-phase.js';
import { formatProxy } from './proxy-report.js';
import { formatMemory, formatStreams, formatTable } from './report.js';
import { formatTargets } from './targets.js';

function titleOf(o: BenchOptions, d: Direction): string {
  const common = `${o.rounds} rounds x ${(o.durationMs / 1000).toFixed(1)} s, concurrency ${o.concurrency}, ${o.cpu === null ? 'unpinned' : `client+server on CPU ${o.cpu}`}, close ${o.close}`;
  return d === 'outbound'
    ? `outbound: app (uid ${APP_UID}) in pod connects to ${ADDRESSES.remote4}:${REMOTE_PORT}, captured to the 15001 listener, which reads SO_ORIGINAL_DST (${common})`
    : `inbound: client in peer connects to ${ADDRESSES.pod4}:${APP_PORT}, steered to the 15006 listener (${common})`;
}


/** Up to the memory table: what comes before the figure list is assembled. */
export function printMeasurements(p: Omit<RunOutput, 'figures' | 'judged'>): void {
  const { o, sockmap, state: s } = p;
  console.log(`\nsluice bench, ${p.started}, kernel ${release()}, ${cpus().length} CPUs, load average ${p.loadBefore.map((x) => x.toFixed(2)).join(' ')} at start`);
  console.log(`iptables: ${execFileSync(findTool('iptables')!, ['-V'], { encoding: 'utf8' }).trim()}; figures are medians over rounds, ratios medians of per-round ratios`);
  console.log(`CPU figures: time the client and the server ran${o.cpu === null ? '' : `, plus CPU ${o.cpu}'s kernel threads (ksoftirqd/${o.cpu}, kworker/${o.cpu}:*)`} (/proc/PID/schedstat)\n`);
  if (sockmap) {
    console.log(`sockmap wake-up check: ${sockmap.verdict} (${sockmap.summary})`);
    console.log(
      sockmap.verdict === 'ok'
        ? 'ebpf+accel: acceleration switched on in its private install, as `sluice run --accelerate` would allow here\n'
        : 'ebpf+accel: `sluice run --accelerate` refuses on this kernel; the bench FORCES acceleration on in its private install (as --accelerate-force) to measure it\n',
    );
  }
  for (const d of o.directions) {
    console.log(formatTable(titleOf(o, d), s.results[d] ?? {}));
    for (const [name, a] of Object.entries(s.rateAccel[d] ?? {})) {
      if (name === 'ebpf+accel' || a.enrolled + a.redirected > 0) console.log(`  ${name} sk_msg counters over these rounds (warm-up included): ${a.enrolled} sockets enrolled, ${a.redirected} messages (${a.redirectedBytes} bytes) redirected, ${a.peerMissing} without an enrolled peer`);
    }
    console.log('');
  }
  if (o.throughputMs > 0) {
    const title = `throughput: one connection, app (uid ${APP_UID}) in pod to ${ADDRESSES.remote4}:${REMOTE_STREAM_PORT} captured to the 15001 listener (none: straight to the stand-in's ${DIRECT_STREAM_PORT}); up = app writes, down = proxy writes; ${o.writes.join(' and ')} B writes, ${(o.throughputMs / 1000).toFixed(1)} s each after ${o.warmupMs} ms warm-up, TCP_NODELAY, every byte checked; ${o.cpu === null ? 'unpinned' : `client+server on CPU ${o.cpu}`}`;
    console.log(`${formatStreams(title, s.streams)}\n`);
  }
  console.log(formatMemory(p.memory));
}

/** After the figure list: concurrency, profile, curves, targets. */
export function printFigures(p: RunOutput): void {
  const { o, state: s, figures } = p;
  console.log('');
  if (o.concurrentClients > 0 && s.concurrent.outbound) console.log(`${formatConcurrent(figures, `outbound, ${o.concurrentClients} connections in flight from one epoll client, client and stand-in unpinned (both CPUs); median [min..max] over rounds, ratio to iptables per round`)}\n`);
  for (const x of s.profiles) console.log(`${formatProfile(x)}\n`);
  if (Object.keys(s.curves).length) console.log(formatCurves(figures, s.curves));
  if (s.proxy) console.log(`${formatProxy(figures, s.proxy, `through real proxies: pod a's app (uid 1000) sends HTTP requests to pod b's app (10.1.0.3:8080), one per connection, through a's HAProxy (15001) and b's (15006), uid/gid 1337; floor: the client addresses its proxy, whose upstreams are fixed; ${o.proxyRounds} rounds x ${(o.durationMs / 1000).toFixed(1)} s, ${o.cpu === null ? 'unpinned' : `every mesh process on CPU ${o.cpu}`}; CPU = the mesh cgroup's cpu.stat${o.cpu === null ? '' : ' + the CPU\'s kthreads'}; median [min..max] over rounds, ratio to iptables per round`)}\n`);
  if (s.controlPlane) console.log(`${formatControlPlane(s.controlPlane)}\n`);
  console.log(`${formatTargets(p.judged, `one run, interval: lowest to highest of ${o.rounds} rounds`)}\n`);
}
