// What one mesh request did, read from the client's report: the proxy hops (the
// `x-sluice-hop` headers each HAProxy adds), the app's answer, and the client's own view.
import { ERROR_HEADER, HOP_HEADER } from './haproxy.js';
import type { MeshRequest } from './mesh.js';

export interface MeshHop {
  pod: string;
  listener: string;
  port: number;
  family: number;
  /** The client address HAProxy saw on the accepted connection. */
  peer: string;
  /**
   * HAProxy's `dst` for the accepted connection: SO_ORIGINAL_DST for IPv4; for IPv6 plain
   * getsockname(), because HAProxy never asks IP6T_SO_ORIGINAL_DST.
   */
  kernelDst: string;
  /** The upstream connection HAProxy made: its source IP and its destination. */
  forwardedFrom: string;
  forwardedTo: string;
}

export interface MeshObservation {
  id: string;
  ok: boolean;
  error?: string;
  status?: number;
  /** Proxy hops in request order (from the `x-sluice-hop` response headers). */
  hops: MeshHop[];
  /** The app's answer: which app, the peer and local endpoints it saw, the path, and `x-sluice-via`. */
  app: { pod: string; peer: string; local: string; path: string; via: string[]; uid: number } | null;
  /** getpeername() on the client's own socket: capture must not change it. */
  clientPeer: string;
  /** The client's uid, as the client process reported it. */
  clientUid?: number;
}

export function ipOf(endpoint: string): string {
  const m = /^\[(.*)\]:\d+$/.exec(endpoint) ?? /^(.*):\d+$/.exec(endpoint);
  return m ? m[1]! : endpoint;
}

function endpointOf(ip: string, port: string | undefined): string {
  if (!ip) return '';
  return ip.includes(':') ? `[${ip}]:${port ?? ''}` : `${ip}:${port ?? ''}`;
}

export function parseHop(value: string): MeshHop {
  const kv = new Map(value.split(/\s+/).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] as const));
  return {
    pod: kv.get('pod') ?? '',
    listener: kv.get('listener') ?? '',
    port: Number(kv.get('port')),
    family: Number(kv.get('family')),
    peer: kv.get('peer') ?? '',
    kernelDst: endpointOf(kv.get('kdst') ?? '', kv.get('kport')),
    forwardedFrom: kv.get('fwd-src') ?? '',
    forwardedTo: endpointOf(kv.get('fwd-dst') ?? '', kv.get('fwd-port')),
  };
}

interface ClientReport {
  ok: boolean;
  error?: string;
  status?: number;
  rawHeaders?: string[];
  body?: string;
  clientPeer?: string;
  uid?: number;
}

export function observationOf(r: MeshRequest, code: number | null, stdout: string, stderr: string): MeshObservation {
  const base: MeshObservation = { id: r.id, ok: false, hops: [], app: null, clientPeer: '' };
  let report: ClientReport;
  try {
    report = JSON.parse(stdout.trim()) as ClientReport;
  } catch {
    return { ...base, error: `client exited ${code} without a report: ${(stderr || stdout).trim() || '(no output)'}` };
  }
  const obs: MeshObservation = { ...base, clientPeer: report.clientPeer ?? '', ...(report.uid !== undefined ? { clientUid: report.uid } : {}) };
  if (!report.ok) return { ...obs, error: report.error ?? 'request failed' };
  obs.status = report.status;
  const headers: [string, string][] = [];
  const raw = report.rawHeaders ?? [];
  for (let i = 0; i + 1 < raw.length; i += 2) headers.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  // Each proxy appends its hop on the way back: the last header is the first hop.
  obs.hops = headers.filter(([k]) => k === HOP_HEADER).map(([, v]) => parseHop(v)).reverse();
  if (report.status !== 200) {
    const why = headers.find(([k]) => k === ERROR_HEADER)?.[1] ?? report.body?.trim() ?? '';
    return { ...obs, error: `HTTP ${report.status}${why ? `: ${why}` : ''}` };
  }
  try {
    const body = JSON.parse(report.body ?? '') as { pod: string; peer: string; local: string; path: string; via?: string; uid: number };
    obs.app = { pod: body.pod, peer: body.peer, local: body.local, path: body.path, via: body.via ? body.via.split(/,\s*/) : [], uid: body.uid };
    obs.ok = true;
  } catch {
    obs.error = `the app's answer is not JSON: ${report.body}`;
  }
  return obs;
}

/** One line per request: `a/outbound:15001 → b/inbound:15006 → b app (peer 127.0.0.6, local 10.1.0.3:8080)`. */
export function describePath(o: MeshObservation): string {
  if (!o.ok) return `${o.id}: FAILED ${o.error}${o.hops.length ? ` after ${o.hops.map((h) => `${h.pod}/${h.listener}:${h.port}`).join(' → ')}` : ''}`;
  const hops = o.hops.map((h) => `${h.pod}/${h.listener}:${h.port} (peer ${h.peer}, dst ${h.kernelDst} → ${h.forwardedFrom} → ${h.forwardedTo})`);
  return `${o.id}: ${[...hops, `${o.app!.pod} app (peer ${o.app!.peer}, local ${o.app!.local})`].join(' → ')}`;
}
