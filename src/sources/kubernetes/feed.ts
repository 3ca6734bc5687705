// `--source kubernetes`: informers for the Pods on this node and every Istio Sidecar,
// each pod's netns found from its cgroup under --proc-root. Control-plane faults never
// change the data plane: the informers' caches keep the last known state, and a pod that
// vanished while the API server was away is removed only when a later list says so.
import { buildPolicies } from '../../policy/build.js';
import type { NodeConfig } from '../../policy/config.js';
import type { Pod, Sidecar } from '../../policy/k8s.js';
import type { Feed, NetnsTarget, PodRecord, SourceRead, SourceStatus } from '../record.js';
import { detectSidecarVersion, loadKubeConfig, podsOnNodeLister, sidecarLister, SIDECAR_GROUP, type ObjectList, type SidecarVersion } from './api.js';
import { discoverPodProcesses } from './discovery.js';
import { Informer } from './informer.js';
import { checkSidecar } from './validate.js';

export interface KubernetesFeedOptions {
  kubeconfig?: string;
  node: string;
  /** Where the host's /proc is mounted (the DaemonSet mounts it at /host/proc). */
  procRoot: string;
  config: NodeConfig;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  onEvent?: (resource: string, type: string) => void;
  onApiError?: (resource: string) => void;
  backoff?: { baseMs: number; maxMs: number };
}

export function kubernetesFeed(opts: KubernetesFeedOptions): Feed {
  const kc = loadKubeConfig(opts.kubeconfig);
  let pods: Informer<Pod> | null = null;
  let sidecars: Informer<Sidecar> | null = null;
  let sidecarVersion: SidecarVersion | null | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;

  const informer = <T extends Pod | Sidecar>(resource: string, path: string, list: () => Promise<ObjectList<T>>, onChange: () => void, fieldSelector?: string) =>
    new Informer<T>({
      kubeconfig: kc,
      path,
      list,
      onChange,
      ...(fieldSelector ? { fieldSelector } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      onEvent: (type) => opts.onEvent?.(resource, type),
      onError: (error, retryInMs) => {
        opts.onApiError?.(resource);
        opts.log.warn({ reason: 'api_error', resource, error: (error as Error).message ?? String(error), retryInMs }, 'API request failed; keeping the last known state');
      },
    });

  // The Sidecar API is found once; until then (API down at start) nothing reconciles.
  const startSidecars = async (onChange: () => void, attempt = 0): Promise<void> => {
    if (stopped) return;
    try {
      sidecarVersion = await detectSidecarVersion(kc);
    } catch (e) {
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      opts.onApiError?.('sidecars');
      opts.log.warn({ reason: 'api_error', resource: 'sidecars', error: (e as Error).message, retryInMs: delay }, 'Sidecar API discovery failed; retrying');
      retry = setTimeout(() => void startSidecars(onChange, attempt + 1), delay);
      retry.unref();
      return;
    }
    if (sidecarVersion === null) {
      opts.log.warn({ reason: 'no_sidecar_api' }, `${SIDECAR_GROUP} serves no Sidecar version (${'v1, v1beta1, v1alpha3'}); pods get no Sidecar`);
      onChange();
      return;
    }
    opts.log.info({ reason: 'sidecar_api', version: sidecarVersion }, 'watching Sidecars');
    sidecars = informer<Sidecar>('sidecars', `/apis/${SIDECAR_GROUP}/${sidecarVersion}/sidecars`, sidecarLister(kc, sidecarVersion), onChange);
    sidecars.start();
  };

  return {
    async start(onChange) {
      pods = informer<Pod>('pods', '/api/v1/pods', podsOnNodeLister(kc, `spec.nodeName=${opts.node}`), onChange, `spec.nodeName=${opts.node}`);
      pods.start();
      await startSidecars(onChange);
    },
    read(): SourceRead | null {
      if (!pods?.synced || sidecarVersion === undefined || (sidecarVersion !== null && !sidecars?.synced)) return null;
      const errors: string[] = [];
      const goodSidecars = (sidecars?.list() ?? []).filter((s) => {
        const problem = checkSidecar(s);
        if (problem) errors.push(problem);
        return !problem;
      });
      // The API server may hand back pods of other nodes if the selector is ignored.
      const podList = pods.list().filter((p) => p.spec?.nodeName === opts.node);
      const results = buildPolicies(podList, goodSidecars, opts.config);
      const wanted = new Set(podList.map((p, i) => (results[i]!.status === 'uncaptured' ? '' : (p.metadata.uid ?? ''))).filter(Boolean));
      const found = discoverPodProcesses(opts.procRoot, wanted);
      const records: PodRecord[] = results.map((result, i) => {
        const pod = podList[i]!;
        const uid = pod.metadata.uid;
        return { result, netns: netnsOf(pod, found.get(uid ?? '')?.netnsPath, opts.procRoot), ...(uid ? { uid } : {}) };
      });
      // The informers' caches are the cluster's state as of the last list or event: what
      // is not in them is gone, even when the API server is away right now.
      return { records, errors, prune: true };
    },
    status(): SourceStatus {
      const staleSeconds = Math.max(pods?.staleSeconds ?? 0, sidecars?.staleSeconds ?? 0);
      const synced = Boolean(pods?.synced) && (sidecarVersion === null || Boolean(sidecars?.synced));
      return { kind: 'kubernetes', synced, staleSeconds, detail: { node: opts.node, sidecarVersion: sidecarVersion ?? null } };
    },
    async close() {
      stopped = true;
      if (retry) clearTimeout(retry);
      await Promise.all([pods?.stop(), sidecars?.stop()]);
    },
  };
}

function netnsOf(pod: Pod, path: string | undefined, procRoot: string): NetnsTarget {
  // A host-network pod shares the node's namespace: capturing it would capture the node.
  if (pod.spec?.hostNetwork === true) {
    return { kind: 'missing', reason: 'the pod uses hostNetwork; sluice never captures the node\'s network namespace' };
  }
  if (!pod.metadata.uid) return { kind: 'missing', reason: 'the pod has no metadata.uid' };
  if (path) return { kind: 'path', path };
  return { kind: 'pending', reason: `no process of pod ${pod.metadata.uid} under ${procRoot} yet (its sandbox is starting)` };
}
