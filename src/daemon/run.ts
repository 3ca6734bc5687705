// `sluice run`: load (or adopt) the data plane, keep pod policies in sync with the
// source, and serve HTTP and the lookup socket. Exiting never detaches anything:
// interception goes on while the daemon is down, and the next one adopts the pins.
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import pino from 'pino';
import { BpfDataPlane } from '../bpf/dataplane.js';
import { checkSockmapWakeup, type WakeupOptions, type WakeupReport } from '../bpf/probes.js';
import { findCgroup2Mount, kernelRelease } from '../bpf/system.js';
import { buildPolicies } from '../policy/build.js';
import { InputError } from '../policy/errors.js';
import type { NodeConfig } from '../policy/config.js';
import { parseSourceSpec, readSourceTextOf } from '../sources/index.js';
import { CONFIRM_MS, StableSource } from '../sources/stable.js';
import { watchFile, type FileWatch } from '../sources/watch.js';
import { createHttpServer, wildcardListenWarning } from './http.js';
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
  /** The group that may connect to the lookup socket (0660); without it only root (0600). */
  lookupGid?: number;
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

  const dataPlane = BpfDataPlane.install({
    cgroupDir,
    allowCgroupRoot: true,
    bpffsDir: opts.bpffs,
    ...(opts.objectDir ? { objectDir: opts.objectDir } : {}),
    ...(opts.capacity ? { capacity: opts.capacity } : {}),
    log: (message) => log.info({ reason: 'loader' }, message),
  });
  log.info({ cgroup: cgroupDir, bpffs: opts.bpffs, report: dataPlane.installReport }, 'data plane attached');
  // Every start sets the switch, so a restart without --accelerate is the kill switch.
  dataPlane.setAcceleration(accelerate);
  log.info({ reason: 'acceleration', enabled: accelerate }, accelerate ? 'sk_msg acceleration on: redirected bytes bypass netfilter and tcpdump (see the accel_* counters)' : 'sk_msg acceleration off');

  const metrics = new Metrics(() => dataPlane);
  const report = dataPlane.installReport;
  metrics.programsAttached.set({ how: 'new' }, report?.attached.length ?? 0);
  metrics.programsAttached.set({ how: 'adopted' }, report?.updated.length ?? 0);
  metrics.mapsAdopted.set(report?.adoptedMaps.length ?? 0);
  const reconciler = new Reconciler(dataPlane, dataPlane, metrics, log);

  // A read that changed is applied at once but removes nothing until it is read again.
  const source = new StableSource(spec.path, () => readSourceTextOf(spec));
  let confirm: NodeJS.Timeout | null = null;
  const sync = () => {
    const read = source.read();
    // Counted once per distinct error, not again on every resync while it stays.
    for (const error of read.newErrors) {
      metrics.sourceErrors.inc();
      log.warn({ reason: read.snapshot ? 'source_document' : 'source_unreadable', error }, read.snapshot ? 'source document skipped' : 'source not read; keeping current policies');
    }
    for (const error of read.newDuplicates) {
      metrics.sourceDuplicates.inc();
      log.error({ reason: 'source_duplicate', error }, 'duplicate object in the source; the first is used');
    }
    if (read.confirm && !confirm) confirm = setTimeout(() => ((confirm = null), sync()), CONFIRM_MS);
    const snapshot = read.snapshot;
    if (!snapshot) return;
    try {
      reconciler.reconcile(snapshot.pods, buildPolicies(snapshot.pods, snapshot.sidecars, opts.config), { prune: read.prune });
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
  const exposed = wildcardListenWarning(listen.host);
  if (exposed) log.warn({ reason: 'listen_wildcard', listen: opts.listen }, exposed);

  let lookup: NetServer | null = null;
  if (opts.lookupSocket) {
    lookup = await serveLookupSocket(opts.lookupSocket, () => dataPlane, metrics, opts.lookupGid === undefined ? {} : { gid: opts.lookupGid });
    log.info({ socket: opts.lookupSocket, mode: opts.lookupGid === undefined ? '0600' : '0660', gid: opts.lookupGid }, 'lookup socket listening');
  }

  return {
    async close() {
      watch.close();
      clearInterval(resync);
      if (confirm) clearTimeout(confirm);
      await new Promise<void>((resolve) => http.close(() => resolve()));
      if (lookup) await new Promise<void>((resolve) => lookup!.close(() => resolve()));
      dataPlane.close();
      log.info({ reason: 'shutdown' }, 'daemon stopped; programs stay attached');
    },
  };
}
