// API access: the kubeconfig, and the two lists the informers start from. Lists come back
// as plain JSON (as the watch events do), the shape the policy code reads.
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
// Not re-exported by the package root; it turns typed list items back into API JSON.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { SluiceError } from '../../errors.js';
import type { Pod, Sidecar } from '../../policy/k8s.js';

/** A list response as JSON: what the informers start from. */
export interface ObjectList<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export class KubernetesSourceError extends SluiceError {}

/** `--kubeconfig PATH`, else `KUBECONFIG`, else the pod's in-cluster service account. */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const file = path ?? env.KUBECONFIG;
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromCluster();
  } catch (e) {
    throw new KubernetesSourceError('KUBECONFIG_UNREADABLE', `cannot load the kubeconfig ${file ?? '(in-cluster)'}: ${(e as Error).message}`, {
      hint: 'pass --kubeconfig PATH, set KUBECONFIG, or run inside the cluster with a service account',
      exitCode: 2,
    });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new KubernetesSourceError('KUBECONFIG_NO_SERVER', `the kubeconfig ${file ?? '(in-cluster)'} names no API server`, {
      hint: file ? 'set clusters[].cluster.server in it, or select a context with one' : 'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set in the pod',
      exitCode: 2,
    });
  }
  return kc;
}

export const SIDECAR_GROUP = 'networking.istio.io';
/** Newest first: the first one the API server serves is watched. */
export const SIDECAR_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;
export type SidecarVersion = (typeof SIDECAR_VERSIONS)[number];

function statusOf(e: unknown): number | undefined {
  const err = e as { code?: unknown; statusCode?: unknown };
  return typeof err.code === 'number' ? err.code : typeof err.statusCode === 'number' ? err.statusCode : undefined;
}

export function podsOnNodeLister(kc: KubeConfig, fieldSelector: string | undefined): () => Promise<ObjectList<Pod>> {
  const core = kc.makeApiClient(CoreV1Api);
  return async () => {
    const list = await core.listPodForAllNamespaces(fieldSelector ? { fieldSelector } : {});
    const raw = ObjectSerializer.serialize(list, 'V1PodList', '') as ObjectList<Pod>;
    for (const item of raw.items) item.kind = 'Pod';
    return raw;
  };
}

export function sidecarLister(kc: KubeConfig, version: SidecarVersion): () => Promise<ObjectList<Sidecar>> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  return async () => {
    const raw = (await custom.listClusterCustomObject({ group: SIDECAR_GROUP, version, plural: 'sidecars' })) as ObjectList<Sidecar>;
    for (const item of raw.items) {
      item.kind = 'Sidecar';
      item.apiVersion = `${SIDECAR_GROUP}/${version}`;
    }
    return raw;
  };
}

/**
 * The newest Sidecar version the API server serves, or null when none is (Istio's CRDs
 * are not installed: no Sidecar applies to any pod). Other errors are thrown.
 */
export async function detectSidecarVersion(kc: KubeConfig): Promise<SidecarVersion | null> {
  for (const version of SIDECAR_VERSIONS) {
    try {
      await sidecarLister(kc, version)();
      return version;
    } catch (e) {
      if (statusOf(e) === 404) continue;
      throw e;
    }
  }
  return null;
}
