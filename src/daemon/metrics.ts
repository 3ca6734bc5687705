// Prometheus metrics: every decision outcome and every failure path has a series.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { SourceStatus } from '../sources/record.js';
import type { Outcome } from '../policy/types.js';
import type { DataPlane } from '../dataplane/index.js';

export type ReconcileErrorReason = 'policy_rejected' | 'netns_missing' | 'netns_unavailable' | 'netns_refused' | 'netns_moved' | 'map_full' | 'map_write' | 'netns_conflict' | 'netns_pending' | 'double_capture';
/** How long one walk of the maps serves /metrics scrapes. */
export const MAP_WALK_CACHE_MS = 1000;

export type LookupVia = 'http' | 'unix';
export type LookupResult = 'found' | 'not_found' | 'bad_request';

/**
 * `captured:STEP` / `pass:STEP` kernel counters as a decision: the outcome decide() gives
 * for a capture at that step (the hairpin steps go to the inbound listener), or null for
 * an event counter.
 */
export function decisionOfCounter(name: string): { outcome: Outcome; step: string } | null {
  const m = /^(captured|pass):(.+)$/.exec(name);
  if (!m) return null;
  const step = m[2]!;
  if (m[1] === 'pass') return { outcome: 'pass', step };
  if (step === 'outbound.6') return { outcome: 'dns-proxy', step };
  if (step === 'outbound.4a' || step === 'outbound.5a' || step.startsWith('inbound.')) return { outcome: 'inbound-proxy', step };
  return { outcome: 'outbound-proxy', step };
}

