// What each capture keeps in the kernel, reported next to the timings (never asserted):
// for eBPF the maps' and programs' memlock as bpftool reads it from the kernel, for
// iptables the rule count, and for every backend the conntrack entries its pod netns holds
// (REDIRECT needs one per connection; sk_lookup, tc and cgroup hooks need none).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinLayout } from '../src/bpf/loader.js';
import { exec, tryExec } from '../test/kernel/harness/exec.js';
import { tool } from '../test/kernel/harness/requirements.js';
import type { Topology } from '../test/kernel/harness/topology.js';

export interface BpfMapMemory {
  name: string;
  maxEntries: number;
  /** Entries at the time of the report, when known. */
  entries: number | null;
  memlockBytes: number;
}

export interface BpfProgramMemory {
  name: string;
  id: number;
  memlockBytes: number;
  jitedBytes: number;
  xlatedBytes: number;
}

export interface BpfMemory {
  maps: BpfMapMemory[];
  programs: BpfProgramMemory[];
  mapBytes: number;
  programBytes: number;
}

export interface ConntrackMemory {
  /** Entries in the pod netns at the end of the run. */
  entries: number;
  /** The largest count read after any round. */
  peakEntries: number;
  /** Size of one nf_conntrack slab object (/proc/slabinfo), when the slab is visible. */
  objectBytes: number | null;
}

export interface MemoryReport {
  bpf: BpfMemory | null;
  /** `-A` lines in iptables-save and ip6tables-save of the pod netns. */
  iptablesRules: { ipv4: number; ipv6: number } | null;
  conntrack: ConntrackMemory;
}

interface BpftoolMap {
  name?: string;
  max_entries?: number;
  bytes_memlock?: number;
}

interface BpftoolProg {
  id: number;
  name?: string;
  bytes_memlock?: number;
  bytes_jited?: number;
  bytes_xlated?: number;
}

async function bpftool(args: string[], netns?: string): Promise<unknown> {
  const cmd = netns ? [tool('ip'), ['netns', 'exec', netns, tool('bpftool'), '-j', ...args]] : [tool('bpftool'), ['-j', ...args]];
  const { stdout } = await exec(cmd[0] as string, cmd[1] as string[]);
  return JSON.parse(stdout) as unknown;
}

async function programMemory(id: number): Promise<BpfProgramMemory> {
  const p = (await bpftool(['prog', 'show', 'id', String(id)])) as BpftoolProg;
  return { name: p.name ?? '?', id, memlockBytes: p.bytes_memlock ?? 0, jitedBytes: p.bytes_jited ?? 0, xlatedBytes: p.bytes_xlated ?? 0 };
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Every map pinned under `bpffsDir`/maps and every program behind its pinned links. */
export async function sluiceBpfMemory(bpffsDir: string, entries: Map<string, number>): Promise<BpfMemory> {
  const pins = pinLayout(bpffsDir);
  const maps: BpfMapMemory[] = [];
  for (const name of readdirSync(pins.maps).sort()) {
    const m = (await bpftool(['map', 'show', 'pinned', join(pins.maps, name)])) as BpftoolMap;
    maps.push({ name, maxEntries: m.max_entries ?? 0, entries: entries.get(name) ?? null, memlockBytes: m.bytes_memlock ?? 0 });
  }
  const linkPins = [
    ...readdirSync(pins.links)
      .filter((n) => n !== 'netns')
      .map((n) => join(pins.links, n)),
    ...(existsSync(pins.netnsLinks) ? readdirSync(pins.netnsLinks).map((n) => join(pins.netnsLinks, n)) : []),
  ];
  const programs: BpfProgramMemory[] = [];
  for (const p of linkPins) {
    const link = (await bpftool(['link', 'show', 'pinned', p])) as { prog_id: number };
    programs.push(await programMemory(link.prog_id));
  }
  return { maps, programs, mapBytes: sum(maps.map((m) => m.memlockBytes)), programBytes: sum(programs.map((p) => p.memlockBytes)) };
}

/** The tc programs attached inside the pod netns (the spike has no maps). */
export async function tcBpfMemory(topo: Topology): Promise<BpfMemory> {
  // bpftool 7.1 names the program `id` in `net show`; newer versions say `prog_id`.
  const net = (await bpftool(['net', 'show', 'dev', topo.pod.ifname], topo.pod.name)) as { tc?: { id?: number; prog_id?: number }[] }[];
  const ids = net.flatMap((n) => n.tc ?? []).flatMap((t) => {
    const id = t.prog_id ?? t.id;
    return id !== undefined ? [id] : [];
  });
  const programs = await Promise.all(ids.map(programMemory));
  return { maps: [], programs, mapBytes: 0, programBytes: sum(programs.map((p) => p.memlockBytes)) };
}

export async function iptablesRuleCount(topo: Topology): Promise<{ ipv4: number; ipv6: number }> {
  const count = async (cmd: string) => {
    const { stdout } = await exec(tool('ip'), ['netns', 'exec', topo.pod.name, tool(cmd)]);
    return stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
  };
  return { ipv4: await count('iptables-save'), ipv6: await count('ip6tables-save') };
}

/** nf_conntrack_count as the pod netns sees it (0 when conntrack never ran there). */
export async function conntrackEntries(topo: Topology): Promise<number> {
  const r = await tryExec(tool('ip'), ['netns', 'exec', topo.pod.name, 'cat', '/proc/sys/net/netfilter/nf_conntrack_count']);
  return r instanceof Error ? 0 : Number(r.stdout.trim()) || 0;
}

export function conntrackObjectBytes(): number | null {
  try {
    const line = readFileSync('/proc/slabinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('nf_conntrack '));
    const size = line ? Number(line.split(/\s+/)[3]) : NaN;
    return Number.isFinite(size) ? size : null;
  } catch {
    return null;
  }
}
