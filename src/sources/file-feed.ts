// The file source as a Feed: pods name their netns with the `sluice.dev/netns` annotation
// (labs and tests only; the Kubernetes source ignores it).
import { ANNOTATIONS } from '../policy/annotations.js';
import { buildPolicies } from '../policy/build.js';
import type { NodeConfig } from '../policy/config.js';
import type { Pod } from '../policy/k8s.js';
import { readSnapshot, type SourceSpec } from './index.js';
import type { Feed, NetnsTarget, PodRecord, SourceRead, SourceStatus } from './record.js';
import { watchFile, type FileWatch } from './watch.js';

export function annotationNetns(pod: Pod): NetnsTarget {
  const path: unknown = pod.metadata.annotations?.[ANNOTATIONS.netns];
  if (path === undefined || path === null || path === '') return { kind: 'missing', reason: `no ${ANNOTATIONS.netns} annotation; add the pod's netns path` };
  if (typeof path !== 'string') return { kind: 'missing', reason: `annotation ${ANNOTATIONS.netns} must be a string path, not ${typeof path}` };
  return { kind: 'path', path };
}

export function fileFeed(spec: Extract<SourceSpec, { kind: 'file' }>, config: NodeConfig): Feed {
  let watch: FileWatch | null = null;
  let lastOk = Date.now();
  return {
    async start(onChange) {
      watch = watchFile(spec.path, onChange);
    },
    read(): SourceRead {
      const snapshot = readSnapshot(spec); // throws InputError when unreadable
      lastOk = Date.now();
      const results = buildPolicies(snapshot.pods, snapshot.sidecars, config);
      const records: PodRecord[] = results.map((result, i) => ({ result, netns: annotationNetns(snapshot.pods[i]!) }));
      return { records, errors: snapshot.errors, prune: snapshot.errors.length === 0 };
    },
    status(): SourceStatus {
      return { kind: 'file', synced: true, staleSeconds: Math.round((Date.now() - lastOk) / 1000), detail: { path: spec.path } };
    },
    async close() {
      watch?.close();
    },
  };
}