export class Metrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'sluice_reconciles_total', help: 'Reconcile passes run.', registers: [this.registry] });
  readonly reconcileErrors = new Counter({
    name: 'sluice_reconcile_errors_total',
    help: 'Pods rejected, by reason: counted when a pod becomes rejected or its error changes.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly sourceErrors = new Counter({
    name: 'sluice_source_errors_total',
    help: 'Source documents that could not be read (bad YAML, a YAML limit, bad object shape, unreadable file), counted once per distinct error.',
    registers: [this.registry],
  });
  readonly sourceDuplicates = new Counter({
    name: 'sluice_source_duplicates_total',
    help: 'Objects named twice in the source (same kind and namespace/name); the first is used. Counted once per distinct duplicate.',
    registers: [this.registry],
  });
  readonly sourceEvents = new Counter({
    name: 'sluice_source_events_total',
    help: 'Kubernetes watch events received, by resource and type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).',
    labelNames: ['resource', 'type'],
    registers: [this.registry],
  });
  readonly sourceApiErrors = new Counter({
    name: 'sluice_source_api_errors_total',
    help: 'Failed list or watch requests to the API server, by resource; each is retried with backoff.',
    labelNames: ['resource'],
    registers: [this.registry],
  });
  /** The source's state, read at scrape time (an outage stops the syncs that could set it). */
  source: (() => SourceStatus) | null = null;
  readonly sourceSynced: Gauge = new Gauge({
    name: 'sluice_source_synced',
    help: '1 once the source was read in full (the first list), else 0.',
    registers: [this.registry],
    collect: (): void => this.sourceSynced.set(this.source?.().synced ? 1 : 0),
  });
  readonly sourceStale: Gauge = new Gauge({
    name: 'sluice_source_last_sync_seconds',
    help: 'Seconds since the source last answered (0 while the watches are up); policies in the kernel are this old at most.',
    registers: [this.registry],
    collect: (): void => this.sourceStale.set(this.source?.().staleSeconds ?? 0),
  });
  /** How many pods' netns hold istio-init's chains, read at scrape time. */
  doubleCaptured: (() => number) | null = null;
  /** How many pods' netns could not be checked for them (captured all the same). */
  chainsUnknown: (() => number) | null = null;
  readonly chainsCheckFailed: Gauge = new Gauge({
    name: 'sluice_pods_iptables_check_failed',
    help: "Pods whose netns could not be checked for istio-init's chains (iptables-save failed, e.g. without CAP_NET_ADMIN); sluice captures them anyway.",
    registers: [this.registry],
    collect: (): void => this.chainsCheckFailed.set(this.chainsUnknown?.() ?? 0),
  });
  readonly doubleCapture: Gauge = new Gauge({
    name: 'sluice_pods_double_capture',
    help: "Pods whose netns holds istio-init's ISTIO_* iptables chains: left to iptables, not captured by sluice.",
    registers: [this.registry],
    collect: (): void => this.doubleCapture.set(this.doubleCaptured?.() ?? 0),
  });
  readonly pods = new Gauge({ name: 'sluice_pods', help: 'Pods by reconcile status.', labelNames: ['status'], registers: [this.registry] });
  readonly lookups = new Counter({
    name: 'sluice_lookup_requests_total',
    help: 'Original-destination lookups served, by transport and result.',
    labelNames: ['via', 'result'],
    registers: [this.registry],
  });
  readonly mapWrites = new Counter({ name: 'sluice_map_writes_total', help: 'Policy map writes by operation.', labelNames: ['op'], registers: [this.registry] });
  readonly programsAttached = new Gauge({
    name: 'sluice_programs_attached',
    help: 'Programs linked at startup (the cgroup programs and sk_msg): attached anew, or adopted (a pinned link kept, its program swapped in place).',
    labelNames: ['how'],
    registers: [this.registry],
  });
  readonly mapsAdopted = new Gauge({ name: 'sluice_maps_adopted', help: 'Pinned maps reused at startup, contents kept.', registers: [this.registry] });

  constructor(dataPlane: () => DataPlane | null) {
    // The process's own health (RSS, open fds, event-loop delay): what the soak test watches.
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
    // Kernel-side series are per-CPU counters summed at scrape time, so they are never
    // stale; they only grow (until sluice uninstall), so they are counters.
    const events = new Counter({
      name: 'sluice_datapath_events_total',
      help: 'Kernel data-path events and failures (records kept and deleted, SO_ORIGINAL_DST answers, map full...).',
      labelNames: ['event'],
      registers: [], // registered below, after the metric that fills it
    });
    new Counter({
      name: 'sluice_decisions_total',
      help: 'Connections decided by the kernel programs, by outcome and spec step.',
      labelNames: ['outcome', 'step'],
      registers: [this.registry],
      // One read of the counter map per scrape fills both series.
      collect() {
        const dp = dataPlane();
        if (!dp) return;
        this.reset();
        events.reset();
        for (const [name, value] of Object.entries(dp.readCounters())) {
          const d = decisionOfCounter(name);
          if (d) this.inc(d, Number(value));
          else events.inc({ event: name }, Number(value));
        }
      },
    });
    this.registry.registerMetric(events);
    let walked: { at: number; usage: ReturnType<DataPlane['mapUsage']> } | null = null;
    const capacity = new Gauge({ name: 'sluice_map_capacity', help: 'Capacity of each BPF map.', labelNames: ['map'], registers: [] });
    new Gauge({
      name: 'sluice_map_entries',
      help: 'Entries in each BPF map.',
      labelNames: ['map'],
      registers: [this.registry],
      // Counting walks every key, synchronously: one walk fills both gauges (capacity is
      // registered after this one, so the registry collects this first), and scrapes
      // within MAP_WALK_CACHE_MS of it reuse it, so scraping fast cannot stall the daemon.
      collect() {
        const now = Date.now();
        if (!walked || now - walked.at >= MAP_WALK_CACHE_MS) walked = { at: now, usage: dataPlane()?.mapUsage() ?? [] };
        for (const u of walked.usage) {
          this.set({ map: u.map }, u.entries);
          capacity.set({ map: u.map }, u.capacity);
        }
      },
    });
    this.registry.registerMetric(capacity);
    new Gauge({
      name: 'sluice_acceleration_enabled',
      help: 'Whether sk_msg acceleration is on (1) or off (0), as the kernel switch says. Redirected bytes bypass netfilter and tcpdump; see sluice_datapath_events_total{event=~"accel_.*"}.',
      registers: [this.registry],
      collect() {
        const dp = dataPlane();
        if (dp?.acceleration) this.set(dp.acceleration() ? 1 : 0);
      },
    });
  }
}
