// The programs' share of a connection: kernel.bpf_stats_enabled=1 over one eBPF round
// (restored after), then run_time_ns and run_cnt of every sluice program of that install
// from bpftool, before and after. The round runs without warm-up, so every connection it
// made is in its count.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { existsSync, readdirSync } from 'node:fs';
import { pinLayout } from '../src/bpf/loader.js';
import { exec } from '../test/kernel/harness/exec.js';
import { tool } from '../test/kernel/harness/requirements.js';
import type { BenchBackend, Cleanup, Direction } from './backends.js';
import type { LoadResult } from './load.js';

const SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

export interface ProgramProfile {
  name: string;
  id: number;
  runCnt: number;
  runTimeNs: number;
  nsPerCall: number;
  callsPerConnection: number;
  usPerConnection: number;
}

export interface Profile {
  direction: Direction;
  backend: string;
  connections: number;
  /** Client + server (+ pinned kthreads) CPU per connection in that round. */
  cpuUsPerConnection: number;
  programs: ProgramProfile[];
  /** Sum of the programs' µs per connection. */
  programsUsPerConnection: number;
}

interface ProgShow {
  id: number;
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
}

async function programIds(bpffsDir: string): Promise<number[]> {
  const pins = pinLayout(bpffsDir);
  const paths = [
    ...readdirSync(pins.links)
      .filter((n) => n !== 'netns')
      .map((n) => join(pins.links, n)),
    ...(existsSync(pins.netnsLinks) ? readdirSync(pins.netnsLinks).map((n) => join(pins.netnsLinks, n)) : []),
  ];
  const ids = new Set<number>();
  for (const p of paths) {
    const { stdout } = await exec(tool('bpftool'), ['-j', 'link', 'show', 'pinned', p]);
    ids.add((JSON.parse(stdout) as { prog_id: number }).prog_id);
  }
  return [...ids];
}

async function snapshot(ids: number[]): Promise<Map<number, ProgShow>> {
  const out = new Map<number, ProgShow>();
  for (const id of ids) {
    const { stdout } = await exec(tool('bpftool'), ['-j', 'prog', 'show', 'id', String(id)]);
    out.set(id, JSON.parse(stdout) as ProgShow);
  }
  return out;
}

/** Runs `round` with bpf stats on, and splits its cost by program. */
export async function profileRound(b: BenchBackend, direction: Direction, cleanup: Cleanup, round: () => Promise<LoadResult>): Promise<Profile> {
  const ids = await programIds(b.bpf!.bpffsDir);
  const was = readFileSync(SYSCTL, 'utf8').trim();
  const restore = () => writeFileSync(SYSCTL, was);
  cleanup.push('kernel.bpf_stats_enabled', restore);
  let before: Map<number, ProgShow>;
  let after: Map<number, ProgShow>;
  let r: LoadResult;
  writeFileSync(SYSCTL, '1');
  try {
    before = await snapshot(ids);
    r = await round();
    after = await snapshot(ids);
  } finally {
    restore();
  }
  const n = r.connections + r.errors;
  const programs = ids
    .map((id) => {
      const a = after.get(id)!;
      const bf = before.get(id)!;
      const runCnt = (a.run_cnt ?? 0) - (bf.run_cnt ?? 0);
      const runTimeNs = (a.run_time_ns ?? 0) - (bf.run_time_ns ?? 0);
      return { name: a.name ?? `id ${id}`, id, runCnt, runTimeNs, nsPerCall: runCnt > 0 ? runTimeNs / runCnt : 0, callsPerConnection: n > 0 ? runCnt / n : NaN, usPerConnection: n > 0 ? runTimeNs / 1000 / n : NaN };
    })
    .filter((p) => p.runCnt > 0)
    .sort((x, y) => y.usPerConnection - x.usPerConnection);
  return { direction, backend: b.name, connections: n, cpuUsPerConnection: r.cpuUsPerConnection, programs, programsUsPerConnection: programs.reduce((a, p) => a + p.usPerConnection, 0) };
}

export function formatProfile(p: Profile): string {
  const lines = [`profile, ${p.direction} ${p.backend}, one round of ${p.connections} connections with kernel.bpf_stats_enabled=1 (CPU ${p.cpuUsPerConnection.toFixed(1)} µs/conn; programs ${p.programsUsPerConnection.toFixed(2)} µs/conn of it)`];
  lines.push(`  ${'program'.padEnd(22)}${'calls/conn'.padStart(12)}${'ns/call'.padStart(10)}${'µs/conn'.padStart(10)}`);
  for (const x of p.programs) lines.push(`  ${x.name.padEnd(22)}${x.callsPerConnection.toFixed(2).padStart(12)}${x.nsPerCall.toFixed(0).padStart(10)}${x.usPerConnection.toFixed(2).padStart(10)}`);
  return lines.join('\n');
}
