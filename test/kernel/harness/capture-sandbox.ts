// One BPF sandbox shared by every test of a file: what the `before` hook of such a file
// does, written once. Listeners start before capture is installed, as in a running pod.
import { BpfDataPlane } from '../../../src/bpf/dataplane.js';
import type { CapturePolicy } from '../../../src/policy/types.js';
import { makePolicy } from '../../support/policy.js';
import { createBpfSandbox, reapStale, type BpfSandbox } from '../bpf-fixture.js';
import { reapStaleNamespaces } from './topology.js';

export interface CaptureSandbox<T> {
  box: BpfSandbox;
  dp: BpfDataPlane;
  /** The pod netns's cookie, with the default test policy applied to it. */
  cookie: bigint;
  policy: CapturePolicy;
  /** What `prepare` returned. */
  prepared: T;
  /** Closes the data plane, runs the file's stop functions, then removes the sandbox. */
  teardown(): Promise<void>;
}

/**
 * Reaps what dead runs left, makes a sandbox, lets `prepare` start the file's listeners
 * (each registers how to stop it with `onStop`) and take its baselines, then installs the
 * data plane and applies the default policy to the pod. On failure everything made is
 * torn down before the error is rethrown.
 */
export async function createCaptureSandbox<T>(prepare: (box: BpfSandbox, onStop: (stop: () => unknown) => void) => Promise<T>): Promise<CaptureSandbox<T>> {
  await reapStaleNamespaces();
  reapStale();
  const box = await createBpfSandbox();
  const stops: Array<() => unknown> = [];
  const stopAll = async () => {
    await Promise.all(stops.map((stop) => stop()));
    await box.destroy();
  };
  try {
    const prepared = await prepare(box, (stop) => stops.push(stop));
    const dp = BpfDataPlane.install({ cgroupDir: box.cg.path, bpffsDir: box.bpffs.path });
    try {
      const cookie = dp.cookieOf(box.topo.pod.path);
      const policy = makePolicy();
      dp.applyPolicy(cookie, policy);
      return {
        box,
        dp,
        cookie,
        policy,
        prepared,
        async teardown() {
          dp.close();
          await stopAll();
        },
      };
    } catch (err) {
      dp.close();
      throw err;
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
}
