// The hooks of a test file whose tests share one BPF sandbox (createCaptureSandbox): the
// `before` hook makes it, `after.always` removes it, and each test asks ready(t) for it.
// listenerSuite() is the sandbox of the bpf-capture*.test.ts files:
//
//   pod  10.1.0.2/24 fd00::2/64 (listeners 15001, 15006, 8080 start BEFORE capture)
//   peer 10.1.0.1/24 fd00::1/64, and the "remote" 10.2.0.5 / fd00:2::5 on its lo (80, 8080)
import test from 'ava';
import type { BpfDataPlane } from '../../../src/bpf/dataplane.js';
import type { CapturePolicy } from '../../../src/policy/types.js';
import { connect, runInNetns, startServer, type BpfSandbox, type TestCgroup, type TestServer } from '../bpf-fixture.js';
import { createCaptureSandbox } from './capture-sandbox.js';
import { getsockoptFacts, iptablesSave, manyRules } from './passthrough.js';
import type { ProbeResult } from './probe.js';
import type { Topology } from './topology.js';

export type CaptureEnv<T> = T & {
  topo: Topology;
  cg: TestCgroup;
  bpffs: { path: string; destroy(): void };
  box: BpfSandbox;
  dp: BpfDataPlane;
  /** The pod netns's cookie, with `policy` applied to it. */
  cookie: bigint;
  policy: CapturePolicy;
  teardown(): Promise<void>;
};

/** The environment, or null after failing the test with what is missing or why setup failed. */
export type Ready<T> = (t: { fail(m: string): void }) => CaptureEnv<T> | null;

/** Registers the hooks; `prepare` starts the file's listeners and takes its baselines (createCaptureSandbox). */
export function captureSuite<T extends object>(missing: string | null, prepare: (box: BpfSandbox, onStop: (stop: () => unknown) => void) => Promise<T>): Ready<T> {
  let env: CaptureEnv<T> | null = null;
  let setupError: Error | null = null;
  test.before(async () => {
    if (missing) return;
    try {
      const sandbox = await createCaptureSandbox(prepare);
      const { box, dp, cookie, policy, prepared } = sandbox;
      env = { ...prepared, topo: box.topo, cg: box.cg, bpffs: box.bpffs, box, dp, cookie, policy, teardown: sandbox.teardown };
    } catch (err) {
      setupError = err as Error;
    }
  });
  test.after.always(() => env?.teardown());
  return (t) => {
    if (missing) t.fail(missing);
    else if (!env) t.fail(`setup failed: ${setupError?.stack ?? 'unknown'}`);
    return env;
  };
}

export const POD_TCP = [15001, 15006, 8080];
export const PEER_TCP = [80, 8080];

export interface Listeners {
  servers: TestServer[];
  /** Observations made before anything was installed. */
  baseline: { peerOut: ProbeResult; getsockopt: string; iptablesSave: string };
}

export type Env = CaptureEnv<Listeners>;

/** The probe listeners of the pod and the peer, 300 iptables rules in the pod, and the baselines. */
export function listenerSuite(missing: string | null): Ready<Listeners> {
  return captureSuite(missing, async ({ topo, cg }, onStop) => {
    const servers: TestServer[] = [];
    onStop(() => Promise.all(servers.map((s) => s.stop())));
    // Listeners first: capture must find them already bound, as in a running pod.
    servers.push(await startServer(cg, 'pod', topo.pod.path, POD_TCP));
    servers.push(await startServer(cg, 'peer', topo.peer.path, PEER_TCP));
    const restore = await runInNetns(cg, topo.pod.path, 'iptables-legacy-restore', [], manyRules());
    if (restore.code !== 0) throw new Error(`iptables-legacy-restore in the pod netns failed: ${restore.stderr}`);
    const baseline = {
      peerOut: await connect(cg, { netnsPath: topo.peer.path, dst: '10.2.0.5:80', uid: 1000 }),
      getsockopt: await getsockoptFacts({ cg, topo }),
      iptablesSave: await iptablesSave({ cg, topo }),
    };
    return { servers, baseline };
  });
}

/** A probe connection from the pod, as `uid`. */
export const podClient = (e: { cg: TestCgroup; topo: Topology }, dst: string, uid: number, extra: { src?: string; gid?: number } = {}) => connect(e.cg, { netnsPath: e.topo.pod.path, dst, uid, ...extra });
