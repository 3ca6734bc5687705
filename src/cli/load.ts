// Shared CLI plumbing: read the source and config, build every pod's policy.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CONFIG, InputError, PolicyError, buildPolicies, parseNodeConfig, type NodeConfig, type PolicyResult } from '../policy/index.js';
import { parseSourceSpec, readSnapshot } from '../sources/index.js';

export function loadConfig(path: string | undefined): NodeConfig {
  if (!path) return DEFAULT_CONFIG;
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError('CONFIG_UNREADABLE', `cannot read --config ${path}: ${(e as Error).message}; fix the file or drop --config`);
  }
  try {
    return parseNodeConfig(raw, path);
  } catch (e) {
    if (e instanceof PolicyError) throw new InputError('BAD_CONFIG', e.message);
    throw e;
  }
}

export interface Loaded {
  results: PolicyResult[];
  sourceErrors: string[];
  config: NodeConfig;
}

export async function loadPolicies(source: string, configPath: string | undefined, kube: { kubeconfig?: string } = {}): Promise<Loaded> {
  const config = loadConfig(configPath);
  const spec = parseSourceSpec(source);
  // client-node is loaded only for the kubernetes source, so file users do not pay for it.
  const snapshot = spec.kind === 'file' ? readSnapshot(spec) : await (await import('../sources/kubernetes/snapshot.js')).listSnapshot(kube);
  return { results: buildPolicies(snapshot.pods, snapshot.sidecars, config), sourceErrors: snapshot.errors, config };
}

/** POD is `NAMESPACE/NAME`, or `NAME` in namespace `default`. */
export function findPod(results: PolicyResult[], pod: string): PolicyResult {
  const [namespace, name] = pod.includes('/') ? pod.split('/', 2) : ['default', pod];
  const found = results.find((r) => r.pod.namespace === namespace && r.pod.name === name);
  if (!found) {
    const known = results.map((r) => `${r.pod.namespace}/${r.pod.name}`).join(', ') || 'none';
    throw new InputError('UNKNOWN_POD', `pod ${namespace}/${name} is not in the source (pods: ${known}); use NAMESPACE/NAME`);
  }
  return found;
}
