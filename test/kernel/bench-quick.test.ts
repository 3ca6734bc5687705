// `npm run bench -- --quick --json`: finishes in under 3 minutes and writes a complete
// document: every figure the bench promises is there with a finite median and spread, the
// ratios to iptables are there, no phase saw a wrong listener, the profile names the
// sluice programs and the curves have every point. Then the optional phases, --proxy and
// --control-plane, with the others cut short: their figures, ratios and verdicts.
// Timings themselves are not asserted.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Figure } from '../../bench/figures.js';
import type { Profile } from '../../bench/profile.js';
import { TARGETS, type Judged } from '../../bench/targets.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { checkRequirements, findTool, REPO_ROOT, SLOW } from './harness/requirements.js';
import { proxyRequirementsMissing } from '../../bench/proxy.js';
import { builtCliMissing } from '../../bench/lookups.js';

function missing(): string | null {
  const bpf = bpfRequirementsMissing();
  if (bpf) return bpf;
  try {
    checkRequirements({ iptables: true });
  } catch (err) {
    return (err as Error).message;
  }
  return findTool('bpftool') ? null : '`bpftool` (the bench reads its maps and programs with it)';
}

// The 3-minute promise is this host's. Under emulation (test-vm sets SLUICE_TEST_SLOW)
// the bench runs the same fixed-length rounds on a much slower machine, so the limit scales.
const QUICK_LIMIT_MS = 180_000 * SLOW;

/** `scripts/bench.ts ARGS`; its exit code, output and how long it took. */
async function bench(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string; elapsed: number }> {
  const started = Date.now();
  const r = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'bench.ts'), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('exit', (c) => resolve({ code: c, stderr: err, stdout: out }));
  });
  return { ...r, elapsed: Date.now() - started };
}

