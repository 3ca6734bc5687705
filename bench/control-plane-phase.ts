// `--control-plane`: the control-plane targets measured against a running
// `sluice run` in the same bench run, so the verdicts cover them. Cold start, RSS and the
// policy-change latencies come from bench/control-plane.ts (controlPlaneFigures: the
// kubernetes source against the API double, N bare pods); lookups from bench/lookups.ts.
// Ids: controlPlane.<coldStartMs|healthyMs|rssMB|policyChangeP50Ms|policyChangeP99Ms>.<N>pods
// (one measurement each per run) and controlPlane.lookupsPerSecond (median over rounds).
import { controlPlaneFigures } from './control-plane.js';
import { spread, type Figure } from './figures.js';
import { builtCliMissing, measureLookups, type LookupRound } from './lookups.js';

export interface ControlPlaneResult {
  pods: number;
  coldStartMs: number;
  healthyMs: number;
  rssMiB: number;
  sidecarChangeMs: { p50: number; p99: number; max: number; n: number };
  lookups: LookupRound[];
}

export interface ControlPlaneOptions {
  pods: number;
  changes: number;
  lookupRounds: number;
  lookupMs: number;
  log(m: string): void;
}

export async function controlPlanePhase(o: ControlPlaneOptions): Promise<ControlPlaneResult> {
  const why = builtCliMissing();
  if (why) throw new Error(`--control-plane needs ${why}`);
  o.log(`control plane: cold start with ${o.pods} pods, then ${o.changes} Sidecar changes`);
  const cold = await controlPlaneFigures({ pods: o.pods, changes: o.changes });
  o.log(`control plane: ${cold.pods} pods captured in ${cold.coldStartMs} ms, RSS ${cold.rssMiB} MiB, change p50 ${cold.sidecarChangeMs.p50} ms p99 ${cold.sidecarChangeMs.p99} ms`);
  const lookups = await measureLookups(o.lookupRounds, o.lookupMs, o.log);
  return { pods: cold.pods, coldStartMs: cold.coldStartMs, healthyMs: cold.healthyMs, rssMiB: cold.rssMiB, sidecarChangeMs: cold.sidecarChangeMs, lookups };
}

/** Ids carry the pod count: the targets are for 512 pods, and another count is another figure. */
const one = (id: string, pods: number, unit: string, x: number): Figure => ({ id: `controlPlane.${id}.${pods}pods`, unit, value: spread([x]), vsIptables: null });

export function controlPlaneFiguresOf(r: ControlPlaneResult): Figure[] {
  const wrong = r.lookups.reduce((a, x) => a + x.wrong, 0);
  return [
    one('coldStartMs', r.pods, 'ms', r.coldStartMs),
    one('healthyMs', r.pods, 'ms', r.healthyMs),
    // The target is in MB (10^6 bytes); VmRSS is in KiB.
    one('rssMB', r.pods, 'MB', (r.rssMiB * 2 ** 20) / 1e6),
    one('policyChangeP50Ms', r.pods, 'ms', r.sidecarChangeMs.p50),
    one('policyChangeP99Ms', r.pods, 'ms', r.sidecarChangeMs.p99),
    { id: 'controlPlane.lookupsPerSecond', unit: 'lookups/s', value: spread(r.lookups.map((x) => x.rate)), vsIptables: null },
    // Summed, as the data plane's: any wrong answer fails the run.
    { id: 'controlPlane.mismatches.lookups', unit: 'count', value: { median: wrong, min: wrong, max: wrong, n: r.lookups.length }, vsIptables: null },
  ];
}

export function formatControlPlane(r: ControlPlaneResult): string {
  const rates = r.lookups.map((x) => x.rate.toFixed(0)).join(', ');
  return [
    `control plane: \`sluice run\` (built CLI), kubernetes source against the API double, ${r.pods} pods on the node`,
    `  cold start to every pod's policy in the kernel map: ${r.coldStartMs} ms (/healthz at ${r.healthyMs} ms); daemon RSS then ${r.rssMiB} MiB`,
    `  Sidecar change to the pod's policy: p50 ${r.sidecarChangeMs.p50} ms, p99 ${r.sidecarChangeMs.p99} ms, max ${r.sidecarChangeMs.max} ms over ${r.sidecarChangeMs.n} changes`,
    `  original-destination lookups, unix socket, pipelined: ${rates} answers/s per round`,
  ].join('\n');
}
