// The mesh workload: in each of two pods, an app on 8080 (uid 1000) and HAProxy as its
// sidecar proxy (uid/gid 1337); real HTTP requests from one pod's app to the other's. The
// response says which proxy listeners a request crossed and the app says what it saw.
// The e2e tests and `sluice demo` both run it; capture is installed by the caller after
// startMeshWorkloads() (listeners first, as in a real pod).
import { execFileSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findCgroup2Mount } from '../bpf/system.js';
import { formatEndpoint } from '../policy/net.js';
import type { Endpoint } from '../policy/types.js';
import { renderHaproxyConfig, startHaproxy, type HaproxyConfigOptions } from './haproxy.js';
import { MESH_ADDRESSES, POD_NAMES, type MeshTopology, type PodName } from './mesh-topology.js';
import { processIdentity, runInPod, startPodProcess, waitForLine, type Identity, type PodProcess, type PodProcessOptions } from './pod-process.js';
import { findTool } from '../system/tools.js';
import { observationOf, type MeshObservation } from './mesh-observation.js';

export { describePath, ipOf, observationOf, parseHop, type MeshHop, type MeshObservation } from './mesh-observation.js';

export const MESH_APP_PORT = 8080;
export const MESH_APP: Identity = Object.freeze({ uid: 1000, gid: 1000 });
/** HAProxy's identity: Istio's default proxy uid, and gid = uid. */
export const MESH_PROXY: Identity = Object.freeze({ uid: 1337, gid: 1337 });

/** The app and client scripts. Built code runs from dist/lab, whose build copies them. */
export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
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
  /** Says who needs it, e.g. `the kernel tests` or `sluice demo`. */
  who?: string;
}

/** Everything the mesh needs, as one message naming what is missing; null when all is there. */
export function meshRequirementsMissing(opts: MeshRequirementOptions = {}): string | null {
  const who = opts.who ?? 'the kernel tests';
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push(`root: run ${who} as root (they create namespaces and switch uids)`);
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
  return missing.length ? `${who}: mesh requirements missing:\n  - ${missing.join('\n  - ')}` : null;
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
/** Envoy's inbound passthrough source, by family. */
export const PASSTHROUGH = { 4: '127.0.0.6', 6: '::6' } as const;

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
// The workload

export interface MeshWorkloads {
  processes: PodProcess[];
  haproxies: Record<PodName, PodProcess>;
  /** Measured identities of the long-running processes. */
  apps: Record<PodName, Identity>;
  proxies: Record<PodName, Identity>;
  procOpts(pod: PodName, who: Identity): PodProcessOptions;
}

/**
 * Starts each pod's app and HAProxy (listening on `ports[pod]`) and checks they run as
 * MESH_APP and MESH_PROXY. On failure it stops what it started; otherwise the caller stops
 * `processes` (the mesh's destroy() kills them anyway).
 */
export async function startMeshWorkloads(mesh: MeshTopology, ports: Record<PodName, { outbound: number; inbound: number }>): Promise<MeshWorkloads> {
  for (const f of [APP_SCRIPT, CLIENT_SCRIPT]) copyFileSync(join(FIXTURES_DIR, f), join(mesh.workDir, f));
  const procOpts = (pod: PodName, who: Identity): PodProcessOptions => ({ netns: mesh.pods[pod].netns, cgroupDir: mesh.cgroupDir, who, cwd: mesh.workDir });
  const processes: PodProcess[] = [];
  try {
    const apps = {} as Record<PodName, Identity>;
    const proxies = {} as Record<PodName, Identity>;
    const haproxies = {} as Record<PodName, PodProcess>;
    for (const pod of POD_NAMES) {
      const app = startPodProcess(`app in pod ${pod}`, procOpts(pod, MESH_APP), process.execPath, [join(mesh.workDir, APP_SCRIPT), pod, String(MESH_APP_PORT)]);
      processes.push(app);
      await waitForLine(app, 'ready', 10_000);
      apps[pod] = await processIdentity(app.pid);

      const cfg: HaproxyConfigOptions = { pod, outboundPort: ports[pod].outbound, inboundPort: ports[pod].inbound };
      const cfgPath = join(mesh.workDir, `haproxy-${pod}.cfg`);
      writeFileSync(cfgPath, renderHaproxyConfig(cfg), { mode: 0o644 });
      const ha = await startHaproxy(cfg, cfgPath, procOpts(pod, MESH_PROXY));
      processes.push(ha);
      haproxies[pod] = ha;
    }
    for (const pod of POD_NAMES) {
      proxies[pod] = await processIdentity(haproxies[pod].pid);
      if (proxies[pod].uid !== MESH_PROXY.uid || proxies[pod].gid !== MESH_PROXY.gid) throw new Error(`HAProxy in pod ${pod} runs as uid ${proxies[pod].uid} gid ${proxies[pod].gid}, not ${MESH_PROXY.uid}/${MESH_PROXY.gid}`);
      if (apps[pod].uid !== MESH_APP.uid) throw new Error(`the app in pod ${pod} runs as uid ${apps[pod].uid}, not ${MESH_APP.uid}`);
    }
    return { processes, haproxies, apps, proxies, procOpts };
  } catch (err) {
    await Promise.all(processes.map((p) => p.stop()));
    throw err;
  }
}

/** Sends one request from its pod's client, as its uid, and says what happened. */
export async function sendMeshRequest(w: MeshWorkloads, r: MeshRequest, timeoutMs = 3000): Promise<MeshObservation> {
  const opts = w.procOpts(r.from, r.who);
  const res = await runInPod(opts, process.execPath, [join(opts.cwd, CLIENT_SCRIPT), requestUrl(r), String(timeoutMs)], timeoutMs + 10_000);
  return observationOf(r, res.code, res.stdout, res.stderr);
}

