// One read of the cluster for the CLI (`explain`, `rules`, `validate --source kubernetes`):
// the same lists the daemon's informers start from, without the watch.
import type { SourceSnapshot } from '../file.js';
import { detectSidecarVersion, loadKubeConfig, podsOnNodeLister, sidecarLister } from './api.js';
import { checkSidecar } from './validate.js';

export async function listSnapshot(opts: { kubeconfig?: string; node?: string }): Promise<SourceSnapshot> {
  const kc = loadKubeConfig(opts.kubeconfig);
  const [pods, version] = await Promise.all([podsOnNodeLister(kc, opts.node ? `spec.nodeName=${opts.node}` : undefined)(), detectSidecarVersion(kc)]);
  const sidecars = version ? (await sidecarLister(kc, version)()).items : [];
  const errors: string[] = [];
  const good = sidecars.filter((s) => {
    const problem = checkSidecar(s);
    if (problem) errors.push(problem);
    return !problem;
  });
  return { pods: pods.items, sidecars: good, errors };
}
