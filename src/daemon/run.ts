// `sluice run`: load (or adopt) the data plane, keep pod policies in sync with the
// source, and serve HTTP and the lookup socket. Exiting never detaches anything:
// interception goes on while the daemon is down, and the next one adopts the pins.
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import pino from 'pino';
import { BpfDataPlane } from '../bpf/dataplane.js';
import { lockPinDir } from '../bpf/pin-lock.js';
import { checkSockmapWakeup, type WakeupOptions, type WakeupReport } from '../bpf/probes.js';
import { findCgroup2Mount, kernelRelease } from '../bpf/system.js';
import { buildPolicies } from '../policy/build.js';
import { InputError } from '../policy/errors.js';
import type { NodeConfig } from '../policy/config.js';
import { parseSourceSpec, readSnapshot } from '../sources/index.js';
import { watchFile, type FileWatch } from '../sources/watch.js';
import { createHttpServer } from './http.js';
import { serveLookupSocket } from './lookup.js';
import { Metrics } from './metrics.js';
import { Reconciler } from './reconcile.js';

export interface DaemonOptions {
  source: string;
  config: NodeConfig;
  cgroup?: string;
  bpffs: string;
  listen: string;
  lookupSocket?: string;
  /** sk_msg acceleration; refused where the live sockmap check does not say `ok`. */
  accelerate: boolean;
  /** Accelerate even then (benchmarks, or a workload known to be unaffected). */
  accelerateForce?: boolean;
  /** The live sockmap check; tests inject their own. */
  sockmapCheck?: (opts: WakeupOptions) => Promise<WakeupReport>;
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
  const check = opts.sockmapCheck ?? checkSockmapWakeup;
  const report = await check(opts.objectDir ? { objectDir: opts.objectDir } : {});
  log.info({ reason: 'sockmap_check', verdict: report.verdict, summary: report.summary, stress: report.stress }, 'sockmap regression check');
  if (report.verdict === 'ok') return true;
  const problem = report.verdict === 'regressed' ? `this kernel (${kernelRelease()}) has the sockmap regression: ${report.summary}` : `the sockmap regression check could not decide (${report.verdict.slice('unknown: '.length)})`;
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

export async function runDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = pino({ base: { component: 'sluice' } });
  const spec = parseSourceSpec(opts.source);
  const listen = parseListen(opts.listen);
  const accelerate = await decideAcceleration(opts, log);
  const cgroupDir = opts.cgroup ?? findCgroup2Mount();
  if (!cgroupDir) throw new InputError('NO_CGROUP2', 'no cgroup2 filesystem is mounted; mount one or pass --cgroup DIR');

  // One writer per pin directory: a second daemon (a surge) waits here until the first exits.
  const lock = await lockPinDir(opts.bpffs, {
    onWait: () => log.warn({ reason: 'pin_dir_locked', bpffs: opts.bpffs }, 'another sluice daemon holds the pin directory; waiting for it to exit'),
  });
  const dataPlane = BpfDataPlane.install({
    cgroupDir,
    allowCgroupRoot: true,
    bpffsDir: opts.bpffs,
    ...(opts.objectDir ? { objectDir: opts.objectDir } : {}),
    ...(opts.capacity ? { capacity: opts.capacity } : {}),
    log: (message) => log.info({ reason: 'loader' }, message),
  });
  log.info({ cgroup: cgroupDir, bpffs: opts.bpffs, report: dataPlane.installReport }, 'data plane attached');
  if (opts.hostNetns) dataPlane.guard = { hostNetns: [opts.hostNetns] };
  // A quarter of the pinned map by default: one pod can never fill the node's table.
  dataPlane.setConnQuota(opts.connectionsPerPod ?? Math.max(1, Math.floor(dataPlane.maps.info('sluice_conns').maxEntries / 4)));
  // Under the lock, so no other writer's staged sets are mistaken for a crash's.
  const garbage = dataPlane.collectGarbage();
  if (garbage.sets + garbage.addrs > 0) log.warn({ reason: 'garbage_collected', ...garbage }, 'deleted map entries a crashed daemon left behind');
  // Every start sets the switch, so a restart without --accelerate is the kill switch.
  dataPlane.setAcceleration(accelerate);
  log.info({ reason: 'acceleration', enabled: accelerate }, accelerate ? 'sk_msg acceleration on: redirected bytes bypass netfilter and tcpdump (see the accel_* counters)' : 'sk_msg acceleration off');

  const metrics = new Metrics(() => dataPlane);
  const report = dataPlane.installReport;
  metrics.programsAttached.set({ how: 'new' }, report?.attached.length ?? 0);
  metrics.programsAttached.set({ how: 'adopted' }, report?.updated.length ?? 0);
  metrics.mapsAdopted.set(report?.adoptedMaps.length ?? 0);
  const reconciler = new Reconciler(dataPlane, dataPlane, metrics, log, { holdUnknown: opts.holdUnknown ?? false });

  const sync = () => {
    let snapshot;
    try {
      snapshot = readSnapshot(spec);
    } catch (e) {
      metrics.sourceErrors.inc();
      log.error({ reason: 'source_unreadable', error: (e as Error).message }, 'source not read; keeping current policies');
      return;
    }
    for (const error of snapshot.errors) {
      metrics.sourceErrors.inc();
      log.warn({ reason: 'source_document', error }, 'source document skipped');
    }
    try {
      reconciler.reconcile(snapshot.pods, buildPolicies(snapshot.pods, snapshot.sidecars, opts.config), { prune: snapshot.errors.length === 0 });
    } catch (e) {
      metrics.reconcileErrors.inc({ reason: 'map_write' });
      log.error({ reason: 'reconcile_failed', error: (e as Error).stack }, 'reconcile failed; will retry on the next change');
    }
  };
  sync();
  const watch: FileWatch = watchFile(spec.path, sync);
  const resync = setInterval(sync, opts.resyncMs ?? 10_000);

  const http: Server = createHttpServer({
    metrics,
    dataPlane: () => dataPlane,
    ready: () => reconciler.ready,
    pods: () => reconciler.podStates(),
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(listen.port, listen.host, () => resolve());
  });
  log.info({ listen: opts.listen }, 'http listening');

  let lookup: NetServer | null = null;
  if (opts.lookupSocket) {
    lookup = serveLookupSocket(opts.lookupSocket, () => dataPlane, metrics);
    log.info({ socket: opts.lookupSocket }, 'lookup socket listening');
  }

  return {
    async close() {
      watch.close();
      clearInterval(resync);
      await new Promise<void>((resolve) => http.close(() => resolve()));
      if (lookup) await new Promise<void>((resolve) => lookup!.close(() => resolve()));
      dataPlane.close();
      lock.release();
      log.info({ reason: 'shutdown' }, 'daemon stopped; programs stay attached');
    },
  };
}
