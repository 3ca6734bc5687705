// Pod annotation keys (capture-spec "Per-pod policy") and list parsing.
import { PolicyError } from './errors.js';
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

/** A field being parsed, for error messages. */
export interface FieldRef {
  object: string;
  field: string;
}

export function parsePortList(value: string, at: FieldRef, allowWildcard: boolean): '*' | number[] {
  const items = splitList(value);
  if (items.includes('*')) {
    if (allowWildcard && items.length === 1) return '*';
    throw new PolicyError(
      'BAD_WILDCARD',
      at.object,
      at.field,
      value,
      allowWildcard ? "'*' must stand alone; use '*' or a list of ports" : "'*' is not allowed here; list the ports",
    );
  }
  return dedupe(items.map((item) => parsePort(item, value, at)));
}

export function parsePort(item: string, whole: string, at: FieldRef): number {
  const n = /^\d{1,5}$/.test(item) ? Number(item) : NaN;
  if (!isPort(n)) {
    throw new PolicyError('BAD_PORT', at.object, at.field, whole, `'${item}' is not a port; use numbers in 1..65535`);
  }
  return n;
}

export function parseCidrList(value: string, at: FieldRef, allowWildcard: boolean): '*' | string[] {
  const items = splitList(value);
  if (items.includes('*')) {
    if (allowWildcard && items.length === 1) return '*';
    throw new PolicyError(
      'BAD_WILDCARD',
      at.object,
      at.field,
      value,
      allowWildcard ? "'*' must stand alone; use '*' or a list of CIDRs" : "'*' is not allowed in an exclude list; list the CIDRs to exclude",
    );
  }
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

export function parseInterfaceList(value: string, at: FieldRef): string[] {
  const items = splitList(value);
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
