// CLI commands that talk to the kernel side: run, status, lookup, uninstall, doctor.
import { readFileSync } from 'node:fs';
import { bpfBackend } from '../bpf/backend.js';
import { BpfDataPlane } from '../bpf/dataplane.js';
import { DEFAULT_OBJECT_DIR, isInstalled, linkedNetns, uninstall } from '../bpf/loader.js';
import { InputError } from '../policy/errors.js';
import { formatEndpoint, parseEndpoint } from '../policy/net.js';
import { runDaemon } from '../daemon/run.js';
import { checkSockmapWakeup } from '../bpf/probes.js';
import { kernelFeatures as objectFeatures, loadEachObject } from '../bpf/object-probes.js';
import { canProbeBpf, featureChecks, hostChecks, objectChecks, refuseUnsupportedKernel, runDoctor, sockmapCheck } from './doctor.js';
import { loadConfig } from './load.js';
import { podChecks } from './doctor-pods.js';
import { sourcePodStatus, type SourceFlags } from './status-source.js';


export interface RunFlags {
  source: string;
  config?: string;
  cgroup?: string;
  bpffs: string;
  listen: string;
  lookupSocket?: string;
  lookupGroup?: string;
  accelerate?: boolean;
  accelerateForce?: boolean;
  maxPods?: string;
  maxConnections?: string;
  resync?: string;
  hostNetns?: string;
  bpfObjects?: string;
  holdUnknown?: boolean;
  maxConnectionsPerPod?: string;
  node?: string;
  kubeconfig?: string;
  procRoot?: string;
}

function capacityFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new InputError('BAD_CAPACITY', `${flag} ${value} is not a positive whole number`);
  return n;
}

/** `--lookup-group NAME|GID`: a number, or a name from /etc/group. */
export function groupFlag(value: string, groupFile = '/etc/group'): number {
  if (/^\d{1,10}$/.test(value) && Number(value) <= 0xfffffffe) return Number(value);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    // no group file: only numeric groups work
  }
  const line = text.split('\n').find((l) => l.split(':')[0] === value);
  const gid = line ? Number(line.split(':')[2]) : NaN;
  if (!Number.isInteger(gid)) throw new InputError('BAD_GROUP', `--lookup-group ${JSON.stringify(value)} is neither a gid nor a group in ${groupFile}; pass a group name or number`);
  return gid;
}

function resyncFlag(value: string): number {
  const seconds = /^\d{1,6}(\.\d{1,3})?$/.test(value) ? Number(value) : NaN;
  if (!(seconds >= 0.1)) throw new InputError('BAD_RESYNC', `--resync ${value} is not a number of seconds (0.1 or more)`);
  return seconds * 1000;
}

/** What the objects need from this kernel: the fixed list plus the kfuncs they declare. */
const kernelFeatures = () => objectFeatures(DEFAULT_OBJECT_DIR);

/**
 * `sluice run` and `sluice demo` on a kernel without a hook they need: the doctor's own
 * checks, so the hook is named before anything is touched. Without the capabilities to
 * probe, the load itself says what is missing (EPERM).
 */
export function refuseKernelWithoutHooks(): void {
  if (canProbeBpf()) refuseUnsupportedKernel(featureChecks(kernelFeatures()));
}

export async function runRun(flags: RunFlags): Promise<void> {
  refuseKernelWithoutHooks();
  const daemon = await runDaemon({
    source: flags.source,
    kubernetes: {
      ...(flags.node ? { node: flags.node } : {}),
      ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
      ...(flags.procRoot ? { procRoot: flags.procRoot } : {}),
    },
    config: loadConfig(flags.config),
    bpffs: flags.bpffs,
    listen: flags.listen,
    accelerate: flags.accelerate ?? false,
    accelerateForce: flags.accelerateForce ?? false,
    capacity: {
      ...(flags.maxPods ? { pods: capacityFlag('--max-pods', flags.maxPods) } : {}),
      ...(flags.maxConnections ? { connections: capacityFlag('--max-connections', flags.maxConnections) } : {}),
    },
    ...(flags.cgroup ? { cgroup: flags.cgroup } : {}),
    ...(flags.lookupSocket ? { lookupSocket: flags.lookupSocket } : {}),
    ...(flags.lookupGroup !== undefined ? { lookupGid: groupFlag(flags.lookupGroup) } : {}),
    ...(flags.resync ? { resyncMs: resyncFlag(flags.resync) } : {}),
    ...(flags.hostNetns ? { hostNetns: flags.hostNetns } : {}),
    ...(flags.bpfObjects ? { objectDir: flags.bpfObjects } : {}),
    ...(flags.holdUnknown ? { holdUnknown: true } : {}),
    ...(flags.maxConnectionsPerPod ? { connectionsPerPod: capacityFlag('--max-connections-per-pod', flags.maxConnectionsPerPod) } : {}),
  }, bpfBackend);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await daemon.close();
}

