// Pods as the kubelet lays them out, for the kubernetes source: each pod has a netns and a
// "sandbox" process in a kubepods cgroup under the test's private cgroup (cgroupfs
// `kubepods/burstable/pod<uid>/<ctr>` for even pods, systemd
// `kubepods-burstable-pod<uid>.slice` for odd ones), and an API double serves the Pods.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { destroyCgroup } from '../../../src/lab/cgroup.js';
import { KubeApiDouble } from '../../support/kube-api.js';
import { spawnInCgroup } from '../bpf-fixture.js';
import { podObject, startDaemon, type Daemon, type World } from './daemon.js';
import { exec } from './exec.js';
import { deleteNetns, NETNS_PREFIX } from './topology.js';

/** This run's node name: unique per run (pid and random), so concurrent runs never watch each other's pods. */
export const KUBE_NODE = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-node`;

export interface KubeWorld {
  api: KubeApiDouble;
  uids: string[];
  kubeconfig: string;
  /** Starts a sandbox process for pod i in its kubepods cgroup, inside `netnsPath`. */
  sandbox(i: number, netnsPath: string): void;
  /** Pod i as the API serves it; its netns annotation names another pod's on purpose. */
  podObject(i: number, netnsPath: string, extra?: { annotations?: Record<string, string> }): Record<string, unknown>;
  daemon(extraArgs?: string[], opts?: { built?: boolean }): Promise<Daemon>;
  destroy(): Promise<void>;
}

/** The kubepods cgroup of pod i: the cgroupfs layout for even i, systemd for odd. */
export function podCgroup(root: string, uid: string, i: number): string {
  return i % 2 === 0
    ? join(root, 'kubepods', 'burstable', `pod${uid}`, `ctr${i}`)
    : join(root, 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice`, `cri-containerd-${i}.scope`);
}

/** Bare pod namespaces (no veth, no listener): enough for the control-plane measurements. */
export async function bareNetns(n: number): Promise<{ paths: string[]; destroy(): Promise<void> }> {
  const names = Array.from({ length: n }, (_, i) => `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-k${i}`);
  const made: string[] = [];
  const destroy = async () => {
    for (const name of made) await deleteNetns(name);
  };
  try {
    for (const name of names) {
      await exec('ip', ['netns', 'add', name]);
      made.push(name);
    }
  } catch (e) {
    await destroy();
    throw e;
  }
  return { paths: names.map((n) => `/var/run/netns/${n}`), destroy };
}

export async function createKubeWorld(w: World, pods: number): Promise<KubeWorld> {
  const api = new KubeApiDouble();
  await api.start();
  const kubeconfig = api.writeKubeconfig(w.dir);
  const uids = Array.from({ length: pods }, () => randomUUID());
  return {
    api,
    uids,
    kubeconfig,
    sandbox(i, netnsPath) {
      const dir = podCgroup(w.cg.path, uids[i]!, i);
      mkdirSync(dir, { recursive: true });
      spawnInCgroup({ path: dir, destroy: async () => undefined }, 'nsenter', [`--net=${netnsPath}`, 'sleep', '3600']);
    },
    podObject(i, netnsPath, extra = {}) {
      const o = podObject({ name: `pod${i}`, netns: netnsPath, ...(extra.annotations ? { annotations: extra.annotations } : {}) }) as Record<string, any>;
      o.metadata.uid = uids[i];
      o.metadata.labels = { app: `pod${i}` };
      o.spec.nodeName = KUBE_NODE;
      return o;
    },
    daemon: (extraArgs = [], opts = {}) =>
      startDaemon({
        source: w.source,
        cgroup: w.cg.path,
        bpffs: w.bpffs,
        lookupSocket: w.lookupSocket,
        sourceArgs: ['--source', 'kubernetes', '--kubeconfig', kubeconfig, '--node', KUBE_NODE, '--proc-root', '/proc'],
        extraArgs,
        ...(opts.built ? { built: true } : {}),
      }),
    async destroy() {
      await api.stop();
      // The sandboxes' kubepods trees go now; the world's own cgroup goes with the world.
      for (const e of readdirSync(w.cg.path, { withFileTypes: true })) if (e.isDirectory()) await destroyCgroup(join(w.cg.path, e.name));
    },
  };
}
