// The subset of Kubernetes and Istio objects that capture policy reads.

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
}

export interface Container {
  name?: string;
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  env?: { name?: string; value?: string }[];
}

export interface Pod {
  kind: 'Pod';
  metadata: ObjectMeta;
  spec?: { containers?: Container[]; initContainers?: Container[]; nodeName?: string; hostNetwork?: boolean };
  status?: { podIP?: string; podIPs?: { ip?: string }[] };
}

export interface SidecarPort {
  number?: number;
  protocol?: string;
  name?: string;
}

export interface SidecarListener {
  port?: SidecarPort;
  bind?: string;
  captureMode?: string;
  hosts?: string[];
  defaultEndpoint?: string;
}

export interface Sidecar {
  kind: 'Sidecar';
  apiVersion: string;
  metadata: ObjectMeta;
  spec?: {
    workloadSelector?: { labels?: Record<string, string> };
    ingress?: SidecarListener[];
    egress?: SidecarListener[];
  };
}

export const SIDECAR_API_VERSIONS: readonly string[] = Object.freeze([
  'networking.istio.io/v1',
  'networking.istio.io/v1beta1',
  'networking.istio.io/v1alpha3',
]);

export const PROXY_CONTAINER = 'istio-proxy';

export function objectName(meta: ObjectMeta): string {
  return `${meta.namespace ?? 'default'}/${meta.name ?? '?'}`;
}
