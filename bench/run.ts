// One bench run in this process: requirements, every backend's private setup, the phases
// (bench/phases.ts), the report, the checks that make a run fail, the picture and the
// JSON document. Everything it creates is undone at the end, on a signal too.
import { writeFileSync } from 'node:fs';
import { loadavg, release } from 'node:os';
import { checkSockmapWakeup, type WakeupReport } from '../src/bpf/probes.js';
import { bpfRequirementsMissing, createCgroup, reapStale, type TestCgroup } from '../test/kernel/bpf-fixture.js';
import { makePolicy } from '../test/kernel/harness/cases.js';
import { checkRequirements, findTool } from '../test/kernel/harness/requirements.js';
import { reapStaleNamespaces } from '../test/kernel/harness/topology.js';
import { Cleanup, setupBackend, spikeObjectMissing, type BackendName, type BenchBackend } from './backends.js';
import { figureMismatches, phaseProblems } from './checks.js';
import { controlPlaneFiguresOf, controlPlanePhase } from './control-plane-phase.js';
import { builtCliMissing } from './lookups.js';
import { runDocument } from './document.js';
import { benchBinaryMissing } from './load.js';
import type { MemoryReport } from './memory.js';
import type { BenchOptions } from './options.js';
import { allFigures } from './output.js';
import { concurrentPhase, curvesPhase, emptyState, mainRounds, profilePhase, type PhaseContext } from './phases.js';
import { printFigures, printMeasurements } from './print.js';
import type { Progress } from './progress.js';
import { proxyPhase, proxyRequirementsMissing } from './proxy.js';
import { proxyFigures, proxyProblems } from './proxy-report.js';
import { renderSvg } from './svg.js';
import { judgeAll } from './targets.js';

function requirements(o: BenchOptions): void {
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
  if (o.spike) {
    if (!findTool('tc')) missing.push('`tc` from iproute2 (the tc spike)');
    const obj = spikeObjectMissing();
    if (obj) missing.push(obj);
  }
  if (o.proxy) {
    const why = proxyRequirementsMissing();
    if (why) missing.push(why);
  }
  if (o.controlPlane) {
    const why = builtCliMissing();
    if (why) missing.push(why);
  }
  if (missing.length) throw new Error(`bench requirements missing:\n${missing.join('\n')}`);
}

/** Runs the bench once; resolves to the exit code (130 after a signal). */
export async function runOnce(o: BenchOptions, ui: Progress): Promise<number> {
  const cleanup = new Cleanup();
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      ui.log(`\n${sig}: removing the bench's namespaces, cgroups and pins`);
      void cleanup.run().then((failures) => {
        for (const f of failures) ui.log(`cleanup: ${f}`);
        process.exit(130);
      });
    });
  }

  const state = emptyState();
  let sockmap: WakeupReport | null = null;
  const memory: Partial<Record<BackendName, MemoryReport>> = {};
  const started = new Date().toISOString();
  const loadBefore = loadavg();
  let exitCode = 0;

  try {
    requirements(o);
    const reaped = [...(await reapStaleNamespaces()), ...reapStale()];
    if (reaped.length) ui.log(`removed leftovers of earlier runs: ${reaped.join(', ')}`);
    if (o.backendNames.includes('ebpf+accel')) {
      // What `sluice run --accelerate` would decide here. The bench switches acceleration on
      // in its own install whatever the answer (as --accelerate-force does) and says so.
      ui.log('running the sockmap wake-up check (sluice doctor)');
      sockmap = await checkSockmapWakeup();
      ui.log(`sockmap check: ${sockmap.verdict} (${sockmap.summary})`);
    }

    const policy = makePolicy();
    const backends: BenchBackend[] = [];
    for (const name of o.backendNames) {
      if (interrupted) break;
      ui.log(`setting up ${name}`);
      backends.push(await setupBackend(name, { cleanup, policy, cpu: o.cpu }));
    }
    const peerCgroup: TestCgroup = createCgroup();
    cleanup.push(`cgroup ${peerCgroup.path}`, () => peerCgroup.destroy());
    const ctx: PhaseContext = { o, backends, peerCgroup, cleanup, ui, interrupted: () => interrupted };

    await mainRounds(ctx, state);
    if (interrupted) throw new Error('interrupted');
    if (o.concurrentClients > 0 && !o.spike) await concurrentPhase(ctx, state);
    if (o.profile) await profilePhase(ctx, state);
    if (!o.spike) await curvesPhase(ctx, state);
    if (o.proxy && !interrupted) state.proxy = await proxyPhase({ rounds: o.proxyRounds, warmupMs: o.warmupMs, durationMs: o.durationMs, close: o.close, cpu: o.cpu, cleanup, ui, interrupted: () => interrupted });
    if (o.controlPlane && !interrupted) state.controlPlane = await controlPlanePhase({ pods: o.cpPods, changes: o.cpChanges, lookupRounds: o.rounds, lookupMs: Math.max(500, o.durationMs / 2), log: ui.log });
    if (interrupted) throw new Error('interrupted');
    ui.clear();

    for (const b of backends) memory[b.name] = await b.memory(state.peakConntrack.get(b.name) ?? 0);

    printMeasurements({ o, started, loadBefore, sockmap, state, memory });
    const figures = [
      ...allFigures({ results: state.results, concurrent: state.concurrent, streams: state.streams, curves: state.curves, memory, profiles: state.profiles }),
      ...(state.proxy ? proxyFigures(state.proxy) : []),
      ...(state.controlPlane ? controlPlaneFiguresOf(state.controlPlane) : []),
    ];
    const judged = judgeAll(figures);
    printFigures({ o, started, loadBefore, sockmap, state, memory, figures, judged });
    if (figureMismatches(figures, ui.log)) exitCode = 1;
    if (o.svg) {
      writeFileSync(o.svg, await renderSvg(figures, `sluice bench ${started.slice(0, 16)}, kernel ${release()}, ${o.quick ? '--quick, ' : ''}${o.rounds} rounds`));
      ui.log(`wrote ${o.svg}`);
    }
    if (phaseProblems(o, state, ui.log)) exitCode = 1;
    if (state.proxy && proxyProblems(state.proxy, ui.log)) exitCode = 1;

    if (o.json) {
      writeFileSync(o.json, `${JSON.stringify(runDocument({ o, started, loadBefore, sockmap, state, memory, figures, judged }), null, 2)}\n`);
      ui.log(`wrote ${o.json}`);
    }
  } catch (err) {
    if (!interrupted) {
      ui.log(`bench failed: ${(err as Error).message}`);
      exitCode = 1;
    }
  } finally {
    const failures = await cleanup.run();
    for (const f of failures) ui.log(`cleanup: ${f}`);
    if (failures.length) exitCode = 1;
  }
  // Interrupted: the signal handler exits 130 once the same cleanup pass is done.
  return interrupted ? 130 : exitCode;
}
