// Node-wide defaults (`--config PATH`): the layer between built-ins and Sidecars.
import { PolicyError } from './errors.js';
import { DEFAULT_MAX_SET_ENTRIES, KERNEL_LIMITS, MAX_SET_ENTRIES_LIMIT } from './limits.js';
import { isPort } from './net.js';
import { DEFAULT_PORTS, DEFAULT_PROXY_UID, type CapturePorts } from './types.js';

export interface NodeConfig {
  ports: CapturePorts;
  proxyUids: number[];
  /** null: the same as proxyUids. */
  proxyGids: number[] | null;
  rootNamespace: string;
  dnsCapture: boolean;
  /** Node-wide defaults for the pod annotations of the spec's input table. */
  annotations: Record<string, string>;
  /** Entries one pod may hold in each port, CIDR, interface and bind set. */
  maxSetEntriesPerPod: number;
}

export const DEFAULT_CONFIG: NodeConfig = Object.freeze({
  ports: DEFAULT_PORTS,
  proxyUids: [DEFAULT_PROXY_UID],
  proxyGids: null,
  rootNamespace: 'istio-system',
  dnsCapture: false,
  annotations: {},
  maxSetEntriesPerPod: DEFAULT_MAX_SET_ENTRIES,
});

const MAX_ID = 0xfffffffe; // (uid_t)-1 means "unset" to the kernel.

export function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_ID;
}

/** Validates a parsed YAML/JSON config object. Unknown keys are errors, so typos are never ignored. */
export function parseNodeConfig(raw: unknown, source: string): NodeConfig {
  const obj = `config ${source}`;
  const fail = (field: string, value: unknown, fix: string): never => {
    throw new PolicyError('BAD_CONFIG', obj, field, JSON.stringify(value) ?? String(value), fix);
  };
  if (raw === null || raw === undefined) return DEFAULT_CONFIG;
  if (typeof raw !== 'object' || Array.isArray(raw)) fail('(root)', raw, 'the config must be a YAML mapping');
  const known = ['ports', 'proxyUids', 'proxyGids', 'rootNamespace', 'dnsCapture', 'annotations', 'maxSetEntriesPerPod'];
  const input = raw as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) fail(key, input[key], `unknown key; known keys are ${known.join(', ')}`);
  }

  const ports: CapturePorts = { ...DEFAULT_PORTS };
  if (input.ports !== undefined) {
    if (typeof input.ports !== 'object' || input.ports === null) fail('ports', input.ports, 'use a mapping such as {outbound: 15001}');
    for (const [k, v] of Object.entries(input.ports as Record<string, unknown>)) {
      if (!(k in ports)) fail(`ports.${k}`, v, 'known ports are outbound, inbound, tunnel, dns');
      if (typeof v !== 'number' || !isPort(v)) fail(`ports.${k}`, v, 'use a port in 1..65535');
      ports[k as keyof CapturePorts] = v as number;
    }
  }
  const ids = (field: string, v: unknown): number[] => {
    if (!Array.isArray(v) || v.length === 0 || !v.every(isId)) fail(field, v, 'use a non-empty list of numeric ids, e.g. [1337]');
    const unique = [...new Set(v as number[])];
    if (unique.length > KERNEL_LIMITS.proxyIds) fail(field, v, `at most ${KERNEL_LIMITS.proxyIds} ids (the kernel policy has room for no more)`);
    return unique;
  };
  const proxyUids = input.proxyUids === undefined ? DEFAULT_CONFIG.proxyUids : ids('proxyUids', input.proxyUids);
  const proxyGids = input.proxyGids === undefined ? null : ids('proxyGids', input.proxyGids);

  let rootNamespace = DEFAULT_CONFIG.rootNamespace;
  if (input.rootNamespace !== undefined) {
    if (typeof input.rootNamespace !== 'string' || input.rootNamespace === '') fail('rootNamespace', input.rootNamespace, 'use a namespace name');
    rootNamespace = input.rootNamespace as string;
  }
  let dnsCapture = false;
  if (input.dnsCapture !== undefined) {
    if (typeof input.dnsCapture !== 'boolean') fail('dnsCapture', input.dnsCapture, 'use true or false');
    dnsCapture = input.dnsCapture as boolean;
  }
  const annotations: Record<string, string> = {};
  if (input.annotations !== undefined) {
    if (typeof input.annotations !== 'object' || input.annotations === null || Array.isArray(input.annotations)) {
      fail('annotations', input.annotations, 'use a mapping of annotation keys to string values');
    }
    for (const [k, v] of Object.entries(input.annotations as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`annotations.${k}`, v, 'annotation values are strings; quote them');
      annotations[k] = v as string;
    }
  }
  let maxSetEntriesPerPod = DEFAULT_MAX_SET_ENTRIES;
  if (input.maxSetEntriesPerPod !== undefined) {
    const v = input.maxSetEntriesPerPod;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SET_ENTRIES_LIMIT) fail('maxSetEntriesPerPod', v, `use a whole number in 1..${MAX_SET_ENTRIES_LIMIT} (half a set map at most)`);
    maxSetEntriesPerPod = v as number;
  }
  return { ports, proxyUids, proxyGids, rootNamespace, dnsCapture, annotations, maxSetEntriesPerPod };
}
