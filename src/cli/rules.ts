// `sluice rules`: the iptables-restore input istio-iptables would write for a pod.
import { InputError, renderIptables } from '../policy/index.js';
import { findPod, loadPolicies } from './load.js';

export async function runRules(pod: string, opts: { source: string; config?: string; ipv6?: boolean; kubeconfig?: string }): Promise<void> {
  const { results } = await loadPolicies(opts.source, opts.config, opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  const result = findPod(results, pod);
  if (result.status === 'rejected') throw new InputError('POLICY_REJECTED', `pod ${pod} has no valid policy:\n  ${result.errors.map((e) => e.message).join('\n  ')}`);
  if (result.status === 'uncaptured') {
    console.log(`# ${result.pod.namespace}/${result.pod.name} is not captured (${result.reason}): no rules`);
    return;
  }
  const rules = renderIptables(result.policy);
  process.stdout.write(opts.ipv6 ? rules.ipv6 : rules.ipv4);
}
