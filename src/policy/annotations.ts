// Pod annotation keys (capture-spec "Per-pod policy") and list parsing.
import { PolicyError } from './errors.js';
import type { ObjectMeta } from './k8s.js';
import { tooMany } from './limits.js';
import { isPort, parseCidr } from './net.js';

export const ANNOTATIONS = Object.freeze({
  status: 'sidecar.istio.io/status',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  excludeInterfaces: 'traffic.sidecar.istio.io/excludeInterfaces',
  statusPort: 'status.sidecar.istio.io/port',
  rerouteInterfaces: 'istio.io/reroute-virtual-interfaces',
  kubevirtInterfaces: 'traffic.sidecar.istio.io/kubevirtInterfaces',
  /** sluice's own: the pod's network namespace path (file source). */
  netns: 'sluice.dev/netns',
});

/** Annotations a Sidecar object may carry for the pods it selects. */
export const SIDECAR_ANNOTATION_PREFIX = 'traffic.sidecar.istio.io/';

export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The items of a list annotation, refused before parsing any when there are over `max`. */
function boundedList(value: string, at: FieldRef, max: number, what: string): string[] {
  const items = splitList(value);
  if (items.length > max) throw tooMany(at.object, at.field, items.length, max, what);
  return items;
}

/**
 * Kubernetes annotation and label values are strings; a file source can hold anything
 * (`true`, `{}`, `42`). Each other value is an error naming its key, never a crash later.
 */
export function nonStringValues(meta: ObjectMeta, object: string): PolicyError[] {
  const errors: PolicyError[] = [];
  for (const [kind, map] of [
    ['annotation', meta.annotations],
    ['label', meta.labels],
  ] as const) {
    for (const [key, v] of Object.entries((map ?? {}) as Record<string, unknown>)) {
      if (typeof v === 'string') continue;
      errors.push(new PolicyError('BAD_ANNOTATION', object, `${kind} ${key}`, JSON.stringify(v) ?? String(v), `${kind} values are strings; quote it (e.g. "true", "42")`));
    }
  }
  return errors;
}

/** A field being parsed, for error messages. */
export interface FieldRef {
  object: string;
  field: string;
}

/** True for a lone '*' where one is allowed; a '*' anywhere else is a BAD_WILDCARD. */
function wildcard(items: string[], value: string, at: FieldRef, allowed: boolean, say: { alone: string; refused: string }): boolean {
  if (!items.includes('*')) return false;
  if (allowed && items.length === 1) return true;
  throw new PolicyError('BAD_WILDCARD', at.object, at.field, value, allowed ? `'*' must stand alone; use '*' or a list of ${say.alone}` : say.refused);
}

export function parsePortList(value: string, at: FieldRef, allowWildcard: boolean, max = Infinity): '*' | number[] {
  const items = boundedList(value, at, max, 'ports');
  if (wildcard(items, value, at, allowWildcard, { alone: 'ports', refused: "'*' is not allowed here; list the ports" })) return '*';
  return dedupe(items.map((item) => parsePort(item, value, at)));
}

export function parsePort(item: string, whole: string, at: FieldRef): number {
  const n = /^\d{1,5}$/.test(item) ? Number(item) : NaN;
  if (!isPort(n)) {
    throw new PolicyError('BAD_PORT', at.object, at.field, whole, `'${item}' is not a port; use numbers in 1..65535`);
  }
  return n;
}

export function parseCidrList(value: string, at: FieldRef, allowWildcard: boolean, max = Infinity): '*' | string[] {
  const items = boundedList(value, at, max, 'CIDRs');
  if (wildcard(items, value, at, allowWildcard, { alone: 'CIDRs', refused: "'*' is not allowed in an exclude list; list the CIDRs to exclude" })) return '*';
  return dedupe(
    items.map((item) => {
      const parsed = parseCidr(item);
      if (!parsed) {
        throw new PolicyError('BAD_CIDR', at.object, at.field, value, `'${item}' is not a CIDR; use forms like 10.0.0.0/8 or fd00::/8`);
      }
      return parsed.text;
    }),
  );
}

export function parseInterfaceList(value: string, at: FieldRef, max = Infinity): string[] {
  const items = boundedList(value, at, max, 'interfaces');
  for (const item of items) {
    // Linux interface names: at most 15 bytes, no '/', no whitespace.
    if (item.length > 15 || /[\s/:]/.test(item)) {
      throw new PolicyError('BAD_OBJECT', at.object, at.field, value, `'${item}' is not an interface name (at most 15 characters, no '/', ':' or spaces)`);
    }
  }
  return dedupe(items);
}

export function dedupe<T>(items: T[]): T[] {
  return [...new Set(items)];
}
