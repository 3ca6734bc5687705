// `npm run bench`: sluice's eBPF capture against iptables, as ratios measured in one run.
//
//   npm run bench -- [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N]
//                    [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound]
//
// Every backend (none, iptables, ebpf; with --spike-inbound also sk_lookup alone and the
// tc + bpf_sk_assign spike, inbound only) gets its own private topology and proxy
// stand-in, set up once. Rounds alternate between backends, each round in a new order,
// and each ratio is the median of per-round ratios. Connections are checked (the reply
// names the listener and the original destination), timings never are.
//
// Needs root, and builds nothing itself: `npm run bench` runs make first.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { parseArgs } from 'node:util';
import { bpfRequirementsMissing, createCgroup, reapStale, type TestCgroup } from '../test/kernel/bpf-fixture.js';
import { makePolicy } from '../test/kernel/harness/cases.js';
import { checkRequirements, findTool } from '../test/kernel/harness/requirements.js';
import { reapStaleNamespaces } from '../test/kernel/harness/topology.js';
import { APP_PORT, APP_UID, Cleanup, REMOTE_PORT, setupBackend, spikeObjectMissing, type BackendName, type BenchBackend, type Direction } from '../bench/backends.js';
import { benchBinaryMissing, runLoad, type CloseMode, type LoadResult } from '../bench/load.js';
import type { MemoryReport } from '../bench/memory.js';
import { captureCpuUs, formatMemory, formatTable, pairedRatios, summarize, type Results } from '../bench/report.js';
import { ADDRESSES } from '../test/kernel/harness/topology.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'duration-ms': { type: 'string', default: '2000' },
    'warmup-ms': { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '1' },
    cpu: { type: 'string' },
    close: { type: 'string', default: 'rst' },
    json: { type: 'string' },
    'spike-inbound': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log('npm run bench -- [--rounds N] [--duration-ms N] [--warmup-ms N] [--concurrency N] [--cpu N|none] [--close rst|fin] [--json PATH] [--spike-inbound]');
  process.exit(0);
}

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

const rounds = int('rounds', args.rounds, 1);
const durationMs = int('duration-ms', args['duration-ms'], 100);
const warmupMs = int('warmup-ms', args['warmup-ms'], 0);
const concurrency = int('concurrency', args.concurrency, 1);
// Client and server on one CPU: the rate is then CPU time per connection, and the other
// core absorbs the machine's other work. The last CPU, unless told otherwise.
const cpu = args.cpu === 'none' ? null : args.cpu !== undefined ? int('cpu', args.cpu, 0) : cpus().length - 1;
if (args.close !== 'rst' && args.close !== 'fin') throw new Error(`--close is rst or fin, got ${args.close}`);
const close = args.close as CloseMode;
const spike = args['spike-inbound'];

const backendNames: BackendName[] = spike ? ['none', 'iptables', 'ebpf', 'sk_lookup', 'tc_assign'] : ['none', 'iptables', 'ebpf'];
const directions: Direction[] = spike ? ['inbound'] : ['outbound', 'inbound'];

function requirements(): void {
  const missing: string[] = [];
  const bpf = bpfRequirementsMissing();
  if (bpf) missing.push(bpf);
  try {
    checkRequirements({ iptables: true });
  } catch (err) {
    missing.push((err as Error).message);
  }
  const bin = benchBinaryMissing();
  if (bin) missing.push(bin);
  if (!findTool('bpftool')) missing.push('`bpftool` (memory figures of the BPF maps and programs)');
  if (spike) {
    if (!findTool('tc')) missing.push('`tc` from iproute2 (the tc spike)');
    const obj = spikeObjectMissing();
    if (obj) missing.push(obj);
  }
  if (missing.length) throw new Error(`bench requirements missing:\n${missing.join('\n')}`);
}

const log = (m: string) => process.stderr.write(`${m}\n`);

const cleanup = new Cleanup();
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${sig}: removing the bench's namespaces, cgroups and pins`);
    void cleanup.run().then((failures) => {
      for (const f of failures) log(`cleanup: ${f}`);
      process.exit(130);
    });
  });
}

function titleOf(d: Direction): string {
  const common = `${rounds} rounds x ${(durationMs / 1000).toFixed(1)} s, concurrency ${concurrency}, ${cpu === null ? 'unpinned' : `client+server on CPU ${cpu}`}, close ${close}`;
  return d === 'outbound'
    ? `outbound: app (uid ${APP_UID}) in pod connects to ${ADDRESSES.remote4}:${REMOTE_PORT}, captured to the 15001 listener, which reads SO_ORIGINAL_DST (${common})`
    : `inbound: client in peer connects to ${ADDRESSES.pod4}:${APP_PORT}, steered to the 15006 listener (${common})`;
}

const results: Results = {};
const memory: Partial<Record<BackendName, MemoryReport>> = {};
const started = new Date().toISOString();
const loadBefore = loadavg();
let exitCode = 0;

