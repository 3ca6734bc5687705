// What the kernel holds, as bpftool and ls show it to an operator.
import type { RunResult } from '../bpf-fixture.js';
import { exec, ExecError, tryExec } from './exec.js';
import { tool } from './requirements.js';

/** `bpftool -j ARGS` parsed; [] for empty output. */
export async function bpftool<T = unknown>(args: string[]): Promise<T> {
  const { stdout } = await exec(tool('bpftool'), ['-j', ...args]);
  return JSON.parse(stdout.trim() || '[]') as T;
}

export interface CgroupProg {
  id: number;
  attach_type: string;
  name: string;
}

/** Programs attached to one cgroup directory (not the effective, inherited ones). */
export function cgroupPrograms(dir: string): Promise<CgroupProg[]> {
  return bpftool<CgroupProg[]>(['cgroup', 'show', dir]);
}

export interface LinkInfo {
  id: number;
  type: string;
  prog_id: number;
  netns_ino?: number;
  attach_type?: string;
}

export async function programIds(): Promise<Set<number>> {
  return new Set((await bpftool<{ id: number }[]>(['prog', 'show'])).map((p) => p.id));
}

export async function mapIds(): Promise<Set<number>> {
  return new Set((await bpftool<{ id: number }[]>(['map', 'show'])).map((p) => p.id));
}

export async function links(): Promise<LinkInfo[]> {
  return bpftool<LinkInfo[]>(['link', 'show']);
}

/** `ls -A DIR`: what an operator sees in the pin directory. */
export async function lsPinDir(dir: string): Promise<RunResult> {
  const r = await tryExec('ls', ['-A', dir]);
  return r instanceof Error ? { code: (r as ExecError).status, stdout: '', stderr: r.message } : { code: 0, stdout: r.stdout, stderr: r.stderr };
}
