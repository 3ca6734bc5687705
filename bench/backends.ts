// The captures the bench compares. Each backend gets its own pod/peer topology, its own
// cgroup and its own proxy stand-in (listening on 15001 and 15006, and the app's 8080),
// all set up once and kept for the whole run, so rounds can alternate between backends.
//
//   none       no capture: the client connects straight to the listener a capture would
//              pick (pod IP:15001 / :15006): the kernel path with nothing added
//   iptables   the rules of src/policy/iptables.ts, iptables-restore'd in the pod netns
//   ebpf       sluice's data plane: cgroup programs on the pod cgroup, sk_lookup on the netns
//   ebpf+accel the same with acceleration switched on (sockops enrols the app/proxy pair
//              in sluice_accel, sk_msg redirects their messages), forced on whatever the
//              sockmap check says: this is a measurement
//   sk_lookup  spike: sk_lookup alone (programs attached to an empty cgroup, the pod's
//              listeners adopted from /proc), for steering without the cgroup hooks
//   tc_assign  spike: bpf/spike/tc_assign.bpf.c at tc ingress of the pod's veth
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfDataPlane } from '../src/bpf/dataplane.js';
import type { CapturePolicy } from '../src/policy/types.js';
import { createBpffsDir, createCgroup, type TestCgroup } from '../test/kernel/bpf-fixture.js';
import { iptablesBackend } from '../test/kernel/harness/backend.js';
import { exec } from '../test/kernel/harness/exec.js';
import { REPO_ROOT, tool } from '../test/kernel/harness/requirements.js';
import { ADDRESSES, createTopology, type Topology } from '../test/kernel/harness/topology.js';
import { startBenchServer } from './load.js';
import { conntrackEntries, conntrackObjectBytes, iptablesRuleCount, sluiceBpfMemory, tcBpfMemory, type BpfMemory, type MemoryReport } from './memory.js';

export const TC_SPIKE_OBJECT = join(REPO_ROOT, 'bpf', 'build', 'spike', 'tc_assign.bpf.o');
/** The app's port that inbound clients connect to; bpf/spike/tc_assign.bpf.c captures it by default. */
export const APP_PORT = 8080;

export const BACKEND_NAMES = ['none', 'iptables', 'ebpf', 'ebpf+accel', 'sk_lookup', 'tc_assign'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type Direction = 'outbound' | 'inbound';

/** The app's uid: anything but the proxy's 1337. */
export const APP_UID = 1000;
/** A remote port no one listens on: an outbound connection that is not captured fails. */
export const REMOTE_PORT = 80;
/**
 * Stream connections: the app asks for REMOTE_STREAM_PORT (captured to 15001 like any
 * other), or, without capture, connects straight to the proxy stand-in's DIRECT_STREAM_PORT.
 * The stand-in picks the stream protocol by the original destination port, as a proxy
 * routes by it.
 */
export const REMOTE_STREAM_PORT = 81;
export const DIRECT_STREAM_PORT = 15081;

export interface Target {
  /** Where the client runs: in the pod (the app) or in the peer (another machine). */
  netns: 'pod' | 'peer';
  dst: string;
  /** The reply the proxy stand-in must give: its port and the original destination. */
  expect: string;
  uid?: number;
}

export interface BenchBackend {
  name: BackendName;
  directions: Direction[];
  topo: Topology;
  /** The pod's processes (the proxy stand-in, the outbound app) run in this cgroup. */
  podCgroup: TestCgroup;
  /** The proxy stand-in's pid: its CPU time counts in the cost per connection. */
  serverPid: number;
  target(direction: Direction): Target;
  /** The app's long-lived connection to its proxy (outbound, port 15001 when captured). */
  streamTarget: Target;
  /** The data plane's counters (sluice_counters), for the eBPF backends. */
  counters: (() => Record<string, bigint>) | null;
  /** Conntrack entries in the pod netns now; the bench samples it after every round. */
  conntrack(): Promise<number>;
  memory(peakConntrack: number): Promise<MemoryReport>;
  /** Gives the pod another policy (iptables: re-restored rules; eBPF: applyPolicy); not for none and the spikes. */
  setPolicy: ((policy: CapturePolicy) => Promise<void>) | null;
  /** The eBPF backends' data plane and pin dir (growth curves fill its maps, the profile reads its programs). */
  bpf: { dp: BpfDataPlane; bpffsDir: string } | null;
}

/**
 * Undo steps, run last-in first-out; each runs even when an earlier one throws. run() may
 * be called from a signal handler and from a finally at once: both get the same pass.
 */
export class Cleanup {
  private readonly steps: { what: string; fn: () => unknown }[] = [];
  private running: Promise<string[]> | null = null;

  push(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failures: string[] = [];
      while (this.steps.length > 0) {
        const { what, fn } = this.steps.pop()!;
        try {
          await fn();
        } catch (err) {
          failures.push(`${what}: ${(err as Error).message}`);
        }
      }
      this.running = null;
      return failures;
    })();
    return this.running;
  }
}