function openInstalled(bpffs: string): BpfDataPlane {
  if (!isInstalled(bpffs)) throw new InputError('NOT_INSTALLED', `nothing is installed under ${bpffs}; start sluice run, or pass the --bpffs it uses`);
  return BpfDataPlane.open({ bpffsDir: bpffs });
}

export async function runStatus(flags: { bpffs: string; listen: string; json?: boolean; config?: string } & Partial<SourceFlags>): Promise<void> {
  const dp = openInstalled(flags.bpffs);
  try {
    const sourcePods = flags.source ? await sourcePodStatus(dp, { ...flags, source: flags.source }, loadConfig(flags.config)) : undefined;
    let pods: unknown = null;
    try {
      const res = await fetch(`http://${flags.listen}/v1/pods`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) pods = await res.json();
    } catch {
      pods = null; // the daemon may be down; the kernel side still works without it
    }
    const status = {
      bpffs: flags.bpffs,
      installed: true,
      podPolicies: dp.listPolicies().map(String),
      netnsLinks: linkedNetns(flags.bpffs).map(String),
      acceleration: dp.acceleration(),
      maps: dp.mapUsage(),
      counters: Object.fromEntries(Object.entries(dp.readCounters()).map(([k, v]) => [k, Number(v)])),
      daemon: pods === null ? `not reachable at ${flags.listen}` : 'running',
      pods,
      ...(sourcePods ? { sourcePods } : {}),
    };
    if (flags.json) {
      console.log(JSON.stringify(status, null, 2));
      return;
    }
    console.log(`installed under ${status.bpffs}; daemon ${status.daemon}`);
    console.log(`pod policies (netns cookies): ${status.podPolicies.join(', ') || 'none'}`);
    console.log(`sk_msg acceleration: ${status.acceleration ? 'on (redirected bytes bypass netfilter and tcpdump; see the accel_* counters)' : 'off'}`);
    for (const m of status.maps) console.log(`map ${m.map}: ${m.entries}/${m.capacity}`);
    for (const [k, v] of Object.entries(status.counters)) if (v > 0) console.log(`counter ${k}: ${v}`);
    for (const p of sourcePods ?? []) {
      const kernel = p.policy !== 'captured' ? '' : p.inKernel ? ', in the kernel' : ', NOT in the kernel';
      console.log(`source pod ${p.namespace}/${p.name}: ${p.policy}${kernel}${p.netnsCookie ? ` (netns cookie ${p.netnsCookie})` : ''}${p.problem ? ` — ${p.problem}` : ''}`);
    }
    if (Array.isArray(pods)) for (const p of pods as { namespace: string; name: string; status: string; error: string | null }[]) console.log(`pod ${p.namespace}/${p.name}: ${p.status}${p.error ? ` (${p.error})` : ''}`);
  } finally {
    dp.close();
  }
}

export function runLookup(src: string, dst: string, flags: { bpffs: string; netns?: string }): number {
  const s = parseEndpoint(src);
  const d = parseEndpoint(dst);
  if (!s || !d) throw new InputError('BAD_ADDRESS', 'SRC and DST must be IP:PORT or [IPv6]:PORT: the proxy-side peer and local address');
  if (flags.netns !== undefined && !/^\d{1,20}$/.test(flags.netns)) throw new InputError('BAD_NETNS', '--netns takes the decimal netns cookie');
  const dp = openInstalled(flags.bpffs);
  try {
    const found = dp.lookupOriginalDestination(s, d, flags.netns ? BigInt(flags.netns) : undefined);
    if (!found) {
      console.log('not found');
      return 1;
    }
    console.log(formatEndpoint(found));
    return 0;
  } finally {
    dp.close();
  }
}

export function runUninstall(flags: { bpffs: string; json?: boolean }): void {
  const report = uninstall(flags.bpffs);
  if (flags.json) console.log(JSON.stringify(report));
  else console.log(`detached ${report.detached.length} links (${report.detached.join(', ') || 'none'}), unpinned ${report.unpinnedMaps.length} maps`);
}

export function runDoctorCommand(flags: { bpffs: string; json?: boolean; listen?: string }): Promise<number> {
  // Nothing here touches the host's cgroups or network namespace: the feature probes load
  // programs without attaching them, and the live check runs in a private namespace.
  return runDoctor({ ...(flags.json ? { json: true } : {}) }, [
    () => hostChecks(DEFAULT_OBJECT_DIR, flags.bpffs),
    () => featureChecks(kernelFeatures()),
    () => (process.geteuid?.() === 0 ? objectChecks(loadEachObject(DEFAULT_OBJECT_DIR)) : []),
    sockmapCheck(checkSockmapWakeup, { objectDir: DEFAULT_OBJECT_DIR }),
    () => podChecks(flags.listen ?? '127.0.0.1:15099'),
  ]);
}
