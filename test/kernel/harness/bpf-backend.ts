// sluice's own data plane as a capture backend: the programs attach to the run's private
// cgroup, pins go to a private bpffs directory, and each pod's policy is keyed by its netns
// cookie, as the daemon does it. Several pods in one cgroup (the mesh) share one install.
import { BpfDataPlane } from '../../../src/bpf/dataplane.js';
import { createBpffsDir } from '../bpf-fixture.js';
import type { CaptureBackend, RunEnv } from './backend.js';

interface Installed {
  dp: BpfDataPlane;
  bpffs: { destroy(): void };
  pods: Set<string>;
}

/** cgroup path → its data plane. */
const installed = new Map<string, Installed>();

function cgroupOf(env: RunEnv): string {
  if (env.cgroupPath === undefined) throw new Error('the eBPF backend needs a private cgroup: the runner creates one when usesCgroup is set');
  return env.cgroupPath;
}

function teardown(cgroupPath: string, i: Installed): void {
  installed.delete(cgroupPath);
  try {
    i.dp.close();
  } finally {
    // Unpinning detaches the links: nothing stays attached to the cgroup or a netns.
    i.bpffs.destroy();
  }
}

export const ebpfBackend: CaptureBackend = {
  name: 'ebpf',
  usesCgroup: true,
  async install(topo, policy, env) {
    const cg = cgroupOf(env);
    let i = installed.get(cg);
    if (!i) {
      const bpffs = createBpffsDir();
      try {
        i = { dp: BpfDataPlane.install({ cgroupDir: cg, bpffsDir: bpffs.path }), bpffs, pods: new Set() };
      } catch (err) {
        bpffs.destroy();
        throw err;
      }
      installed.set(cg, i);
    }
    i.pods.add(topo.pod.path);
    i.dp.applyPolicy(i.dp.cookieOf(topo.pod.path), policy);
  },
  async uninstall(topo, env) {
    const cg = cgroupOf(env);
    const i = installed.get(cg);
    if (!i) return;
    i.pods.delete(topo.pod.path);
    if (i.pods.size === 0) teardown(cg, i);
  },
};
