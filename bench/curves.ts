// Growth curves: CPU per captured outbound connection as the work grows, ebpf against
// iptables, with `none` in every round so each point's capture cost is (mode - none) of
// the same round. Rounds interleave the backends in a rotating order at each point.
//   cidrs  N exclusion CIDRs and N excluded ports in the pod's policy (iptables: the rules
//          renderIptables, what `sluice rules` prints, renders for it, in the bench's netns)
//   pods   N - 1 more pod netns on the node, each with its policy (eBPF: applyPolicy, so
//          sluice_pods, sluice_addrs, the sets and an sk_lookup link each; iptables: its
//          rules restored there)
//   conns  N live records in sluice_conns (synthetic keys; the bench's own connections are
//          inserted and deleted among them). iptables has no such table: its side is the
//          same rules in the same rounds, the reference the ebpf side must stay near.
import { randomBytes } from 'node:crypto';
import type { CapturePolicy } from '../src/policy/types.js';
import type { TestCgroup } from '../test/kernel/bpf-fixture.js';
import { makePolicy } from '../test/kernel/harness/cases.js';
import { exec, tryExec } from '../test/kernel/harness/exec.js';
import { tool } from '../test/kernel/harness/requirements.js';
import { renderIptables } from '../src/policy/iptables.js';
import type { BackendName, BenchBackend, Cleanup, Direction } from './backends.js';
import { runLoad, type CloseMode, type LoadResult } from './load.js';

export type CurveName = 'cidrs' | 'pods' | 'conns';
export const CURVE_NAMES: CurveName[] = ['cidrs', 'pods', 'conns'];

export interface RoundOptions {
  warmupMs: number;
  durationMs: number;
  close: CloseMode;
  cpu: number | null;
  concurrency: number;
  peerCgroup: TestCgroup;
}

/** One load round of backend `b` in direction `d`. */
export function loadRound(b: BenchBackend, d: Direction, o: RoundOptions): Promise<LoadResult> {
  const t = b.target(d);
  return runLoad(t.netns === 'pod' ? b.podCgroup : o.peerCgroup, {
    netnsPath: t.netns === 'pod' ? b.topo.pod.path : b.topo.peer.path,
    dst: t.dst,
    expect: t.expect,
    ...(t.uid !== undefined ? { uid: t.uid } : {}),
    concurrency: o.concurrency,
    warmupMs: o.warmupMs,
    durationMs: o.durationMs,
    close: o.close,
    cpu: o.cpu,
    serverPid: b.serverPid,
  });
}

