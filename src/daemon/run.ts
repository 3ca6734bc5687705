// `sluice run`: load (or adopt) the data plane, keep pod policies in sync with the
// source, and serve HTTP and the lookup socket. Exiting never detaches anything:
// interception goes on while the daemon is down, and the next one adopts the pins.
import { errorText } from '../errors.js';
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { release } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import pino from 'pino';
import type { DataPlaneBackend, SockmapCheck } from '../dataplane/index.js';
import { InputError } from '../policy/errors.js';
import type { NodeConfig } from '../policy/config.js';
import { fileFeed } from '../sources/file-feed.js';
import { parseSourceSpec } from '../sources/index.js';
import type { Feed } from '../sources/record.js';
import { DistinctErrors } from '../sources/stable.js';
import { createHttpServer, wildcardListenWarning } from './http.js';
import { serveLookupSocket } from './lookup.js';
import { MallocTrimmer } from './malloc-trim.js';
import { Metrics } from './metrics.js';
import { IstioChainsCheck, nsenterSave } from './istio-iptables.js';
import { CachedNetnsResolver } from './netns-cache.js';
import { Reconciler } from './reconcile.js';

export interface DaemonOptions {
  source: string;
  /** `--source kubernetes`: this node's name, the kubeconfig, and the host's /proc. */
  kubernetes?: { node?: string; kubeconfig?: string; procRoot?: string; backoff?: { baseMs: number; maxMs: number } };
  config: NodeConfig;
  cgroup?: string;
  bpffs: string;
  listen: string;
  lookupSocket?: string;
  /** The group that may connect to the lookup socket (0660); without it only root (0600). */
  lookupGid?: number;
  /** sk_msg acceleration; refused where the live sockmap check does not say `ok`. */
  accelerate: boolean;
  /** Accelerate even then (benchmarks, or a workload known to be unaffected). */
  accelerateForce?: boolean;
  /** The live sockmap check; the backend's unless given (tests inject their own). */
  sockmapCheck?: SockmapCheck;
  /** The running kernel's release, named when acceleration is refused. */
  kernelRelease?: () => string;
  objectDir?: string;
  /** Map capacity: captured pods, and concurrent captured connections. */
  capacity?: { pods?: number; connections?: number };
  /**
   * Reconcile this often even when the source is unchanged, so what the file cannot tell
   * (a netns that vanished) is noticed. Default 10 s.
   */
  resyncMs?: number;
  /** A netns never captured besides the daemon's own; default PID 1's (the host's). */
  hostNetns?: string;
  /** Refuse the connects of a captured pod until its policy is written (see Reconciler). */
  holdUnknown?: boolean;
  /** Most original-destination records one pod may hold; default a quarter of the map. */
  connectionsPerPod?: number;
}

