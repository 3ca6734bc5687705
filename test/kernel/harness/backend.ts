// A capture backend puts one policy into a topology's pod namespace, and takes it out.
// The oracle runs the same cases through every backend and compares what happened.
import { renderIptables } from '../../../src/policy/iptables.js';
import type { CapturePolicy } from '../../../src/policy/types.js';
import { exec } from './exec.js';
import { tool } from './requirements.js';
import type { Topology } from './topology.js';

/** Where the runner put the processes of one (backend, policy) run. */
export interface RunEnv {
  /** The private cgroup servers and clients run in, when the backend asked for one. */
  cgroupPath?: string;
}

export interface CaptureBackend {
  name: string;
  /** Its programs attach to a cgroup: servers and clients must run in a private one. */
  usesCgroup?: boolean;
  /** Captures the topology's pod netns with this policy. Servers are already listening. */
  install(topo: Topology, policy: CapturePolicy, env: RunEnv): Promise<void>;
  /** Removes the capture; the topology is destroyed afterwards either way. */
  uninstall(topo: Topology, env: RunEnv): Promise<void>;
}

/** `iptables-restore` (or ip6tables-restore) inside the pod netns, rules on stdin. */
export function restore(topo: Topology, family: 4 | 6, rules: string): Promise<unknown> {
  const cmd = tool(family === 4 ? 'iptables-restore' : 'ip6tables-restore');
  // `ip netns exec` so the restore runs in the pod netns: nothing touches the host's tables.
  return exec(tool('ip'), ['netns', 'exec', topo.pod.name, cmd], { input: rules });
}

export const EMPTY_NAT = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', 'COMMIT', ''].join('\n');

/** The baseline: the rules istio-iptables would write, rendered by src/policy/iptables.ts. */
export const iptablesBackend: CaptureBackend = {
  name: 'iptables',
  async install(topo, policy) {
    const { ipv4, ipv6 } = renderIptables(policy);
    await restore(topo, 4, ipv4);
    await restore(topo, 6, ipv6);
  },
  async uninstall(topo) {
    // Without --noflush, restoring an empty nat table flushes it and deletes ISTIO_* chains.
    await restore(topo, 4, EMPTY_NAT);
    await restore(topo, 6, EMPTY_NAT);
  },
};

/** No capture at all: every connection goes where it was sent. Useful to check the harness. */
export const noCaptureBackend: CaptureBackend = {
  name: 'none',
  async install() {},
  async uninstall() {},
};
