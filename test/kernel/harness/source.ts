// The file source the daemon watches: meshed Pods as `kubectl get -o yaml` shows them,
// each naming its netns for the daemon.
import { stringify } from 'yaml';

export interface PodSpec {
  name: string;
  namespace?: string;
  netns: string;
  ips?: string[];
  annotations?: Record<string, string>;
}

/** A meshed Pod as `kubectl get -o yaml` shows it, naming its netns for the daemon. */
export function podObject(p: PodSpec): object {
  const ips = p.ips ?? ['10.1.0.2', 'fd00::2'];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace ?? 'default',
      annotations: { 'sidecar.istio.io/status': '{"containers":["istio-proxy"]}', 'sluice.dev/netns': p.netns, ...p.annotations },
    },
    spec: {
      containers: [
        { name: 'app', image: 'app:1' },
        { name: 'istio-proxy', image: 'istio/proxyv2:1.25.0', securityContext: { runAsUser: 1337, runAsGroup: 1337 } },
      ],
    },
    status: { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

export function sourceYaml(pods: PodSpec[]): string {
  return pods.map((p) => stringify(podObject(p))).join('---\n');
}