/** A policy with `n` exclusion CIDRs (/32s in 100.64/10, nowhere the bench sends) and `n` excluded ports (20000 up). */
export function exclusionPolicy(n: number): CapturePolicy {
  const cidrs = Array.from({ length: n }, (_, i) => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
  const ports = Array.from({ length: n }, (_, i) => 20000 + i);
  return makePolicy({ excludeOutboundIPRanges: cidrs, excludeOutboundPorts: ports });
}

export interface CurvePoint {
  x: number;
  rounds: Partial<Record<BackendName, LoadResult[]>>;
}

export interface CurveContext {
  backends: BenchBackend[];
  cleanup: Cleanup;
  round: RoundOptions;
  rounds: number;
  progress(text: string): void;
}

const ip = (...args: string[]) => exec(tool('ip'), args);

/** Extra pod netns shared by both captures, created as the pods curve grows. */
class ExtraPods {
  private readonly names: string[] = [];
  private readonly cookies: bigint[] = [];
  private dp: NonNullable<BenchBackend['bpf']>['dp'] | null = null;
  constructor(cleanup: Cleanup) {
    cleanup.push('extra pod netns', () => this.destroy());
  }

  async growTo(n: number, ebpf: BenchBackend, iptablesOn: boolean): Promise<void> {
    while (this.names.length < n) {
      const i = this.names.length;
      const name = `sluice-test-${process.pid}-xpod${i}`;
      await ip('netns', 'add', name);
      this.names.push(name);
      const path = `/var/run/netns/${name}`;
      const podIPs = [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`];
      const policy = makePolicy({ podIPs, pod: { namespace: 'bench', name: `xpod${i}` } });
      const dp = (this.dp = ebpf.bpf!.dp);
      const cookie = dp.cookieOf(path);
      dp.applyPolicy(cookie, policy);
      this.cookies.push(cookie);
      if (iptablesOn) {
        const { ipv4, ipv6 } = renderIptables(policy);
        await exec(tool('ip'), ['netns', 'exec', name, tool('iptables-restore')], { input: ipv4 });
        await exec(tool('ip'), ['netns', 'exec', name, tool('ip6tables-restore')], { input: ipv6 });
      }
    }
  }

  async destroy(): Promise<void> {
    // Policy, link pin and entries out first, so the memory report sees one pod again.
    for (const c of this.cookies.splice(0)) this.dp?.removePolicy(c);
    for (const name of this.names.splice(0)) await tryExec(tool('ip'), ['netns', 'delete', name]);
  }
}

/** Synthetic sluice_conns records: random keys of the map's key size, zero values. */
class SyntheticConns {
  private readonly keys: Buffer[] = [];
  constructor(private readonly b: BenchBackend) {}

  fillTo(n: number): void {
    const maps = this.b.bpf!.dp.maps;
    const info = maps.info('sluice_conns');
    const value = Buffer.alloc(info.valueSize);
    while (this.keys.length < n) {
      const key = randomBytes(info.keySize);
      maps.update('sluice_conns', key, value);
      this.keys.push(key);
    }
  }

  clear(): void {
    const maps = this.b.bpf!.dp.maps;
    for (const k of this.keys.splice(0)) maps.delete('sluice_conns', k);
  }
}

async function measurePoint(ctx: CurveContext, label: string): Promise<CurvePoint['rounds']> {
  const out: CurvePoint['rounds'] = {};
  const bs = ctx.backends;
  for (let r = 0; r < ctx.rounds; r++) {
    const order = bs.map((_, i) => bs[(i + r) % bs.length]!);
    for (const b of order) {
      ctx.progress(`${label} round ${r + 1}/${ctx.rounds} ${b.name}`);
      (out[b.name] ??= []).push(await loadRound(b, 'outbound', ctx.round));
    }
  }
  return out;
}

/** Runs one curve over `xs`; leaves the backends' policies and maps as it found them. */
export async function runCurve(name: CurveName, xs: number[], ctx: CurveContext): Promise<CurvePoint[]> {
  const ebpf = ctx.backends.find((b) => b.name === 'ebpf')!;
  const ipt = ctx.backends.find((b) => b.name === 'iptables')!;
  const points: CurvePoint[] = [];
  const base = makePolicy();
  if (name === 'cidrs') {
    try {
      for (const x of xs) {
        ctx.progress(`curve cidrs: loading ${x} CIDRs + ${x} ports`);
        const p = exclusionPolicy(x);
        await ipt.setPolicy!(p);
        await ebpf.setPolicy!(p);
        points.push({ x, rounds: await measurePoint(ctx, `curve cidrs ${x}`) });
      }
    } finally {
      await ipt.setPolicy!(base);
      await ebpf.setPolicy!(base);
    }
  } else if (name === 'pods') {
    const extra = new ExtraPods(ctx.cleanup);
    try {
      for (const x of xs) {
        ctx.progress(`curve pods: creating ${x - 1} more pod netns`);
        await extra.growTo(x - 1, ebpf, true);
        points.push({ x, rounds: await measurePoint(ctx, `curve pods ${x}`) });
      }
    } finally {
      await extra.destroy();
    }
  } else {
    const conns = new SyntheticConns(ebpf);
    try {
      for (const x of xs) {
        ctx.progress(`curve conns: filling sluice_conns to ${x}`);
        conns.fillTo(x);
        points.push({ x, rounds: await measurePoint(ctx, `curve conns ${x}`) });
      }
    } finally {
      conns.clear();
    }
  }
  return points;
}
