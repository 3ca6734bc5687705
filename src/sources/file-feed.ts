// The file source as a Feed: pods name their netns with the `sluice.dev/netns` annotation
// (labs and tests only; the Kubernetes source ignores it).
import { ANNOTATIONS } from '../policy/annotations.js';
import { buildPolicies } from '../policy/build.js';
import type { NodeConfig } from '../policy/config.js';
import type { Pod } from '../policy/k8s.js';
import { parseObjects } from './file.js';
import { readSourceTextOf, type SourceSpec } from './index.js';
import { CONFIRM_MS, StableText } from './stable.js';
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
  // Removal waits until the text has been the same for CONFIRM_MS (src/sources/stable.ts):
  // an unsettled read asks for another one CONFIRM_MS later, through the change callback.
  const stable = new StableText();
  let parsed: { text: string; records: PodRecord[]; errors: string[]; duplicates: string[] | undefined } | null = null;
  let notify: (() => void) | null = null;
  let unconfirmed = false;
  let timer: NodeJS.Timeout | null = null;
  const askAgain = () => {
    if (!unconfirmed || !notify || timer) return;
    timer = setTimeout(() => {
      timer = null;
      notify?.();
    }, CONFIRM_MS);
  };
  return {
    async start(onChange) {
      notify = onChange;
      watch = watchFile(spec.path, onChange);
      askAgain();
    },
    read(): SourceRead {
      let text: string;
      try {
        text = readSourceTextOf(spec);
      } catch (e) {
        stable.settled(null);
        throw e; // an InputError naming the path
      }
      lastOk = Date.now();
      const confirmed = stable.settled(text);
      unconfirmed = !confirmed;
      askAgain();
      // Every resync reads the file; parsing 512 pods takes ~100 ms of the event loop, so
      // an unchanged text reuses the last parse (the records are never mutated downstream).
      if (parsed?.text !== text) {
        const snapshot = parseObjects(text, spec.path);
        const results = buildPolicies(snapshot.pods, snapshot.sidecars, config);
        const records: PodRecord[] = results.map((result, i) => ({ result, netns: annotationNetns(snapshot.pods[i]!) }));
        parsed = { text, records, errors: snapshot.errors, duplicates: snapshot.duplicates };
      }
      const { records, errors, duplicates } = parsed;
      return { records, errors, duplicates, prune: confirmed && errors.length === 0 };
    },
    status(): SourceStatus {
      return { kind: 'file', synced: true, staleSeconds: Math.round((Date.now() - lastOk) / 1000), detail: { path: spec.path } };
    },
    async close() {
      watch?.close();
      notify = null;
      if (timer) clearTimeout(timer);
    },
  };
}