try {
  requirements();
  const reaped = [...(await reapStaleNamespaces()), ...reapStale()];
  if (reaped.length) log(`removed leftovers of earlier runs: ${reaped.join(', ')}`);

  const policy = makePolicy();
  const backends: BenchBackend[] = [];
  for (const name of backendNames) {
    if (interrupted) break;
    log(`setting up ${name}`);
    backends.push(await setupBackend(name, { cleanup, policy, cpu }));
  }
  // Inbound clients play other machines: a plain cgroup, no capture programs.
  const peerCgroup: TestCgroup = createCgroup();
  cleanup.push(`cgroup ${peerCgroup.path}`, () => peerCgroup.destroy());
  const peakConntrack = new Map<BackendName, number>();

  for (let round = 0; round < rounds && !interrupted; round++) {
    for (const d of directions) {
      const these = backends.filter((b) => b.directions.includes(d));
      // A rotating order, so no backend always runs first, right after the other direction.
      const order = these.map((_, i) => these[(i + round) % these.length]!);
      for (const b of order) {
        if (interrupted) break;
        const t = b.target(d);
        const r: LoadResult = await runLoad(t.netns === 'pod' ? b.podCgroup : peerCgroup, {
          netnsPath: t.netns === 'pod' ? b.topo.pod.path : b.topo.peer.path,
          dst: t.dst,
          expect: t.expect,
          ...(t.uid !== undefined ? { uid: t.uid } : {}),
          concurrency,
          warmupMs,
          durationMs,
          close,
          cpu,
          serverPid: b.serverPid,
        });
        ((results[d] ??= {})[b.name] ??= []).push(r);
        peakConntrack.set(b.name, Math.max(peakConntrack.get(b.name) ?? 0, await b.conntrack()));
        const problems = r.errors + r.mismatches > 0 ? `  errors ${r.errors}, mismatches ${r.mismatches} (first reply "${r.firstReply}", first error "${r.firstError}")` : '';
        log(`round ${round + 1}/${rounds} ${d.padEnd(8)} ${b.name.padEnd(10)} ${r.rate.toFixed(0).padStart(7)} conn/s  connect p50 ${r.connectUs.p50.toFixed(1)} µs  CPU ${r.cpuUsPerConnection.toFixed(1)} µs/conn${problems}`);
      }
    }
  }
  if (interrupted) throw new Error('interrupted');

  for (const b of backends) memory[b.name] = await b.memory(peakConntrack.get(b.name) ?? 0);

  console.log(`\nsluice bench, ${started}, kernel ${release()}, ${cpus().length} CPUs, load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')} at start`);
  console.log(`iptables: ${execFileSync(findTool('iptables')!, ['-V'], { encoding: 'utf8' }).trim()}; figures are medians over rounds, ratios medians of per-round ratios\n`);
  for (const d of directions) console.log(`${formatTable(titleOf(d), results[d] ?? {})}\n`);
  console.log(formatMemory(memory));

  for (const d of directions) {
    for (const [name, rs] of Object.entries(results[d] ?? {})) {
      const s = summarize(rs);
      if (s.mismatches > 0 || s.connections === 0) {
        exitCode = 1;
        log(`${d} ${name}: ${s.mismatches} connection(s) reached the wrong listener or saw the wrong original destination; its figures do not measure that capture`);
      } else if (s.errors > 0) {
        log(`${d} ${name}: ${s.errors} connection(s) failed (see the rounds above)`);
      }
    }
  }

  if (args.json) {
    const ratios: Record<string, Record<string, unknown>> = {};
    for (const d of directions) {
      const base = results[d]?.iptables;
      ratios[d] = Object.fromEntries(Object.entries(results[d] ?? {}).flatMap(([n, rs]) => (base && n !== 'iptables' ? [[n, pairedRatios(rs, base)]] : [])));
    }
    const summaries = Object.fromEntries(
      directions.map((d) => {
        const none = results[d]?.none;
        return [d, Object.fromEntries(Object.entries(results[d] ?? {}).map(([n, rs]) => [n, { ...summarize(rs), captureCpuUs: none ? captureCpuUs(rs, none) : null }]))];
      }),
    );
    const doc = {
      started,
      command: process.argv.slice(2),
      kernel: release(),
      cpus: cpus().length,
      loadAverage: { start: loadBefore, end: loadavg() },
      options: { rounds, durationMs, warmupMs, concurrency, cpu, close, spikeInbound: spike },
      summaries,
      ratiosVsIptables: ratios,
      rounds: results,
      memory,
    };
    writeFileSync(args.json, `${JSON.stringify(doc, null, 2)}\n`);
    log(`wrote ${args.json}`);
  }
} catch (err) {
  if (!interrupted) {
    log(`bench failed: ${(err as Error).message}`);
    exitCode = 1;
  }
} finally {
  const failures = await cleanup.run();
  for (const f of failures) log(`cleanup: ${f}`);
  if (failures.length) exitCode = 1;
}
if (!interrupted) process.exit(exitCode);
