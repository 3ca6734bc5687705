// Shared builders for unit tests: Pods, Sidecars, connections, policies.
import { buildPolicy, DEFAULT_CONFIG, type CapturePolicy, type Connection, type NodeConfig, type Pod, type Sidecar } from '../../src/policy/index.js';

export const POD_IP4 = '10.1.0.2';
export const POD_IP6 = 'fd00::2';

export function pod(annotations: Record<string, string> = {}, extra: Partial<Pod> & { labels?: Record<string, string>; namespace?: string; name?: string } = {}): Pod {
  const { labels, namespace, name, ...rest } = extra;
  return {
    kind: 'Pod',
    metadata: { name: name ?? 'app', namespace: namespace ?? 'default', ...(labels ? { labels } : {}), annotations: { 'sidecar.istio.io/status': '{}', ...annotations } },
    status: { podIPs: [{ ip: POD_IP4 }, { ip: POD_IP6 }] },
    ...rest,
  };
}

export function sidecar(name: string, namespace: string, spec: Sidecar['spec'] = {}, meta: Partial<Sidecar['metadata']> = {}): Sidecar {
  return { kind: 'Sidecar', apiVersion: 'networking.istio.io/v1', metadata: { name, namespace, ...meta }, spec };
}

/** Builds a captured policy or fails loudly. */
export function policyOf(p: Pod, sidecars: Sidecar[] = [], config: NodeConfig = DEFAULT_CONFIG): CapturePolicy {
  const r = buildPolicy(p, sidecars, config);
  if (r.status !== 'captured') throw new Error(`expected a captured policy, got ${r.status}: ${JSON.stringify(r)}`);
  return r.policy;
}

export function out(dst: string, port: number, opts: Partial<Connection> = {}): Connection {
  return { direction: 'outbound', protocol: 'tcp', dst: { ip: dst, port }, uid: 1000, ...opts };
}

export function inb(dst: string, port: number, opts: Partial<Connection> = {}): Connection {
  return { direction: 'inbound', protocol: 'tcp', dst: { ip: dst, port }, ...opts };
}
