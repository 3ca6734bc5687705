// Which Sidecar applies to a pod (capture-spec "Which Sidecar applies to a pod").
import type { Pod, Sidecar } from './k8s.js';
import { objectName } from './k8s.js';

export interface SidecarSelection {
  sidecar: Sidecar | null;
  /** Other Sidecars that also matched at the winning level; reported, never merged. */
  conflicts: string[];
}

function selectorLabels(sc: Sidecar): Record<string, string> | null {
  const labels = sc.spec?.workloadSelector?.labels;
  return labels && Object.keys(labels).length > 0 ? labels : null;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Oldest first; objects without a timestamp keep their input order (stable sort). */
function oldestFirst(list: Sidecar[]): Sidecar[] {
  return [...list].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
}

function pick(candidates: Sidecar[]): SidecarSelection | null {
  if (candidates.length === 0) return null;
  const [first, ...rest] = oldestFirst(candidates);
  return { sidecar: first!, conflicts: rest.map((s) => objectName(s.metadata)) };
}

export function selectSidecar(pod: Pod, sidecars: Sidecar[], rootNamespace: string): SidecarSelection {
  const ns = pod.metadata.namespace ?? 'default';
  const labels = pod.metadata.labels ?? {};
  const inNs = sidecars.filter((s) => (s.metadata.namespace ?? 'default') === ns);
  const bySelector = inNs.filter((s) => {
    const sel = selectorLabels(s);
    return sel !== null && matches(sel, labels);
  });
  return (
    pick(bySelector) ??
    pick(inNs.filter((s) => selectorLabels(s) === null)) ??
    pick(sidecars.filter((s) => (s.metadata.namespace ?? 'default') === rootNamespace && selectorLabels(s) === null)) ?? {
      sidecar: null,
      conflicts: [],
    }
  );
}