export interface SetupContext {
  cleanup: Cleanup;
  policy: CapturePolicy;
  cpu: number | null;
}

const A = ADDRESSES;

function targets(policy: CapturePolicy, captured: boolean): (d: Direction) => Target {
  const { outbound: pOut, inbound: pIn } = policy.ports;
  return (d) => {
    if (d === 'outbound') {
      const dst = captured ? `${A.remote4}:${REMOTE_PORT}` : `${A.pod4}:${pOut}`;
      return { netns: 'pod', dst, expect: `${pOut} ${dst}`, uid: APP_UID };
    }
    const dst = captured ? `${A.pod4}:${APP_PORT}` : `${A.pod4}:${pIn}`;
    return { netns: 'peer', dst, expect: `${pIn} ${dst}` };
  };
}

function streamTarget(policy: CapturePolicy, captured: boolean): Target {
  const dst = captured ? `${A.remote4}:${REMOTE_STREAM_PORT}` : `${A.pod4}:${DIRECT_STREAM_PORT}`;
  return { netns: 'pod', dst, expect: `${captured ? policy.ports.outbound : DIRECT_STREAM_PORT} ${dst}`, uid: APP_UID };
}

interface Base {
  topo: Topology;
  podCgroup: TestCgroup;
  serverPid: number;
}

/** Topology, pod cgroup and the proxy stand-in, each registered for cleanup as it is made. */
async function base(ctx: SetupContext): Promise<Base> {
  const topo = await createTopology();
  ctx.cleanup.push(`netns ${topo.pod.name}, ${topo.peer.name}`, () => topo.destroy());
  const podCgroup = createCgroup();
  ctx.cleanup.push(`cgroup ${podCgroup.path}`, () => podCgroup.destroy());
  // The app listens on its port too: a connection the capture misses reaches it, and its
  // reply ("8080 ...") is counted as a mismatch instead of passing for a captured one.
  const server = await startBenchServer(podCgroup, topo.pod.path, [ctx.policy.ports.outbound, ctx.policy.ports.inbound, APP_PORT, DIRECT_STREAM_PORT], [REMOTE_STREAM_PORT, DIRECT_STREAM_PORT], ctx.cpu);
  ctx.cleanup.push('proxy stand-in and app', () => server.stop());
  return { topo, podCgroup, serverPid: server.pid };
}

async function memoryReport(b: Base, peak: number, bpf: BpfMemory | null, rules: MemoryReport['iptablesRules']): Promise<MemoryReport> {
  const entries = await conntrackEntries(b.topo);
  return { bpf, iptablesRules: rules, conntrack: { entries, peakEntries: Math.max(peak, entries), objectBytes: conntrackObjectBytes() } };
}

/** Installs the data plane on `cgroupDir` and gives each pod netns (by path) its policy. */
export function installDataPlane(cleanup: Cleanup, cgroupDir: string, pods: [netnsPath: string, policy: CapturePolicy][]): { dp: BpfDataPlane; bpffsDir: string } {
  const bpffs = createBpffsDir();
  // Uninstall detaches every link (the netns' sk_lookup included) and unpins the maps.
  cleanup.push(`bpffs ${bpffs.path}`, () => bpffs.destroy());
  const dp = BpfDataPlane.install({ cgroupDir, bpffsDir: bpffs.path });
  cleanup.push('BPF map fds', () => dp.close());
  for (const [path, policy] of pods) dp.applyPolicy(dp.cookieOf(path), policy);
  return { dp, bpffsDir: bpffs.path };
}

