// `npm run bench` options: parsed once, with --quick's shorter defaults (options given
// explicitly still win). scripts/bench.ts reads them; --runs passes the argv on to each run.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import type { BackendName, Direction } from './backends.js';
import { CURVE_NAMES, type CurveName } from './curves.js';
import type { CloseMode } from './load.js';

export const USAGE =
  'npm run bench -- [--quick] [--runs N] [--svg PATH] [--curves cidrs,pods,conns|none] [--curve-rounds N] [--concurrent-clients 32|0] [--no-profile] [--proxy] [--proxy-rounds N] [--control-plane] [--cp-pods 512] [--cp-changes N] [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N] [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound] [--throughput-ms N] [--writes 4096,65536] [--ping-size 64]';

export interface BenchOptions {
  quick: boolean;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  runs: number;
  curveRounds: number;
  concurrentClients: number;
  curveNames: CurveName[];
  curvePoints: Record<CurveName, number[]>;
  concurrency: number;
  cpu: number | null;
  close: CloseMode;
  spike: boolean;
  throughputMs: number;
  writes: number[];
  pingSize: number;
  profile: boolean;
  /** Through real proxies: two mesh pods with HAProxy sidecars (bench/proxy.ts). */
  proxy: boolean;
  proxyRounds: number;
  /** The control-plane targets against a running `sluice run` (bench/control-plane-phase.ts). */
  controlPlane: boolean;
  cpPods: number;
  cpChanges: number;
  json: string | undefined;
  svg: string | undefined;
  help: boolean;
  backendNames: BackendName[];
  directions: Direction[];
}

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values: args } = parseArgs({
    args: argv,
    allowNegative: true,
    options: {
      rounds: { type: 'string', default: '5' },
      'duration-ms': { type: 'string', default: '2000' },
      'warmup-ms': { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '1' },
      cpu: { type: 'string' },
      close: { type: 'string', default: 'rst' },
      json: { type: 'string' },
      svg: { type: 'string' },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      curves: { type: 'string' },
      'curve-rounds': { type: 'string' },
      'concurrent-clients': { type: 'string', default: '32' },
      profile: { type: 'boolean', default: true },
      proxy: { type: 'boolean', default: false },
      'proxy-rounds': { type: 'string' },
      'control-plane': { type: 'boolean', default: false },
      'cp-pods': { type: 'string', default: '512' },
      'cp-changes': { type: 'string' },
      'spike-inbound': { type: 'boolean', default: false },
      'throughput-ms': { type: 'string', default: '1000' },
      writes: { type: 'string', default: '4096,65536' },
      'ping-size': { type: 'string', default: '64' },
      help: { type: 'boolean', default: false },
    },
  });
  // --quick: short rounds and few curve points, under 3 minutes; options given win.
  const quick = args.quick;
  const given = (name: string) => argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  const pick = (name: keyof typeof args, quickValue: string) => (quick && !given(name) ? quickValue : (args[name] as string));
  const rounds = int('rounds', pick('rounds', '3'), 1);
  const curveNames = (args.curves ?? CURVE_NAMES.join(',')).split(',').filter((c) => c && c !== 'none') as CurveName[];
  for (const c of curveNames) if (!CURVE_NAMES.includes(c)) throw new Error(`--curves takes ${CURVE_NAMES.join(',')} or none, got ${c}`);
  if (args.close !== 'rst' && args.close !== 'fin') throw new Error(`--close is rst or fin, got ${args.close}`);
  const spike = args['spike-inbound'];
  return {
    quick,
    rounds,
    durationMs: int('duration-ms', pick('duration-ms', '300'), 100),
    warmupMs: int('warmup-ms', pick('warmup-ms', '100'), 0),
    runs: int('runs', args.runs, 1),
    curveRounds: int('curve-rounds', args['curve-rounds'] ?? String(rounds), 1),
    concurrentClients: int('concurrent-clients', args['concurrent-clients'], 0),
    curveNames,
    curvePoints: quick
      ? { cidrs: [1, 100, 10000], pods: [1, 16], conns: [0, 200000] }
      : { cidrs: [1, 10, 100, 1000, 10000], pods: [1, 8, 64, 512], conns: [0, 1000, 10000, 100000, 200000] },
    concurrency: int('concurrency', args.concurrency, 1),
    // Client and server on one CPU: the rate is then CPU time per connection, and the other
    // core absorbs the machine's other work. The last CPU, unless told otherwise.
    cpu: args.cpu === 'none' ? null : args.cpu !== undefined ? int('cpu', args.cpu, 0) : cpus().length - 1,
    close: args.close as CloseMode,
    spike,
    throughputMs: spike ? 0 : int('throughput-ms', pick('throughput-ms', '300'), 0),
    // Write sizes must divide the client's 4 MiB chunk (native/bench_stream.c checks it too).
    writes: args.writes.split(',').map((w) => int('writes', w, 1)),
    pingSize: int('ping-size', args['ping-size'], 1),
    profile: args.profile,
    proxy: args.proxy && !spike,
    proxyRounds: int('proxy-rounds', args['proxy-rounds'] ?? String(rounds), 1),
    controlPlane: args['control-plane'],
    cpPods: int('cp-pods', args['cp-pods'], 1),
    // A p99 needs enough changes to mean something; --quick's 20 is its max, not a p99.
    cpChanges: int('cp-changes', args['cp-changes'] ?? (quick ? '20' : '100'), 1),
    json: args.json,
    svg: args.svg,
    help: args.help,
    backendNames: spike ? ['none', 'iptables', 'ebpf', 'sk_lookup', 'tc_assign'] : ['none', 'iptables', 'ebpf', 'ebpf+accel'],
    directions: spike ? ['inbound'] : ['outbound', 'inbound'],
  };
}
