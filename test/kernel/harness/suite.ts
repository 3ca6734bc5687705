// What the suites that run iptables and eBPF side by side share: their requirements and
// the reaping of leftovers from killed runs.
import { bpfRequirementsMissing, reapStale } from '../bpf-fixture.js';
import { checkRequirements } from './requirements.js';
import { reapStaleNamespaces } from './topology.js';

/** null, or what is missing for iptables-restore and the eBPF data plane. */
export function iptablesAndBpfMissing(): string | null {
  try {
    checkRequirements({ iptables: true });
  } catch (err) {
    return (err as Error).message;
  }
  return bpfRequirementsMissing();
}

/** Namespaces, cgroups and pins left by dead runs: for test.before. */
export async function reapLeftovers(missing: string | null): Promise<void> {
  if (missing) return;
  await reapStaleNamespaces();
  reapStale();
}