test.serial('bench --quick writes every figure, each with its spread, within 3 minutes', async (t) => {
  const why = missing();
  if (why) return t.fail(`needs ${why}`);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-quick-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'bench.json');
  const svg = join(dir, 'bench.svg');
  const statsBefore = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const { code, stderr, stdout, elapsed } = await bench(['--quick', '--json', json, '--svg', svg]);
  t.is(code, 0, `bench exited ${code}:\n${stderr.slice(-3000)}`);
  t.true(elapsed < QUICK_LIMIT_MS, `--quick took ${(elapsed / 1000).toFixed(0)} s`);
  t.regex(stdout, /targets \(one run/);

  const doc = JSON.parse(readFileSync(json, 'utf8')) as { figures: Figure[]; targets: Judged[]; profiles: Profile[]; options: { curvePoints: Record<string, number[]> } };
  const byId = new Map(doc.figures.map((f) => [f.id, f]));
  const expected: string[] = [];
  for (const d of ['outbound', 'inbound']) {
    for (const b of ['none', 'iptables', 'ebpf', 'ebpf+accel']) expected.push(`rate.${d}.${b}`, `cpu.${d}.${b}`);
    for (const b of ['iptables', 'ebpf', 'ebpf+accel']) expected.push(`capture.${d}.${b}`);
  }
  for (const b of ['none', 'iptables', 'ebpf']) expected.push(`concurrent.rate.outbound.${b}`, `concurrent.cpu.outbound.${b}`);
  for (const b of ['none', 'iptables', 'ebpf', 'ebpf+accel']) expected.push(`stream.up65536MBps.${b}`, `stream.rttP50Us.${b}`);
  for (const [curve, xs] of Object.entries(doc.options.curvePoints)) {
    for (const x of xs) for (const b of ['none', 'iptables', 'ebpf']) expected.push(`curve.${curve}.cpu.${x}.${b}`);
    expected.push(`curve.${curve}.growth.ebpf`, `curve.${curve}.growth.iptables`);
  }
  t.deepEqual(Object.keys(doc.options.curvePoints).sort(), ['cidrs', 'conns', 'pods']);
  expected.push('accelExtra.outbound', 'memory.mapMiB.ebpf');
  for (const id of expected) {
    const f = byId.get(id);
    if (!f) {
      t.fail(`figure ${id} missing`);
      continue;
    }
    const { median, min, max } = f.value;
    t.true([median, min, max].every(Number.isFinite) && min <= median && median <= max, `${id}: ${JSON.stringify(f.value)}`);
    // Every backend but iptables itself carries its ratio to iptables from the same rounds.
    if (/^(concurrent\.|curve\.\w+\.)?(rate|cpu)\./.test(id) && !id.endsWith('.iptables')) t.true(f.vsIptables !== null && Number.isFinite(f.vsIptables.median), `${id} has no ratio to iptables`);
  }
  // Replies checked: not one connection of any phase reached the wrong listener.
  const mismatches = doc.figures.filter((f) => /(^|\.)mismatches\./.test(f.id));
  t.true(mismatches.length >= 8, 'mismatch counts are reported');
  for (const f of mismatches) t.is(f.value.median, 0, f.id);

  for (const d of ['outbound', 'inbound']) {
    const p = doc.profiles.find((x) => x.direction === d);
    t.truthy(p, `profile ${d}`);
    const names = p!.programs.map((x) => x.name);
    t.true(names.includes('sluice_sockops') && names.includes('sluice_getsockopt'), `${d} profile names ${names.join(', ')}`);
    if (d === 'outbound') t.true(names.includes('sluice_connect4'), 'outbound runs connect4');
    for (const x of p!.programs) t.true(x.callsPerConnection > 0 && Number.isFinite(x.nsPerCall), `${x.name}: ${JSON.stringify(x)}`);
  }
  t.deepEqual(
    doc.targets.map((j) => j.figure),
    TARGETS.map((x) => x.figure),
  );
  // Every target is judged but those of the optional control-plane phase, which did not run.
  const optional = new Set(TARGETS.filter((x) => x.phase).map((x) => x.figure));
  for (const j of doc.targets) t.is(j.verdict === 'not measured', optional.has(j.figure), `${j.what}: ${j.verdict}`);
  t.regex(readFileSync(svg, 'utf8'), /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.is(readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim(), statsBefore, 'the profile restores kernel.bpf_stats_enabled');
});

test.serial('bench --quick --proxy --control-plane: HAProxy figures for every mode, control-plane targets judged', async (t) => {
  const why = missing() ?? proxyRequirementsMissing() ?? builtCliMissing();
  if (why) return t.fail(`needs ${why}`);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-quick-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'bench.json');
  const { code, stderr, stdout, elapsed } = await bench(['--quick', '--proxy', '--control-plane', '--curves', 'none', '--concurrent-clients', '0', '--no-profile', '--throughput-ms', '0', '--json', json]);
  t.is(code, 0, `bench exited ${code}:\n${stderr.slice(-3000)}`);
  t.true(elapsed < QUICK_LIMIT_MS, `took ${(elapsed / 1000).toFixed(0)} s`);
  t.regex(stdout, /through real proxies/);
  const doc = JSON.parse(readFileSync(json, 'utf8')) as { figures: Figure[]; targets: Judged[] };
  const byId = new Map(doc.figures.map((f) => [f.id, f]));
  const finite = (id: string) => {
    const f = byId.get(id);
    t.truthy(f, `figure ${id} missing`);
    if (f) t.true([f.value.median, f.value.min, f.value.max].every(Number.isFinite) && f.value.min <= f.value.median && f.value.median <= f.value.max, `${id}: ${JSON.stringify(f.value)}`);
    return f;
  };
  for (const mode of ['floor', 'iptables', 'ebpf', 'ebpf+accel']) {
    for (const m of ['rate', 'cpu', 'cycleP50', 'cycleP99']) {
      const f = finite(`proxy.${m}.http.${mode}`);
      if (f && mode !== 'iptables') t.true(f.vsIptables !== null && Number.isFinite(f.vsIptables.median), `proxy.${m}.http.${mode} has no ratio to iptables`);
    }
    if (mode !== 'floor') finite(`proxy.capture.http.${mode}`);
    // Every reply named b's app, the original destination and both proxies.
    t.is(byId.get(`proxy.mismatches.http.${mode}`)?.value.median, 0, `proxy ${mode} wrong replies`);
    t.true((byId.get(`proxy.rate.http.${mode}`)?.value.min ?? 0) > 0, `proxy ${mode} answered in every round`);
  }
  for (const id of ['coldStartMs.512pods', 'rssMB.512pods', 'policyChangeP99Ms.512pods', 'lookupsPerSecond']) finite(`controlPlane.${id}`);
  t.is(byId.get('controlPlane.mismatches.lookups')?.value.median, 0, 'every lookup answered the original destination');
  for (const j of doc.targets.filter((x) => x.figure.startsWith('controlPlane.'))) t.not(j.verdict, 'not measured', j.what);
  t.is(doc.targets.filter((x) => x.figure.startsWith('controlPlane.')).length, 4);
});
