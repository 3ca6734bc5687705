// End-to-end mesh: two pods, each with an app on 8080 (uid 1000) and HAProxy as its
// sidecar proxy (uid/gid 1337), captured by a CaptureBackend. Real HTTP requests go from
// one pod to the other; the response says which proxy listeners the request crossed, and
// the app says what it saw. runMeshScenario() runs one backend; the expectation for each
// request comes from decide() (expectMeshPath), so every backend is held to the spec and
// two backends can be compared request by request (compareMeshRuns).
//
// Sequence, as in a real pod: namespaces, then the apps and proxies start listening, then
// the capture is installed in each pod, then the requests, then uninstall and teardown.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCgroup2Mount } from '../../../src/bpf/system.js';
import { decide, isLocalAddress } from '../../../src/policy/decide.js';
import { cidrContains, formatEndpoint, ipFamily } from '../../../src/policy/net.js';
import type { CapturePolicy, Connection, DecideOptions, Endpoint } from '../../../src/policy/types.js';
import type { CaptureBackend } from './backend.js';
import { makePolicy } from './cases.js';
import { HOP_HEADER, ERROR_HEADER, renderHaproxyConfig, startHaproxy, type HaproxyConfigOptions } from './haproxy.js';
import {
  createMeshTopology,
  destroyAllMeshTopologies,
  MESH_ADDRESSES,
  podTopology,
  POD_NAMES,
  reapStaleMeshLeftovers,
  type MeshTopology,
  type PodName,
} from './mesh-topology.js';
import { processIdentity, runInPod, startPodProcess, waitForLine, type Identity, type PodProcess, type PodProcessOptions } from './mesh-process.js';
import { findTool } from './requirements.js';
import { reapStaleNamespaces } from './topology.js';

export const MESH_APP_PORT = 8080;
export const MESH_APP: Identity = Object.freeze({ uid: 1000, gid: 1000 });
/** HAProxy's identity: Istio's default proxy uid, and gid = uid. */
export const MESH_PROXY: Identity = Object.freeze({ uid: 1337, gid: 1337 });

export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const APP_SCRIPT = 'mesh-app.mjs';
const CLIENT_SCRIPT = 'mesh-client.mjs';

// ---------------------------------------------------------------------------------------
// Requirements