function installBpf(ctx: SetupContext, topo: Topology, cgroupDir: string): { dp: BpfDataPlane; bpffsDir: string } {
  return installDataPlane(ctx.cleanup, cgroupDir, [[topo.pod.path, ctx.policy]]);
}

function bpfMemoryOf(dp: BpfDataPlane, bpffsDir: string): Promise<BpfMemory> {
  return sluiceBpfMemory(bpffsDir, new Map(dp.mapUsage().map((u) => [u.map, u.entries])));
}

export async function setupBackend(name: BackendName, ctx: SetupContext): Promise<BenchBackend> {
  const b = await base(ctx);
  const common = { name, topo: b.topo, podCgroup: b.podCgroup, serverPid: b.serverPid, streamTarget: streamTarget(ctx.policy, name !== 'none'), counters: null, conntrack: () => conntrackEntries(b.topo), setPolicy: null, bpf: null };
  switch (name) {
    case 'none':
      return { ...common, directions: ['outbound', 'inbound'], target: targets(ctx.policy, false), memory: (peak) => memoryReport(b, peak, null, null) };
    case 'iptables': {
      await iptablesBackend.install(b.topo, ctx.policy, {});
      return {
        ...common,
        directions: ['outbound', 'inbound'],
        target: targets(ctx.policy, true),
        memory: async (peak) => memoryReport(b, peak, null, await iptablesRuleCount(b.topo)),
        setPolicy: (p) => iptablesBackend.install(b.topo, p, {}),
      };
    }
    case 'ebpf':
    case 'ebpf+accel': {
      // Servers first, then the data plane: it adopts the listeners that already exist.
      const { dp, bpffsDir } = installBpf(ctx, b.topo, b.podCgroup.path);
      // The switch of this private install only, as `sluice run --accelerate-force` sets it.
      dp.setAcceleration(name === 'ebpf+accel');
      return {
        ...common,
        directions: ['outbound', 'inbound'],
        target: targets(ctx.policy, true),
        counters: () => dp.readCounters(),
        memory: async (peak) => memoryReport(b, peak, await bpfMemoryOf(dp, bpffsDir), null),
        setPolicy: async (p) => dp.applyPolicy(dp.cookieOf(b.topo.pod.path), p),
        bpf: { dp, bpffsDir },
      };
    }
    case 'sk_lookup': {
      // The cgroup programs go to a cgroup nobody runs in: only sk_lookup acts.
      const empty = createCgroup();
      ctx.cleanup.push(`cgroup ${empty.path}`, () => empty.destroy());
      const { dp, bpffsDir } = installBpf(ctx, b.topo, empty.path);
      return { ...common, directions: ['inbound'], target: targets(ctx.policy, true), memory: async (peak) => memoryReport(b, peak, await bpfMemoryOf(dp, bpffsDir), null) };
    }
    case 'tc_assign': {
      // Inside the pod netns only; the qdisc goes with the netns.
      const tc = (...args: string[]) => exec(tool('ip'), ['netns', 'exec', b.topo.pod.name, tool('tc'), ...args]);
      await tc('qdisc', 'add', 'dev', b.topo.pod.ifname, 'clsact');
      await tc('filter', 'add', 'dev', b.topo.pod.ifname, 'ingress', 'bpf', 'da', 'obj', TC_SPIKE_OBJECT, 'sec', 'tc');
      return { ...common, directions: ['inbound'], target: targets(ctx.policy, true), memory: async (peak) => memoryReport(b, peak, await tcBpfMemory(b.topo), null) };
    }
  }
}

export function spikeObjectMissing(): string | null {
  return existsSync(TC_SPIKE_OBJECT) ? null : `the tc spike ${TC_SPIKE_OBJECT}: run \`make -C bpf spike\``;
}
