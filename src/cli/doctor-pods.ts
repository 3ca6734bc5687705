// Doctor's view of the running daemon's pods: those left to istio-init's iptables (double
// capture) and those not applied. Skipped, with a note, when the daemon is not reachable.
import type { Check } from './doctor.js';

interface PodView {
  namespace: string;
  name: string;
  status: string;
  error: string | null;
  istioIptables?: string;
}

export async function podChecks(listen: string, fetchPods: (url: string) => Promise<PodView[] | null> = fetchJson): Promise<Check[]> {
  const pods = await fetchPods(`http://${listen}/v1/pods`);
  if (pods === null) return [{ name: 'daemon pods', status: 'ok', detail: `no daemon answers at ${listen}; pod checks skipped (pass --listen ADDR)` }];
  const doubled = pods.filter((p) => p.istioIptables === 'present').map((p) => `${p.namespace}/${p.name}`);
  const rejected = pods.filter((p) => p.status === 'rejected' && p.istioIptables !== 'present');
  return [
    doubled.length === 0
      ? { name: 'double capture', status: 'ok', detail: "no pod netns holds istio-init's ISTIO_* iptables chains" }
      : { name: 'double capture', status: 'warn', detail: `left to istio-init's iptables, not captured by sluice: ${doubled.join(', ')}; stop istio-init from writing its rules (README: Install on a cluster) and restart those pods` },
    rejected.length === 0
      ? { name: 'daemon pods', status: 'ok', detail: `${pods.filter((p) => p.status === 'applied').length} applied, ${pods.filter((p) => p.status === 'pending').length} pending` }
      : { name: 'daemon pods', status: 'warn', detail: `rejected: ${rejected.map((p) => `${p.namespace}/${p.name} (${p.error})`).join('; ')}` },
  ];
}

async function fetchJson(url: string): Promise<PodView[] | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as PodView[]) : null;
  } catch {
    return null;
  }
}