export interface Daemon {
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InputError('BAD_LISTEN', `--listen ${JSON.stringify(listen)} is not HOST:PORT; use e.g. 127.0.0.1:15099`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/**
 * Whether to turn acceleration on. It is refused, before anything is attached, unless the
 * live sockmap check passes: on a regressed kernel, sockets in a sockmap miss epoll
 * wake-ups and report FIONREAD 0, which stalls libuv, Go, nginx and Java clients.
 */
export async function decideAcceleration(opts: DaemonOptions, log: pino.Logger): Promise<boolean> {
  if (!opts.accelerate && !opts.accelerateForce) return false;
  const check = opts.sockmapCheck;
  if (!check) throw new Error('decideAcceleration needs opts.sockmapCheck (runDaemon passes the backend\'s)');
  const report = await check(opts.objectDir ? { objectDir: opts.objectDir } : {});
  log.info({ reason: 'sockmap_check', verdict: report.verdict, summary: report.summary, stress: report.stress }, 'sockmap regression check');
  if (report.verdict === 'ok') return true;
  const kernel = (opts.kernelRelease ?? release)();
  const problem =
    report.verdict === 'regressed'
      ? `this kernel (${kernel}) has the sockmap regression: ${report.summary}`
      : report.verdict === 'limited'
        ? `this kernel (${kernel}) has the older sockmap FIONREAD limitation: ${report.summary}`
        : `the sockmap regression check could not decide (${report.verdict.slice('unknown: '.length)})`;
  if (opts.accelerateForce) {
    log.warn({ reason: 'accelerate_forced', verdict: report.verdict }, `--accelerate-force: sk_msg acceleration is ON although ${problem}; epoll clients may stall and FIONREAD may read 0`);
    return true;
  }
  throw new InputError(
    'ACCELERATE_REFUSED',
    `--accelerate refused: ${problem}. Sockets in a sockmap can then miss epoll wake-ups and report FIONREAD 0, which stalls libuv, Go, nginx and Java clients. ` +
      'Nothing was changed. Run `sluice doctor` for the details; start without --accelerate, or pass --accelerate-force to accept the risk (e.g. for a benchmark).',
  );
}

/** How soon a pod whose netns is not found yet is looked for again. */
const PENDING_RETRY_MS = 250;
const CHANGE_COALESCE_MS = 20;
/** How long one reconcile pass may write before it yields the event loop. */
const PASS_BUDGET_MS = 200;

/** The feed is made before the data plane (bad flags change nothing); metrics come later. */
interface FeedHooks {
  metrics: Metrics | null;
}

async function makeFeed(spec: ReturnType<typeof parseSourceSpec>, opts: DaemonOptions, log: pino.Logger, hooks: FeedHooks): Promise<Feed> {
  if (spec.kind === 'file') return fileFeed(spec, opts.config);
  const k = opts.kubernetes ?? {};
  const node = k.node ?? process.env.NODE_NAME;
  if (!node) throw new InputError('NO_NODE_NAME', '--source kubernetes needs this node\'s name: pass --node NAME or set NODE_NAME (the DaemonSet sets it from spec.nodeName)');
  // Loaded only for this source: @kubernetes/client-node costs the process ~65 MiB of
  // RSS at import (measured), which a file-source daemon has no use for.
  const { kubernetesFeed } = await import('../sources/kubernetes/feed.js');
  return kubernetesFeed({
    node,
    procRoot: k.procRoot ?? '/proc',
    config: opts.config,
    log,
    onEvent: (resource, type) => hooks.metrics?.sourceEvents.inc({ resource, type }),
    onApiError: (resource) => hooks.metrics?.sourceApiErrors.inc({ resource }),
    ...(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {}),
    ...(k.backoff ? { backoff: k.backoff } : {}),
  });
}

/**
 * V8 grows the young generation up to 2 x 64 MiB on a 24 GiB node, and keeps it: with 512
 * pods that was 64 MiB of a 166 MiB RSS holding 0.6 MiB of objects (v8 heap space stats).
 * The daemon allocates little per second, so it keeps the initial 2 x 1 MiB. The growth
 * factor is read at each growth, so setting it now works (--max-semi-space-size is fixed
 * at start; measured: new space stays 2 MiB instead of 128 under an allocation loop).
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

export async function runDaemon(opts: DaemonOptions, backend: DataPlaneBackend): Promise<Daemon> {
  keepYoungGenerationSmall();
  const log = pino({ base: { component: 'sluice' } });
  const spec = parseSourceSpec(opts.source);
  const hooks: FeedHooks = { metrics: null };
  const feed = await makeFeed(spec, opts, log, hooks);
  const listen = parseListen(opts.listen);
  const accelerate = await decideAcceleration({ sockmapCheck: backend.sockmapCheck, kernelRelease: backend.kernelRelease, ...opts }, log);
  const cgroupDir = opts.cgroup ?? backend.findCgroup2Mount();
  if (!cgroupDir) throw new InputError('NO_CGROUP2', 'no cgroup2 filesystem is mounted; mount one or pass --cgroup DIR');

  // One writer per pin directory: a second daemon (a surge) waits here until the first exits.
  const lock = await backend.lockPinDir(opts.bpffs, {
    onWait: () => log.warn({ reason: 'pin_dir_locked', bpffs: opts.bpffs }, 'another sluice daemon holds the pin directory; waiting for it to exit'),
  });
  const dataPlane = backend.install({
    cgroupDir,
    bpffsDir: opts.bpffs,
    ...(opts.objectDir ? { objectDir: opts.objectDir } : {}),
    capacity: { ...opts.capacity, accelerate },
    log: (message) => log.info({ reason: 'loader' }, message),
  });
  log.info({ cgroup: cgroupDir, bpffs: opts.bpffs, report: dataPlane.installReport }, 'data plane attached');
  if (opts.hostNetns) dataPlane.guard = { hostNetns: [opts.hostNetns] };
  // A quarter of the pinned map by default: one pod can never fill the node's table.
  dataPlane.setConnQuota(opts.connectionsPerPod ?? Math.max(1, Math.floor(dataPlane.connectionCapacity() / 4)));
  // Under the lock, so no other writer's staged sets are mistaken for a crash's.
  const garbage = dataPlane.collectGarbage();
  if (garbage.sets + garbage.addrs > 0) log.warn({ reason: 'garbage_collected', ...garbage }, 'deleted map entries a crashed daemon left behind');
  // Every start sets the switch, so a restart without --accelerate is the kill switch.
  dataPlane.setAcceleration(accelerate);
  log.info({ reason: 'acceleration', enabled: accelerate }, accelerate ? 'sk_msg acceleration on: redirected bytes bypass netfilter and tcpdump (see the accel_* counters)' : 'sk_msg acceleration off');

  const metrics = new Metrics(() => dataPlane);
  hooks.metrics = metrics;
  metrics.source = () => feed.status();
  const report = dataPlane.installReport;
  metrics.programsAttached.set({ how: 'new' }, report?.attached.length ?? 0);
  metrics.programsAttached.set({ how: 'adopted' }, report?.updated.length ?? 0);
  metrics.mapsAdopted.set(report?.adoptedMaps.length ?? 0);
  const chains = new IstioChainsCheck(nsenterSave, (cookie, verdict, detail) => {
    if (verdict === 'present') log.warn({ netnsCookie: cookie.toString(), reason: 'double_capture', chains: detail }, "istio-init's iptables chains found; that pod is left to them");
    if (verdict === 'unknown') log.warn({ netnsCookie: cookie.toString(), reason: 'double_capture_unknown', error: detail }, 'could not look for istio-init\'s iptables chains; capturing anyway');
    if (verdict !== 'absent') changed();
  });
  metrics.doubleCaptured = () => chains.count('present');
  metrics.chainsUnknown = () => chains.count('unknown');
  const reconciler = new Reconciler(dataPlane, new CachedNetnsResolver(dataPlane), metrics, log, chains, { holdUnknown: opts.holdUnknown ?? false });

  // Source errors are counted once per distinct error, not again on every resync.
  const trimmer = new MallocTrimmer();
  trimmer.maybeTrim(); // the install's object loads and vmlinux BTF are freed by now
  const sourceErrors = new DistinctErrors();
  const duplicates = new DistinctErrors();
  const sync = () => {
    let read;
    try {
      read = feed.read();
    } catch (e) {
      for (const error of sourceErrors.fresh([errorText(e)])) {
        metrics.sourceErrors.inc();
        log.error({ reason: 'source_unreadable', error }, 'source not read; keeping current policies');
      }
      return;
    }
    if (read === null) return; // not listed yet: the kernel keeps what it has
    for (const error of sourceErrors.fresh(read.errors)) {
      metrics.sourceErrors.inc();
      log.warn({ reason: 'source_document', error }, 'source object skipped');
    }
    for (const error of duplicates.fresh(read.duplicates ?? [])) {
      metrics.sourceDuplicates.inc();
      log.error({ reason: 'source_duplicate', error }, 'duplicate object in the source; the first is used');
    }
    let states;
    try {
      states = reconciler.reconcile(read.records, { prune: read.prune, budgetMs: PASS_BUDGET_MS });
      if (reconciler.lastPassWrites > 0) trimmer.maybeTrim(); // applies load and free BPF objects
    } catch (e) {
      metrics.reconcileErrors.inc({ reason: 'map_write' });
      log.error({ reason: 'reconcile_failed', error: (e as Error).stack }, 'reconcile failed; will retry on the next change');
      return;
    }
    // Writes left over by the budget go on at once (after pending I/O); a pod whose
    // sandbox is starting is looked for again soon, not at the next resync.
    if (states.some((s) => s.status === 'pending' && s.error?.startsWith('queued'))) schedule(0);
    else if (states.some((s) => s.status === 'pending')) schedule(PENDING_RETRY_MS);
  };
  let pendingTimer: NodeJS.Timeout | null = null;
  const schedule = (ms: number) => {
    if (pendingTimer) return;
    pendingTimer = setTimeout(() => {
      pendingTimer = null;
      sync();
    }, ms);
  };
  // Changes arrive in bursts (an informer's list, an editor's save): coalesce them.
  const changed = () => schedule(CHANGE_COALESCE_MS);
  sync();
  await feed.start(changed);
  const resync = setInterval(sync, opts.resyncMs ?? 10_000);

  const http: Server = createHttpServer({
    metrics,
    dataPlane: () => dataPlane,
    ready: () => reconciler.ready && feed.status().synced,
    source: () => feed.status(),
    pods: () => reconciler.podStates(),
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(listen.port, listen.host, () => resolve());
  });
  log.info({ listen: opts.listen }, 'http listening');
  const exposed = wildcardListenWarning(listen.host);
  if (exposed) log.warn({ reason: 'listen_wildcard', listen: opts.listen }, exposed);

  let lookup: NetServer | null = null;
  if (opts.lookupSocket) {
    lookup = await serveLookupSocket(opts.lookupSocket, () => dataPlane, metrics, opts.lookupGid === undefined ? {} : { gid: opts.lookupGid });
    log.info({ socket: opts.lookupSocket, mode: opts.lookupGid === undefined ? '0600' : '0660', gid: opts.lookupGid }, 'lookup socket listening');
  }

  return {
    async close() {
      await feed.close();
      clearInterval(resync);
      trimmer.close();
      if (pendingTimer) clearTimeout(pendingTimer);
      await new Promise<void>((resolve) => http.close(() => resolve()));
      if (lookup) await new Promise<void>((resolve) => lookup!.close(() => resolve()));
      dataPlane.close();
      lock.release();
      log.info({ reason: 'shutdown' }, 'daemon stopped; programs stay attached');
    },
  };
}