/** Every path component must let "others" through, or uid 1000 cannot run it. */
function othersCanExecute(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    try {
      if ((statSync(p).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (p === dirname(p)) return true;
  }
}

export interface MeshRequirementOptions {
  /** The iptables backend is in the run: iptables-restore and ip6tables-restore. */
  iptables?: boolean;
}

/** Everything the mesh needs, as one message naming what is missing; null when all is there. */
export function meshRequirementsMissing(opts: MeshRequirementOptions = {}): string | null {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('root: run the kernel tests as root (they create namespaces and switch uids)');
  if (!existsSync('/proc/self/ns/net')) missing.push('network namespaces (/proc/self/ns/net)');
  const tools: [string, string][] = [
    ['ip', '`ip` from iproute2'],
    ['ss', '`ss` from iproute2'],
    ['sysctl', '`sysctl` (procps)'],
    ['setpriv', '`setpriv` (util-linux): it starts the apps as uid 1000 and HAProxy as uid 1337'],
    ['haproxy', '`haproxy` (apt-get install haproxy): it plays the sidecar proxy'],
  ];
  if (opts.iptables) tools.push(['iptables-restore', '`iptables-restore` (the iptables package)'], ['ip6tables-restore', '`ip6tables-restore` (the iptables package)']);
  for (const [name, what] of tools) if (!findTool(name)) missing.push(what);
  const haproxy = findTool('haproxy');
  if (haproxy) {
    let vv = '';
    try {
      vv = execFileSync(haproxy, ['-vv'], { encoding: 'utf8', timeout: 10_000 });
    } catch (err) {
      missing.push(`a working haproxy: \`${haproxy} -vv\` failed: ${(err as Error).message}`);
    }
    // SO_ORIGINAL_DST is only read when HAProxy is built with both (src/sock_inet.c).
    if (vv && !/(\+NETFILTER\b|USE_NETFILTER=1)/.test(vv)) missing.push(`haproxy built with netfilter support (USE_NETFILTER): \`${haproxy} -vv\` lacks +NETFILTER, so it cannot read SO_ORIGINAL_DST`);
    if (vv && !/(\+TPROXY\b|USE_TPROXY=1|USE_LINUX_TPROXY=1)/.test(vv)) missing.push(`haproxy built with USE_TPROXY: \`${haproxy} -vv\` lacks +TPROXY, so it never asks SO_ORIGINAL_DST`);
  }
  if (!findCgroup2Mount()) missing.push('a cgroup2 mount (none in /proc/mounts): every mesh process runs in a private child cgroup');
  for (const f of [APP_SCRIPT, CLIENT_SCRIPT]) if (!existsSync(join(FIXTURES_DIR, f))) missing.push(`the fixture ${join(FIXTURES_DIR, f)}`);
  try {
    accessSync(process.execPath, constants.X_OK);
    if (!othersCanExecute(process.execPath)) missing.push(`a node binary uid 1000 can run: ${process.execPath} (or a directory above it) is not executable by others`);
  } catch {
    missing.push(`the node binary ${process.execPath}`);
  }
  return missing.length ? `mesh e2e requirements missing:\n  - ${missing.join('\n  - ')}` : null;
}

// ---------------------------------------------------------------------------------------
// Requests

export interface MeshRequest {
  /** Unique in a run; also the request path (`/<id>`). */
  id: string;
  description: string;
  /** The pod the client runs in, and as whom. */
  from: PodName;
  who: Identity;
  to: Endpoint;
}

const LOOP = { v4: '127.0.0.1', v6: '::1' } as const;
const PASSTHROUGH = { 4: '127.0.0.6', 6: '::6' } as const;

/** The default requests, each for IPv4 and IPv6. */
export function meshRequests(): MeshRequest[] {
  const a = MESH_ADDRESSES.a;
  const b = MESH_ADDRESSES.b;
  return (['v4', 'v6'] as const).flatMap((v): MeshRequest[] => [
    {
      id: `app-a-to-pod-b-${v}`,
      description: "a's app → b's pod IP: a's outbound listener, then b's inbound listener, then b's app from the passthrough source",
      from: 'a',
      who: MESH_APP,
      to: { ip: b[v], port: MESH_APP_PORT },
    },
    {
      id: `app-b-to-pod-a-${v}`,
      description: 'the same, the other way round',
      from: 'b',
      who: MESH_APP,
      to: { ip: a[v], port: MESH_APP_PORT },
    },
    {
      id: `app-a-to-own-pod-ip-${v}`,
      description: "a's app → a's own pod IP: direct (an app connection to a local address is never captured)",
      from: 'a',
      who: MESH_APP,
      to: { ip: a[v], port: MESH_APP_PORT },
    },
    {
      id: `app-a-to-loopback-${v}`,
      description: "a's app → loopback: direct",
      from: 'a',
      who: MESH_APP,
      to: { ip: LOOP[v], port: MESH_APP_PORT },
    },
    {
      id: `proxy-uid-a-to-pod-b-${v}`,
      description: "a client with the proxy's uid in a → b's pod IP: not through a's outbound listener, straight to b's inbound capture",
      from: 'a',
      who: MESH_PROXY,
      to: { ip: b[v], port: MESH_APP_PORT },
    },
  ]);
}

export function requestUrl(r: MeshRequest): string {
  return `http://${formatEndpoint(r.to)}/${r.id}`;
}

// ---------------------------------------------------------------------------------------
// Expectations: the path the spec gives a request, hop by hop, from decide()

export interface ExpectedHop {
  pod: PodName;
  listener: 'outbound' | 'inbound';
  port: number;
  /** The source address the listener sees. */
  peer: string;
  /** What the proxy must learn as the original destination, and so connect to. */
  originalDst: string;
  /** The source the proxy's own upstream connection uses ('' when the proxy answers itself: a loop). */
  forwardedFrom: string;
  /** Where the proxy connects: the original destination ('' when it answers a loop itself). */
  forwardedTo: string;
  /** The spec step that sent the connection to this listener. */
  step: string;
}

export interface MeshExpectation {
  hops: ExpectedHop[];
  /** The app that answers: its pod, the peer IP it sees, and its local endpoint. */
  app: { pod: PodName; peer: string; local: string } | null;
  /** A capture loop (the same listener twice): HAProxy answers 508. */
  loop: boolean;
  /** decide() steps, for messages. */
  trace: string[];
}

const PODS_BY_IP = new Map<string, PodName>(POD_NAMES.flatMap((p) => [[MESH_ADDRESSES[p].v4, p] as const, [MESH_ADDRESSES[p].v6, p] as const]));

/** The source the kernel picks for an unbound socket in `policy`'s pod connecting to `dst`. */
function kernelSource(pod: PodName, policy: CapturePolicy, dst: string): string {
  const v6 = ipFamily(dst) === 6;
  if (isLocalAddress(policy, dst)) {
    // 127.0.0.0/8's local route has src 127.0.0.1; a pod IP's local route has the pod IP;
    // IPv6 source selection prefers the destination itself when it is one of ours.
    return !v6 && cidrContains('127.0.0.0/8', dst) ? '127.0.0.1' : dst;
  }
  return v6 ? MESH_ADDRESSES[pod].v6 : MESH_ADDRESSES[pod].v4;
}

/**
 * Walks a request through the mesh with decide(): each outbound connection in its pod, then
 * inbound at the pod that owns the destination. A proxy hop continues as the proxy's own
 * connection (uid/gid 1337; from the passthrough source after the inbound listener).
 */
export function expectMeshPath(policies: Record<PodName, CapturePolicy>, r: MeshRequest, opts: DecideOptions = {}, ifnames?: Record<PodName, string>): MeshExpectation {
  const hops: ExpectedHop[] = [];
  const trace: string[] = [];
  let pod = r.from;
  let who = r.who;
  let src: string | undefined;
  const dst = r.to;
  const orig = formatEndpoint(dst);
  const family = ipFamily(dst.ip) as 4 | 6;
  const seen = new Set<string>();
  // Adds a hop; false when it repeats one (a loop: HAProxy answers 508 there, forwarding nothing).
  const hop = (h: Omit<ExpectedHop, 'forwardedFrom' | 'forwardedTo'>): boolean => {
    const key = `${h.pod}/${h.listener}`;
    if (seen.has(key)) {
      hops.push({ ...h, forwardedFrom: '', forwardedTo: '' });
      return false;
    }
    seen.add(key);
    const forwardedFrom = h.listener === 'inbound' ? PASSTHROUGH[family] : kernelSource(h.pod, policies[h.pod], dst.ip);
    hops.push({ ...h, forwardedFrom, forwardedTo: h.originalDst });
    return true;
  };
  for (;;) {
    const policy = policies[pod];
    const local = isLocalAddress(policy, dst.ip);
    const out: Connection = { direction: 'outbound', protocol: 'tcp', dst, uid: who.uid, gid: who.gid, ...(src !== undefined ? { src } : {}) };
    if (!local && ifnames) out.interface = ifnames[pod];
    const d = decide(policy, out, opts);
    trace.push(`${pod} outbound uid ${who.uid}${src ? ` src ${src}` : ''} → ${orig}: ${d.outcome} (${d.step})`);
    const peer = src ?? kernelSource(pod, policy, dst.ip);
    if (d.outcome === 'outbound-proxy' || d.outcome === 'inbound-proxy') {
      const listener = d.outcome === 'outbound-proxy' ? 'outbound' : 'inbound';
      if (!hop({ pod, listener, port: d.port, peer, originalDst: orig, step: d.step })) return { hops, app: null, loop: true, trace };
      who = MESH_PROXY;
      src = listener === 'inbound' ? PASSTHROUGH[family] : undefined;
      continue;
    }
    if (d.outcome === 'dns-proxy') throw new Error(`expectMeshPath: ${r.id} would be sent to the DNS proxy, which the mesh does not run`);
    if (local) return { hops, app: { pod, peer, local: orig }, loop: false, trace };
    const target = PODS_BY_IP.get(dst.ip);
    if (!target) throw new Error(`expectMeshPath: ${dst.ip} is neither local to pod ${pod} nor a mesh pod's address`);
    const inb: Connection = { direction: 'inbound', protocol: 'tcp', dst, src: peer, ...(ifnames ? { interface: ifnames[target] } : {}) };
    const di = decide(policies[target], inb, opts);
    trace.push(`${target} inbound from ${peer} → ${orig}: ${di.outcome} (${di.step})`);
    if (di.outcome === 'pass') return { hops, app: { pod: target, peer, local: orig }, loop: false, trace };
    const listener = di.outcome === 'outbound-proxy' ? 'outbound' : 'inbound';
    if (!hop({ pod: target, listener, port: di.port, peer, originalDst: orig, step: di.step })) return { hops, app: null, loop: true, trace };
    pod = target;
    who = MESH_PROXY;
    src = listener === 'inbound' ? PASSTHROUGH[family] : undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Observations: what one request did

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

function ipOf(endpoint: string): string {
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

function observationOf(r: MeshRequest, code: number | null, stdout: string, stderr: string): MeshObservation {
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

// ---------------------------------------------------------------------------------------
// Views: the fields the spec fixes, in one shape for observations and expectations

/**
 * What must hold for a request, whatever the backend. For IPv4 hops `originalDst` is
 * HAProxy's SO_ORIGINAL_DST answer; for IPv6 hops it is absent (HAProxy cannot ask), and
 * `forwardedTo` (where HAProxy really went) is all there is. Ports the kernel chooses
 * (ephemeral ports) are left out.
 */
export interface MeshPathView {
  ok: boolean;
  error?: string;
  hops: { pod: string; listener: string; port: number; peer: string; originalDst?: string; forwardedFrom: string; forwardedTo: string }[];
  app: { pod: string; peer: string; local: string; path: string; via: string[] } | null;
  clientPeer: string;
}

export function observedView(o: MeshObservation): MeshPathView {
  const view: MeshPathView = {
    ok: o.ok,
    hops: o.hops.map((h) => ({
      pod: h.pod,
      listener: h.listener,
      port: h.port,
      peer: h.peer,
      ...(h.family === 4 ? { originalDst: h.kernelDst } : {}),
      forwardedFrom: h.forwardedFrom,
      forwardedTo: h.forwardedTo,
    })),
    app: o.app ? { pod: o.app.pod, peer: ipOf(o.app.peer), local: o.app.local, path: o.app.path, via: o.app.via } : null,
    clientPeer: o.clientPeer,
  };
  if (o.error !== undefined) view.error = o.error;
  return view;
}

export function expectedView(r: MeshRequest, e: MeshExpectation): MeshPathView {
  const v4 = ipFamily(r.to.ip) === 4;
  const hops = e.hops.map((h) => ({
    pod: h.pod,
    listener: h.listener,
    port: h.port,
    peer: h.peer,
    ...(v4 ? { originalDst: h.originalDst } : {}),
    forwardedFrom: h.forwardedFrom,
    forwardedTo: h.forwardedTo,
  }));
  if (e.loop) {
    const last = e.hops[e.hops.length - 1]!;
    return { ok: false, error: `HTTP 508: loop at ${last.pod}/${last.listener}`, hops, app: null, clientPeer: formatEndpoint(r.to) };
  }
  return {
    ok: true,
    hops,
    app: e.app ? { ...e.app, path: `/${r.id}`, via: e.hops.map((h) => `${h.pod}/${h.listener}`) } : null,
    clientPeer: formatEndpoint(r.to),
  };
}

/** One line per request: `a/outbound:15001 → b/inbound:15006 → b app (peer 127.0.0.6, local 10.1.0.3:8080)`. */
export function describePath(o: MeshObservation): string {
  if (!o.ok) return `${o.id}: FAILED ${o.error}${o.hops.length ? ` after ${o.hops.map((h) => `${h.pod}/${h.listener}:${h.port}`).join(' → ')}` : ''}`;
  const hops = o.hops.map((h) => `${h.pod}/${h.listener}:${h.port} (peer ${h.peer}, dst ${h.kernelDst} → ${h.forwardedFrom} → ${h.forwardedTo})`);
  return `${o.id}: ${[...hops, `${o.app!.pod} app (peer ${o.app!.peer}, local ${o.app!.local})`].join(' → ')}`;
}

// ---------------------------------------------------------------------------------------
// The scenario

/** A mesh test policy for one pod: makePolicy()'s defaults with that pod's name and IPs. */
export function meshPolicy(pod: PodName, overrides: Partial<CapturePolicy> = {}): CapturePolicy {
  return makePolicy({ pod: { namespace: 'default', name: pod }, podIPs: [MESH_ADDRESSES[pod].v4, MESH_ADDRESSES[pod].v6], ...overrides });
}

export interface MeshScenarioOptions {
  requests?: MeshRequest[];
  /** Per-request timeout of the client. */
  clientTimeoutMs?: number;
}

export interface MeshRun {
  backend: string;
  meshId: string;
  policies: Record<PodName, CapturePolicy>;
  requests: MeshRequest[];
  observations: Record<string, MeshObservation>;
  /** The interface names of the pods (for policies and expectations that name them). */
  ifnames: Record<PodName, string>;
  /** Measured identities of the long-running processes, and HAProxy's log per pod. */
  proxies: Record<PodName, Identity & { log: string }>;
  apps: Record<PodName, Identity>;
}

function checkPolicy(pod: PodName, policy: CapturePolicy): void {
  const want = [MESH_ADDRESSES[pod].v4, MESH_ADDRESSES[pod].v6];
  const lacking = want.filter((ip) => !policy.podIPs.includes(ip));
  if (lacking.length) throw new Error(`runMeshScenario: the policy for pod ${pod} must list its pod IPs ${want.join(', ')} (missing ${lacking.join(', ')}): use meshPolicy('${pod}')`);
}

/**
 * Runs every request through a fresh mesh captured by `backend` (policyA in pod a, policyB
 * in pod b) and returns what each one did. Everything is torn down before it returns or
 * throws. The backend's install() gets a MeshPodTopology per pod (install(a), then b).
 */
export async function runMeshScenario(backend: CaptureBackend, policyA: CapturePolicy, policyB: CapturePolicy, opts: MeshScenarioOptions = {}): Promise<MeshRun> {
  checkPolicy('a', policyA);
  checkPolicy('b', policyB);
  const policies: Record<PodName, CapturePolicy> = { a: policyA, b: policyB };
  const requests = opts.requests ?? meshRequests();
  const ids = new Set(requests.map((r) => r.id));
  if (ids.size !== requests.length) throw new Error('runMeshScenario: request ids must be unique');

  const mesh = await createMeshTopology();
  const processes: PodProcess[] = [];
  const installed: PodName[] = [];
  let failed = true;
  try {
    for (const f of [APP_SCRIPT, CLIENT_SCRIPT]) copyFileSync(join(FIXTURES_DIR, f), join(mesh.workDir, f));
    const procOpts = (pod: PodName, who: Identity): PodProcessOptions => ({ netns: mesh.pods[pod].netns, cgroupDir: mesh.cgroupDir, who, cwd: mesh.workDir });

    // Listeners first, as in a running pod: the apps, then the proxies.
    const apps = {} as Record<PodName, Identity>;
    const proxies = {} as Record<PodName, Identity & { log: string }>;
    const haproxies = {} as Record<PodName, PodProcess>;
    for (const pod of POD_NAMES) {
      const app = startPodProcess(`app in pod ${pod}`, procOpts(pod, MESH_APP), process.execPath, [join(mesh.workDir, APP_SCRIPT), pod, String(MESH_APP_PORT)]);
      processes.push(app);
      await waitForLine(app, 'ready', 10_000);
      apps[pod] = await processIdentity(app.pid);

      const cfg: HaproxyConfigOptions = { pod, outboundPort: policies[pod].ports.outbound, inboundPort: policies[pod].ports.inbound };
      const cfgPath = join(mesh.workDir, `haproxy-${pod}.cfg`);
      writeFileSync(cfgPath, renderHaproxyConfig(cfg), { mode: 0o644 });
      const ha = await startHaproxy(cfg, cfgPath, procOpts(pod, MESH_PROXY));
      processes.push(ha);
      haproxies[pod] = ha;
    }
    for (const pod of POD_NAMES) {
      const id = await processIdentity(haproxies[pod].pid);
      proxies[pod] = { ...id, log: '' };
      if (id.uid !== MESH_PROXY.uid || id.gid !== MESH_PROXY.gid) throw new Error(`HAProxy in pod ${pod} runs as uid ${id.uid} gid ${id.gid}, not ${MESH_PROXY.uid}/${MESH_PROXY.gid}`);
      if (apps[pod].uid !== MESH_APP.uid) throw new Error(`the app in pod ${pod} runs as uid ${apps[pod].uid}, not ${MESH_APP.uid}`);
    }

    // Then the capture.
    for (const pod of POD_NAMES) {
      installed.push(pod);
      await backend.install(podTopology(mesh, pod), policies[pod], { cgroupPath: mesh.cgroupDir });
    }

    const observations: Record<string, MeshObservation> = {};
    const timeout = opts.clientTimeoutMs ?? 3000;
    for (const r of requests) {
      const res = await runInPod(procOpts(r.from, r.who), process.execPath, [join(mesh.workDir, CLIENT_SCRIPT), requestUrl(r), String(timeout)], timeout + 10_000);
      observations[r.id] = observationOf(r, res.code, res.stdout, res.stderr);
    }
    for (const pod of POD_NAMES) proxies[pod].log = haproxies[pod].output();
    failed = false;
    return {
      backend: backend.name,
      meshId: mesh.id,
      policies,
      requests,
      observations,
      ifnames: { a: mesh.pods.a.netns.ifname, b: mesh.pods.b.netns.ifname },
      proxies,
      apps,
    };
  } finally {
    const errors: unknown[] = [];
    for (const pod of installed.reverse()) {
      try {
        await backend.uninstall(podTopology(mesh, pod), { cgroupPath: mesh.cgroupDir });
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all(processes.map((p) => p.stop()));
    await mesh.destroy();
    // An uninstall failure is a test failure, but only after everything is cleaned up,
    // and never in place of the error that is already on its way out.
    if (errors.length && !failed) throw new Error(`${backend.name} uninstall failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
}

export interface MeshDifference {
  id: string;
  a: MeshPathView | undefined;
  b: MeshPathView | undefined;
}

/** Requests whose spec-relevant view differs between two runs (e.g. iptables and eBPF). */
export function compareMeshRuns(a: MeshRun, b: MeshRun): MeshDifference[] {
  const ids = new Set([...Object.keys(a.observations), ...Object.keys(b.observations)]);
  const diffs: MeshDifference[] = [];
  for (const id of ids) {
    const va = a.observations[id] && observedView(a.observations[id]!);
    const vb = b.observations[id] && observedView(b.observations[id]!);
    if (JSON.stringify(va) !== JSON.stringify(vb)) diffs.push({ id, a: va, b: vb });
  }
  return diffs;
}

/** Reaps leftovers of killed runs: namespaces, mesh cgroups and scratch directories. */
export async function reapStaleMeshes(): Promise<string[]> {
  return [...(await reapStaleNamespaces()), ...(await reapStaleMeshLeftovers())];
}

/** For test.after.always: destroys every mesh (and so every process) this process started. */
export async function cleanupAllMeshes(): Promise<void> {
  await destroyAllMeshTopologies();
}

export { MESH_ADDRESSES };
export type { MeshTopology, PodName };
