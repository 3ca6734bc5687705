// (Pod, Sidecars, config) → CapturePolicy, or the validation errors that reject it.
import {
  ANNOTATIONS,
  SIDECAR_ANNOTATION_PREFIX,
  dedupe,
  nonStringValues,
  parseCidrList,
  parseInterfaceList,
  parsePort,
  parsePortList,
  type FieldRef,
} from './annotations.js';
import { isId, type NodeConfig } from './config.js';
import { PolicyError } from './errors.js';
import { policyLimitErrors } from './limits.js';
import { INIT_CONTAINER, PROXY_CONTAINER, objectName, type Pod, type Sidecar } from './k8s.js';
import { canonicalIp, isLoopbackRange, isPort } from './net.js';
import { selectSidecar } from './sidecar.js';
import {
  ALWAYS_EXCLUDED_INBOUND_PORTS,
  DEFAULT_STATUS_PORT,
  type BindExclusion,
  type CapturePolicy,
  type PodRef,
} from './types.js';

/** istio-iptables' owner-group filters (env of istio-init). */
export const OWNER_GROUP_ENV = ['ISTIO_OUTBOUND_OWNER_GROUPS', 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE'] as const;

export type PolicyResult =
  | { status: 'captured'; pod: PodRef; policy: CapturePolicy; warnings: string[] }
  | { status: 'uncaptured'; pod: PodRef; reason: string; warnings: string[] }
  | { status: 'rejected'; pod: PodRef; errors: PolicyError[]; warnings: string[] };

export function podRef(pod: Pod): PodRef {
  return { namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name ?? '' };
}

/** One annotation value with the object it came from, after precedence. */
interface Layered {
  value: string;
  at: FieldRef;
}

/** Precedence, lowest to highest: config, the applied Sidecar, the pod's own annotations. */
function annotationLookup(pod: Pod, sidecar: Sidecar | null, config: NodeConfig): (key: string) => Layered | undefined {
  const podObj = `Pod ${objectName(pod.metadata)}`;
  const podAnn = pod.metadata.annotations ?? {};
  const scAnn = sidecar?.metadata.annotations ?? {};
  return (key) => {
    if (key in podAnn) return { value: String(podAnn[key]), at: { object: podObj, field: `annotation ${key}` } };
    if (sidecar && key.startsWith(SIDECAR_ANNOTATION_PREFIX) && key in scAnn) {
      return { value: String(scAnn[key]), at: { object: `Sidecar ${objectName(sidecar.metadata)}`, field: `annotation ${key}` } };
    }
    if (key in config.annotations) return { value: config.annotations[key]!, at: { object: 'config', field: `annotations.${key}` } };
    return undefined;
  };
}

function proxyContainer(pod: Pod) {
  const all = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  return all.find((c) => c.name === PROXY_CONTAINER);
}

/** istio-init's environment: istio-iptables settings that have no pod annotation. */
function initEnv(pod: Pod, name: string): string | undefined {
  const init = (pod.spec?.initContainers ?? []).find((c) => c.name === INIT_CONTAINER);
  return init?.env?.find((e) => e.name === name)?.value;
}

export function buildPolicy(pod: Pod, sidecars: Sidecar[], config: NodeConfig): PolicyResult {
  const ref = podRef(pod);
  const podObj = `Pod ${objectName(pod.metadata)}`;
  const annotations = pod.metadata.annotations ?? {};
  const warnings: string[] = [];
  const typeErrors = nonStringValues(pod.metadata, podObj);
  if (typeErrors.length > 0) return { status: 'rejected', pod: ref, errors: typeErrors, warnings };

  if (!(ANNOTATIONS.status in annotations)) {
    return { status: 'uncaptured', pod: ref, reason: `no ${ANNOTATIONS.status} annotation (no sidecar injected)`, warnings };
  }

  const selection = selectSidecar(pod, sidecars, config.rootNamespace);
  const sidecar = selection.sidecar;
  if (selection.conflicts.length > 0 && sidecar) {
    warnings.push(
      `Sidecar conflict: ${objectName(sidecar.metadata)} applies (oldest), also matching: ${selection.conflicts.join(', ')}; give each workload one Sidecar`,
    );
  }
  const get = annotationLookup(pod, sidecar, config);
  const errors: PolicyError[] = sidecar ? nonStringValues({ annotations: sidecar.metadata.annotations ?? {} }, `Sidecar ${objectName(sidecar.metadata)}`) : [];
  const max = config.maxSetEntriesPerPod;
  // Each field is parsed on its own so one bad value reports every other bad value too.
  function field<T>(key: string, fallback: T, parse: (l: Layered) => T): T {
    const layered = get(key);
    if (!layered) return fallback;
    try {
      return parse(layered);
    } catch (e) {
      if (e instanceof PolicyError) {
        errors.push(e);
        return fallback;
      }
      throw e;
    }
  }

  const mode = field(ANNOTATIONS.interceptionMode, 'REDIRECT', (l) => {
    const m = l.value.trim().toUpperCase();
    if (m !== 'REDIRECT' && m !== 'TPROXY' && m !== 'NONE') {
      throw new PolicyError('BAD_MODE', l.at.object, l.at.field, l.value, 'use REDIRECT, TPROXY or NONE');
    }
    return m;
  });
  if (mode === 'NONE' && errors.length === 0) {
    return { status: 'uncaptured', pod: ref, reason: `${ANNOTATIONS.interceptionMode} is NONE`, warnings };
  }

  const includeOutboundIPRanges = field(ANNOTATIONS.includeOutboundIPRanges, '*' as '*' | string[], (l) => parseCidrList(l.value, l.at, true, max));
  const excludeOutboundIPRanges = field(ANNOTATIONS.excludeOutboundIPRanges, [] as string[], (l) => parseCidrList(l.value, l.at, false, max) as string[]);
  const includeOutboundPorts = field(ANNOTATIONS.includeOutboundPorts, [] as number[], (l) => parsePortList(l.value, l.at, false, max) as number[]);
  const excludeOutboundPorts = field(ANNOTATIONS.excludeOutboundPorts, [] as number[], (l) => parsePortList(l.value, l.at, false, max) as number[]);
  let includeInboundPorts = field(ANNOTATIONS.includeInboundPorts, '*' as '*' | number[], (l) => parsePortList(l.value, l.at, true, max));
  const excludeInboundAnn = field(ANNOTATIONS.excludeInboundPorts, [] as number[], (l) => parsePortList(l.value, l.at, false, max) as number[]);
  const statusPort = field(ANNOTATIONS.statusPort, DEFAULT_STATUS_PORT, (l) => {
    const v = l.value.trim();
    return v === '0' ? 0 : parsePort(v, l.value, l.at);
  });
  const excludeInterfaces = field(ANNOTATIONS.excludeInterfaces, [] as string[], (l) => parseInterfaceList(l.value, l.at, max));
  const reroute = field(ANNOTATIONS.rerouteInterfaces, null as string[] | null, (l) => parseInterfaceList(l.value, l.at, max));
  const rerouteInterfaces = reroute ?? field(ANNOTATIONS.kubevirtInterfaces, [] as string[], (l) => parseInterfaceList(l.value, l.at, max));

  // Proxy identity: the istio-proxy container's runAsUser/runAsGroup, else the node config.
  const proxy = proxyContainer(pod);
  const sc = proxy?.securityContext ?? {};
  const idField = (name: 'runAsUser' | 'runAsGroup'): number | undefined => {
    const v = sc[name];
    if (v === undefined || v === null) return undefined;
    if (!isId(v)) {
      errors.push(new PolicyError('BAD_ID', podObj, `containers[${PROXY_CONTAINER}].securityContext.${name}`, String(v), 'use a numeric id in 0..4294967294'));
      return undefined;
    }
    return v;
  };
  const runAsUser = idField('runAsUser');
  const runAsGroup = idField('runAsGroup');
  const proxyUids = runAsUser !== undefined ? [runAsUser] : [...config.proxyUids];
  const proxyGids = runAsGroup !== undefined ? [runAsGroup] : runAsUser !== undefined ? [runAsUser] : [...(config.proxyGids ?? config.proxyUids)];

  // Owner groups: capture only (or all but) some groups' traffic. Not implemented yet, so
  // refused rather than ignored: ignoring them would capture traffic Istio leaves alone.
  for (const name of OWNER_GROUP_ENV) {
    const v = initEnv(pod, name);
    if (v !== undefined && v.trim() !== '' && v.trim() !== '*') {
      errors.push(new PolicyError('UNSUPPORTED', podObj, `containers[${INIT_CONTAINER}].env.${name}`, v, `sluice does not capture by owner group; remove ${name} (all groups are captured)`));
    }
  }

  const dnsEnv = proxy?.env?.find((e) => e.name === 'ISTIO_META_DNS_CAPTURE')?.value;
  const dnsCapture = dnsEnv !== undefined ? dnsEnv.trim().toLowerCase() === 'true' : config.dnsCapture;

  const podIPs: string[] = [];
  const rawIPs = pod.status?.podIPs?.length ? pod.status.podIPs.map((p) => p.ip ?? '') : pod.status?.podIP ? [pod.status.podIP] : [];
  rawIPs.forEach((ip, i) => {
    const c = canonicalIp(ip);
    if (c === null) {
      errors.push(new PolicyError('BAD_ADDRESS', podObj, `status.podIPs[${i}].ip`, ip, 'use an IPv4 or IPv6 address'));
    } else podIPs.push(c);
  });

  // Sidecar listeners with captureMode NONE feed capture (a deliberate difference from Istio).
  const excludeOutboundBinds: BindExclusion[] = [];
  let sidecarInboundExcludes: number[] = [];
  if (sidecar) {
    const scObj = `Sidecar ${objectName(sidecar.metadata)}`;
    (sidecar.spec?.ingress ?? []).forEach((l, i) => {
      if ((l.captureMode ?? '').toUpperCase() !== 'NONE') return;
      const n = l.port?.number;
      if (typeof n !== 'number' || !isPort(n)) {
        errors.push(new PolicyError('BAD_PORT', scObj, `spec.ingress[${i}].port.number`, String(n), 'an ingress listener needs a port in 1..65535'));
        return;
      }
      sidecarInboundExcludes.push(n);
    });
    (sidecar.spec?.egress ?? []).forEach((l, i) => {
      if ((l.captureMode ?? '').toUpperCase() !== 'NONE' || !l.bind) return;
      if (l.bind.startsWith('unix://')) return;
      const address = canonicalIp(l.bind);
      if (address === null) {
        errors.push(new PolicyError('BAD_ADDRESS', scObj, `spec.egress[${i}].bind`, l.bind, 'use an IP address (or unix:// for a local socket)'));
        return;
      }
      // A local bind is the proxy's own listener, which never sees captured traffic anyway.
      if (isLoopbackRange(address) || address === '0.0.0.0' || address === '::') return;
      const n = l.port?.number;
      if (n !== undefined && (typeof n !== 'number' || !isPort(n))) {
        errors.push(new PolicyError('BAD_PORT', scObj, `spec.egress[${i}].port.number`, String(n), 'use a port in 1..65535'));
        return;
      }
      excludeOutboundBinds.push({ address, port: n ?? null });
    });
    sidecarInboundExcludes = dedupe(sidecarInboundExcludes);
  }

  if (errors.length > 0) return { status: 'rejected', pod: ref, errors, warnings };

  const excludeInboundPorts = dedupe([
    ...ALWAYS_EXCLUDED_INBOUND_PORTS,
    ...(statusPort !== 0 ? [statusPort] : []),
    ...excludeInboundAnn,
    ...sidecarInboundExcludes,
  ]);
  if (includeInboundPorts !== '*') {
    includeInboundPorts = includeInboundPorts.filter((p) => !sidecarInboundExcludes.includes(p));
  }

  const policy: CapturePolicy = {
    pod: ref,
    podIPs,
    proxyUids,
    proxyGids,
    ports: { ...config.ports },
    includeOutboundIPRanges,
    excludeOutboundIPRanges,
    includeOutboundPorts,
    excludeOutboundPorts,
    includeInboundPorts,
    excludeInboundPorts,
    excludeInterfaces,
    rerouteInterfaces,
    excludeOutboundBinds,
    dnsCapture,
    ...(mode === 'TPROXY' ? { interceptionMode: 'TPROXY' as const } : {}),
    sidecar: sidecar ? objectName(sidecar.metadata) : null,
  };
  const limitErrors = policyLimitErrors(policy, podObj, max);
  if (limitErrors.length > 0) return { status: 'rejected', pod: ref, errors: limitErrors, warnings };
  return { status: 'captured', pod: ref, policy, warnings };
}

/** Every pod's result. An unexpected throw rejects that pod alone, never the others. */
export function buildPolicies(pods: Pod[], sidecars: Sidecar[], config: NodeConfig): PolicyResult[] {
  return pods.map((pod) => {
    try {
      return buildPolicy(pod, sidecars, config);
    } catch (e) {
      const err = new PolicyError('BAD_OBJECT', `Pod ${objectName(pod.metadata)}`, '(object)', '', `could not be read (${(e as Error).message}); check its shape against a Kubernetes Pod`);
      return { status: 'rejected', pod: podRef(pod), errors: [err], warnings: [] };
    }
  });
}
