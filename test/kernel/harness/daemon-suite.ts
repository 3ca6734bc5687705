// What the daemon test files (test/kernel/daemon*.test.ts) share: their requirements, the
// hooks that reap and tear down their worlds, and the ways they start a daemon, connect
// from a pod and judge where a connection went. Each test builds its own world (pod
// namespaces, a private cgroup holding every probe, a private bpffs directory and a source
// file) and tears it down, whatever happens.
//
//   pod i   10.1.0.2  listeners 15001, 15006 (the sidecar), probes as uid 1000 (the app)
//   peer i  10.2.0.5:80 on its lo: where an uncaptured connection lands
import test, { type ExecutionContext } from 'ava';
import { CGROUP_PROGRAMS } from '../../../src/bpf/loader.js';
import type { PodState } from '../../../src/daemon/reconcile.js';
import { bpfRequirementsMissing, connect, reapStale } from '../bpf-fixture.js';
import { createWorld, killAllDaemons, reapStaleWorkDirs, REMOTE, startDaemon, waitFor, type Daemon, type Metrics, type PodSpec, type World } from './daemon.js';
import type { ProbeResult } from './probe.js';
import { findTool } from './requirements.js';
import { reapStaleNamespaces } from './topology.js';

export const EXCLUDE_PORTS = 'traffic.sidecar.istio.io/excludeOutboundPorts';
/** The cgroup programs one installation attaches, by name. */
export const PROGRAMS = CGROUP_PROGRAMS.map((p) => p.program as string).sort();

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function requirementsMissing(): string | null {
  const missing = [bpfRequirementsMissing()].filter((m): m is string => m !== null);
  for (const t of ['bpftool', 'python3']) if (!findTool(t)) missing.push(`\`${t}\` on PATH (the daemon test checks pins with bpftool and holds connections open with python3)`);
  return missing.length ? missing.join('\n') : null;
}

export interface DaemonSuite {
  /** What is missing to run the daemon tests; null when all is there. */
  missing: string | null;
  /** Builds a world of `pods` pods, runs `body`, and always tears everything down. */
  inWorld(t: ExecutionContext, pods: number, body: (w: World) => Promise<void>): Promise<void>;
}

/** Registers the file's hooks: reap what dead runs left before, kill and destroy everything after. */
export function daemonSuite(): DaemonSuite {
  const missing = requirementsMissing();
  const worlds = new Set<World>();
  test.before(async () => {
    if (missing) return;
    await reapStaleNamespaces();
    reapStale();
    reapStaleWorkDirs();
  });
  test.after.always(async () => {
    await killAllDaemons();
    await Promise.all([...worlds].map((w) => w.destroy()));
  });
  return {
    missing,
    async inWorld(t, pods, body) {
      if (missing) return t.fail(missing);
      const w = await createWorld(pods);
      worlds.add(w);
      try {
        await body(w);
      } finally {
        await killAllDaemons();
        await w.destroy();
        worlds.delete(w);
      }
    },
  };
}

export const daemonFor = (w: World, extraArgs: string[] = []) => startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, extraArgs });

/** Pod i of the world, as the source file names it. */
export const podSpec = (w: World, i: number, annotations: Record<string, string> = {}): PodSpec => ({ name: `pod${i}`, netns: w.pods[i]!.pod.path, annotations });

/** An app connection (uid 1000) from pod i to the remote service. */
export const appConnect = (w: World, i: number) => connect(w.cg, { netnsPath: w.pods[i]!.pod.path, dst: REMOTE, uid: 1000 });

export function where(r: ProbeResult): string {
  return r.ok ? `${r.server.server}:${r.server.port} origDst=${r.server.origDst}` : `failed: ${r.error}`;
}

/** Captured: accepted by the pod's outbound listener, which reads the original destination. */
export const captured = (r: ProbeResult, i: number) => r.ok && r.server.server === `pod${i}` && r.server.port === 15001 && r.server.origDst === REMOTE && r.clientPeer === REMOTE;
/** Passed: reached the remote service itself. */
export const direct = (r: ProbeResult, i: number) => r.ok && r.server.server === `peer${i}` && r.server.port === 80;

export async function pods(d: Daemon): Promise<PodState[]> {
  return d.json<PodState[]>('/v1/pods');
}

export async function podState(d: Daemon, name: string): Promise<PodState | undefined> {
  return (await pods(d)).find((p) => p.name === name);
}

/** Waits until /readyz answers 200. */
export const ready = (d: Daemon) => waitFor('/readyz 200', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 10_000);

/** Waits until pod `name` has `status` in /v1/pods. */
export const podStatus = (d: Daemon, name: string, status: PodState['status']) =>
  waitFor(`pod ${name} ${status}`, async () => {
    const p = await podState(d, name);
    return p?.status === status ? p : undefined;
  });

export const waitMetric = (d: Daemon, what: string, pred: (m: Metrics) => boolean) =>
  waitFor(what, async () => {
    const m = await d.metrics();
    return pred(m) ? m : undefined;
  });

/** Polls app connections from pod i every 50 ms until `pred` holds; the time since `since`. */
export async function heldAfter(w: World, i: number, since: number, pred: (r: ProbeResult) => boolean, timeoutMs = 5000): Promise<{ ms: number; seen: string[] }> {
  const seen: string[] = [];
  for (;;) {
    const r = await appConnect(w, i);
    const now = Date.now();
    seen.push(where(r));
    if (pred(r)) return { ms: now - since, seen };
    if (now - since > timeoutMs) throw new Error(`the change did not hold within ${timeoutMs} ms; connections saw: ${seen.join(' | ')}`);
    await sleep(50);
  }
}
