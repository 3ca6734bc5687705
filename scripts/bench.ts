// `npm run bench`: sluice's eBPF capture against iptables, as ratios measured in one run.
//
//   npm run bench -- [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N]
//                    [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound]
//                    [--throughput-ms N] [--writes 4096,65536] [--ping-size 64]
//
// Every backend (none, iptables, ebpf, ebpf+accel; with --spike-inbound instead sk_lookup
// alone and the tc + bpf_sk_assign spike, inbound only) gets its own private topology and
// proxy stand-in, set up once. Each round measures the connection rate outbound and
// inbound, then the throughput and round trips of one app-to-proxy connection (skipped
// with --throughput-ms 0 and with --spike-inbound). Rounds alternate between backends,
// each round in a new order, and each ratio is the median of per-round ratios.
// Connections are checked (the reply names the listener and the original destination),
// streamed bytes are compared with what was sent, and ebpf+accel's figures count only if
// its sk_msg counters show the bytes went by the redirect; timings are never asserted.
// The phases live in bench/ (run.ts runs them once; runs.ts repeats whole runs).
//
// Needs root, and builds nothing itself: `npm run bench` runs make first.
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, USAGE } from '../bench/options.js';
import { createProgress } from '../bench/progress.js';
import { runOnce } from '../bench/run.js';
import { multiRun } from '../bench/runs.js';

const argv = process.argv.slice(2);
const o = parseBenchArgs(argv);
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}
const ui = createProgress();

if (o.runs > 1) {
  await multiRun(fileURLToPath(import.meta.url), argv, o.runs, { json: o.json, svg: o.svg }, ui.log);
  process.exit(0);
}
const code = await runOnce(o, ui);
if (code !== 130) process.exit(code);
