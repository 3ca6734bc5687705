// `sluice status --source ...`: each pod the source knows, what its policy is, and whether
// the kernel holds it, read straight from the source and the pinned maps (no daemon needed).
import { errorText } from '../errors.js';
import type { BpfDataPlane } from '../bpf/dataplane.js';
import { buildPolicies } from '../policy/build.js';
import type { NodeConfig } from '../policy/config.js';
import { annotationNetns } from '../sources/file-feed.js';
import { parseSourceSpec, readSnapshot } from '../sources/index.js';
import type { NetnsTarget } from '../sources/record.js';

export interface SourcePodStatus {
  namespace: string;
  name: string;
  policy: 'captured' | 'uncaptured' | 'rejected';
  netns: string;
  netnsCookie: string | null;
  inKernel: boolean;
  problem: string | null;
}

export interface SourceFlags {
  source: string;
  kubeconfig?: string;
  node?: string;
  procRoot?: string;
}

export async function sourcePodStatus(dp: BpfDataPlane, flags: SourceFlags, config: NodeConfig): Promise<SourcePodStatus[]> {
  const spec = parseSourceSpec(flags.source);
  let snapshot;
  let netnsOf: (i: number) => NetnsTarget;
  if (spec.kind === 'file') {
    snapshot = readSnapshot(spec);
    netnsOf = (i) => annotationNetns(snapshot!.pods[i]!);
  } else {
    const { listSnapshot } = await import('../sources/kubernetes/snapshot.js');
    const { discoverPodProcesses } = await import('../sources/kubernetes/discovery.js');
    const node = flags.node ?? process.env.NODE_NAME;
    snapshot = await listSnapshot({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), ...(node ? { node } : {}) });
    const procRoot = flags.procRoot ?? '/proc';
    const found = discoverPodProcesses(procRoot, new Set(snapshot.pods.map((p) => p.metadata.uid ?? '').filter(Boolean)));
    netnsOf = (i) => {
      const path = found.get(snapshot!.pods[i]!.metadata.uid ?? '')?.netnsPath;
      return path ? { kind: 'path', path } : { kind: 'pending', reason: `no process of the pod under ${procRoot} (not on this node, or not started)` };
    };
  }
  const inKernel = new Set(dp.listPolicies());
  return buildPolicies(snapshot.pods, snapshot.sidecars, config).map((r, i) => {
    const target = netnsOf(i);
    let cookie: bigint | null = null;
    let problem = r.status === 'rejected' ? r.errors.map((e) => e.message).join('; ') : target.kind === 'path' ? null : target.reason;
    if (target.kind === 'path') {
      try {
        cookie = dp.cookieOf(target.path);
      } catch (e) {
        problem = errorText(e);
      }
    }
    return {
      ...r.pod,
      policy: r.status,
      netns: target.kind === 'path' ? target.path : target.kind,
      netnsCookie: cookie?.toString() ?? null,
      inKernel: cookie !== null && inKernel.has(cookie),
      problem,
    };
  });
}
