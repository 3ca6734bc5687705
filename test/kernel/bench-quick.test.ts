// `npm run bench -- --quick --json`: finishes in under 3 minutes and writes a complete
// document: every figure the bench promises is there with a finite median and spread, the
// ratios to iptables are there, no phase saw a wrong listener, the profile names the
// sluice programs and the curves have every point. Timings themselves are not asserted.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Figure } from '../../bench/figures.js';
import type { Profile } from '../../bench/profile.js';
import { TARGETS, type Judged } from '../../bench/targets.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { checkRequirements, findTool, REPO_ROOT } from './harness/requirements.js';

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

const QUICK_LIMIT_MS = 180_000;

test('bench --quick writes every figure, each with its spread, within 3 minutes', async (t) => {
  const why = missing();
  if (why) return t.fail(`needs ${why}`);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-quick-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'bench.json');
  const svg = join(dir, 'bench.svg');
  const statsBefore = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const started = Date.now();
  const { code, stderr, stdout } = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'bench.ts'), '--quick', '--json', json, '--svg', svg], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('exit', (c) => resolve({ code: c, stderr: err, stdout: out }));
  });
  const elapsed = Date.now() - started;
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
  for (const j of doc.targets) t.not(j.verdict, 'not measured', j.what);
  t.regex(readFileSync(svg, 'utf8'), /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.is(readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim(), statsBefore, 'the profile restores kernel.bpf_stats_enabled');
});
