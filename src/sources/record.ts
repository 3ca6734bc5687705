// What a source hands the reconciler: each pod's policy result and where its network
// namespace is, decided once by the source (the file source from its annotation, the
// Kubernetes source from the pod's cgroup on the host).
import type { PolicyResult } from '../policy/build.js';

export type NetnsTarget =
  /** Open this path (an nsfs file) to find the pod's netns. */
  | { kind: 'path'; path: string }
  /** Not known yet (the sandbox is starting): retried, reported as pending. */
  | { kind: 'pending'; reason: string }
  /** Cannot be known from this source: the pod is rejected with the reason. */
  | { kind: 'missing'; reason: string };

export interface PodRecord {
  result: PolicyResult;
  netns: NetnsTarget;
  /** The pod's UID where the source knows it (Kubernetes). */
  uid?: string;
}

export interface SourceStatus {
  kind: 'file' | 'kubernetes';
  /** The first full read (list) is done; before it nothing is reconciled or pruned. */
  synced: boolean;
  /** Seconds since the source last answered (0 while connected). */
  staleSeconds: number;
  detail?: Record<string, unknown>;
}

/** One read of a source, ready to reconcile. */
export interface SourceRead {
  records: PodRecord[];
  /** Documents or objects that could not be used; each names the object and the fix. */
  errors: string[];
  /** False when the read may be incomplete: then nothing unclaimed is removed. */
  prune: boolean;
}

/** A running source: the daemon calls read() after every change and on each resync. */
export interface Feed {
  start(onChange: () => void): Promise<void>;
  /** null before the first full read: nothing is reconciled yet. */
  read(): SourceRead | null;
  status(): SourceStatus;
  close(): Promise<void>;
}
