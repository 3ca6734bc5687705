// File source: multi-document Kubernetes YAML holding Pods and Sidecars.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { SIDECAR_API_VERSIONS, objectName, type Pod, type Sidecar } from '../policy/k8s.js';
import { parseDocuments, YAML_LIMITS } from './yaml.js';

export interface SourceSnapshot {
  pods: Pod[];
  sidecars: Sidecar[];
  /** Documents that could not be used; each names the document and the fix. */
  errors: string[];
  /** Objects named twice (namespace/name); the first was kept. They do not block pruning. */
  duplicates?: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses YAML text. A bad document is reported and skipped; the others still count. */
export function parseObjects(text: string, sourceName: string): SourceSnapshot {
  const out: SourceSnapshot = { pods: [], sidecars: [], errors: [] };
  parseDocuments(text).forEach((doc, i) => {
    const where = `${sourceName} document ${i + 1}`;
    if ('error' in doc) {
      out.errors.push(`${where}: ${doc.error}`);
      return;
    }
    const value = doc.value;
    if (value === null || value === undefined) return;
    const items = isObject(value) && value.kind === 'List' && Array.isArray(value.items) ? value.items : [value];
    items.forEach((item: unknown, j: number) => addObject(out, item, items.length > 1 ? `${where} item ${j + 1}` : where));
  });
  return dropDuplicates(out);
}

/**
 * Two objects of one kind with the same namespace/name would take turns on every pass:
 * the first one is used, the others are reported.
 */
function dropDuplicates(snap: SourceSnapshot): SourceSnapshot {
  const duplicates: string[] = [];
  const keep = <T extends Pod | Sidecar>(list: T[]): T[] => {
    const seen = new Set<string>();
    return list.filter((o) => {
      const key = objectName(o.metadata);
      if (!seen.has(key)) {
        seen.add(key);
        return true;
      }
      duplicates.push(`${o.kind} ${key} appears more than once; the first one is used, remove the others`);
      return false;
    });
  };
  return { ...snap, pods: keep(snap.pods), sidecars: keep(snap.sidecars), duplicates };
}

function addObject(out: SourceSnapshot, value: unknown, where: string): void {
  if (!isObject(value)) {
    out.errors.push(`${where}: expected a Kubernetes object (a mapping with kind and metadata)`);
    return;
  }
  const meta = value.metadata;
  if (value.kind !== 'Pod' && value.kind !== 'Sidecar') return; // other kinds are not ours
  if (!isObject(meta) || typeof meta.name !== 'string' || meta.name === '') {
    out.errors.push(`${where}: ${String(value.kind)} has no metadata.name; add one`);
    return;
  }
  for (const key of ['labels', 'annotations'] as const) {
    if (meta[key] !== undefined && !isObject(meta[key])) {
      out.errors.push(`${where}: ${String(value.kind)} ${meta.name}: metadata.${key} must be a mapping`);
      return;
    }
  }
  if (meta.namespace === undefined) meta.namespace = 'default';
  if (value.kind === 'Pod') {
    const shapeError = podShapeError(value);
    if (shapeError) out.errors.push(`${where}: Pod ${meta.name}: ${shapeError}`);
    else out.pods.push(value as unknown as Pod);
    return;
  }
  if (!SIDECAR_API_VERSIONS.includes(String(value.apiVersion))) {
    out.errors.push(`${where}: Sidecar ${meta.name}: apiVersion ${String(value.apiVersion)} is not supported; use one of ${SIDECAR_API_VERSIONS.join(', ')}`);
    return;
  }
  if (value.spec !== undefined && !isObject(value.spec)) {
    out.errors.push(`${where}: Sidecar ${meta.name}: spec must be a mapping`);
    return;
  }
  out.sidecars.push(value as unknown as Sidecar);
}

/** The shapes buildPolicy walks; anything else is reported instead of crashing later. */
function podShapeError(pod: Record<string, unknown>): string | null {
  const spec = pod.spec;
  if (spec !== undefined && !isObject(spec)) return 'spec must be a mapping';
  for (const key of ['containers', 'initContainers'] as const) {
    const list = isObject(spec) ? spec[key] : undefined;
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every(isObject)) return `spec.${key} must be a list of containers`;
    for (const c of list) {
      if (c.securityContext !== undefined && !isObject(c.securityContext)) return `spec.${key}[].securityContext must be a mapping`;
      if (c.env !== undefined && (!Array.isArray(c.env) || !c.env.every(isObject))) return `spec.${key}[].env must be a list`;
    }
  }
  const status = pod.status;
  if (status !== undefined && !isObject(status)) return 'status must be a mapping';
  if (isObject(status) && status.podIPs !== undefined && (!Array.isArray(status.podIPs) || !status.podIPs.every(isObject))) {
    return 'status.podIPs must be a list of {ip: ADDRESS}';
  }
  if (isObject(status) && status.podIP !== undefined && typeof status.podIP !== 'string') return 'status.podIP must be a string';
  return null;
}

/** The file's text, refused before reading when it is over the size limit. */
export function readSourceText(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > YAML_LIMITS.fileBytes) throw new Error(`it is ${size} bytes, over the limit of ${YAML_LIMITS.fileBytes}`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

export function readSourceFile(path: string): SourceSnapshot {
  return parseObjects(readSourceText(path), path);
}
