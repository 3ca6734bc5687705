// sluice's whole stack as a capture backend: `sluice run --source kubernetes` against the
// API double, the pod found by a kubepods cgroup under the run's private cgroup, and its
// policy expressed the way a cluster states it (pod annotations, the proxy's env, the
// node config for proxy ids). install() checks the daemon built exactly the case's policy.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ANNOTATIONS } from '../../../src/policy/annotations.js';
import type { PodState } from '../../../src/daemon/reconcile.js';
import type { CapturePolicy } from '../../../src/policy/types.js';
import { createBpffsDir, TEST_PREFIX } from '../bpf-fixture.js';
import type { CaptureBackend } from './backend.js';
import { makePolicy } from './cases.js';
import { killAllDaemons, waitFor, type World } from './daemon.js';
import { createKubeWorld, type KubeWorld } from './kube-world.js';

const DEFAULTS = makePolicy();

/** The annotations that give a meshed pod this policy (over the defaults). */
export function annotationsFor(p: CapturePolicy): Record<string, string> {
  const a: Record<string, string> = {};
  const list = (v: '*' | (string | number)[]) => (v === '*' ? '*' : v.join(','));
  if (p.excludeOutboundPorts.length) a[ANNOTATIONS.excludeOutboundPorts] = list(p.excludeOutboundPorts);
  if (p.includeOutboundPorts.length) a[ANNOTATIONS.includeOutboundPorts] = list(p.includeOutboundPorts);
  if (p.excludeOutboundIPRanges.length) a[ANNOTATIONS.excludeOutboundIPRanges] = list(p.excludeOutboundIPRanges);
  if (p.includeOutboundIPRanges !== '*') a[ANNOTATIONS.includeOutboundIPRanges] = list(p.includeOutboundIPRanges);
  if (p.includeInboundPorts !== '*') a[ANNOTATIONS.includeInboundPorts] = list(p.includeInboundPorts);
  // The status port (15020 by default) is excluded by its own annotation; the rest by list.
  const statusPort = p.excludeInboundPorts.find((n) => n >= 15020 && n !== 15021 && n !== 15090) ?? 15020;
  if (statusPort !== 15020) a[ANNOTATIONS.statusPort] = String(statusPort);
  const extra = p.excludeInboundPorts.filter((n) => !DEFAULTS.excludeInboundPorts.includes(n) && n !== statusPort);
  if (extra.length) a[ANNOTATIONS.excludeInboundPorts] = list(extra);
  return a;
}

/** The policy as the daemon reports it, without what names the pod. */
const comparable = (p: CapturePolicy | null) => (p ? JSON.stringify({ ...p, pod: null, sidecar: null }) : null);

interface Running {
  k: KubeWorld;
  bpffs: { destroy(): void };
  dir: string;
}

const running = new Map<string, Running>();

export const kubeBackend: CaptureBackend = {
  name: 'ebpf-kubernetes',
  usesCgroup: true,
  async install(topo, policy, env) {
    const cgroup = env.cgroupPath!;
    const dir = mkdtempSync(join(tmpdir(), `${TEST_PREFIX}${process.pid}-`));
    const bpffs = createBpffsDir();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, stringify({ proxyUids: policy.proxyUids, proxyGids: policy.proxyGids }));
    const world = { cg: { path: cgroup }, dir, source: join(dir, 'unused.yaml'), bpffs: bpffs.path, lookupSocket: join(dir, 'lookup.sock') } as unknown as World;
    const k = await createKubeWorld(world, 1);
    running.set(topo.pod.path, { k, bpffs, dir });
    k.sandbox(0, topo.pod.path);
    const pod = k.podObject(0, '/proc/1/ns/net', { annotations: annotationsFor(policy) }) as { spec: { containers: { name: string; env?: object[] }[] } };
    if (policy.dnsCapture) pod.spec.containers.find((c) => c.name === 'istio-proxy')!.env = [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }];
    k.api.upsert('pods', pod as never);
    try {
      const d = await k.daemon(['--config', config]);
      const state = await waitFor('the pod applied', async () => (await d.json<PodState[]>('/v1/pods')).find((p) => p.status === 'applied'), 20_000);
      if (comparable(state.policy) !== comparable(policy)) {
        throw new Error(`the daemon built another policy from the pod:\n  got  ${comparable(state.policy)}\n  want ${comparable(policy)}`);
      }
    } catch (e) {
      await kubeBackend.uninstall(topo, env); // the runner uninstalls only what installed
      throw e;
    }
  },
  async uninstall(topo) {
    const r = running.get(topo.pod.path);
    if (!r) return;
    running.delete(topo.pod.path);
    await killAllDaemons();
    try {
      r.bpffs.destroy();
      await r.k.destroy(); // the API double, the sandbox and its kubepods cgroups
    } finally {
      rmSync(r.dir, { recursive: true, force: true });
    }
  },
};

