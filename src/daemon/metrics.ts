// Prometheus metrics: every decision outcome and every failure path has a series.
import { Counter, Gauge, Registry } from 'prom-client';
import type { DataPlane } from './dataplane.js';

export type ReconcileErrorReason = 'policy_rejected' | 'netns_missing' | 'netns_unavailable' | 'map_full' | 'map_write' | 'netns_conflict';
export type LookupVia = 'http' | 'unix';
export type LookupResult = 'found' | 'not_found' | 'bad_request';

export class Metrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'sluice_reconciles_total', help: 'Reconcile passes run.', registers: [this.registry] });
  readonly reconcileErrors = new Counter({
    name: 'sluice_reconcile_errors_total',
    help: 'Pods that could not be applied in a reconcile pass, by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly sourceErrors = new Counter({
    name: 'sluice_source_errors_total',
    help: 'Source documents that could not be read (bad YAML, bad object shape, unreadable file).',
    registers: [this.registry],
  });
  readonly pods = new Gauge({ name: 'sluice_pods', help: 'Pods by reconcile status.', labelNames: ['status'], registers: [this.registry] });
  readonly lookups = new Counter({
    name: 'sluice_lookup_requests_total',
    help: 'Original-destination lookups served, by transport and result.',
    labelNames: ['via', 'result'],
    registers: [this.registry],
  });
  readonly mapWrites = new Counter({ name: 'sluice_map_writes_total', help: 'Policy map writes by operation.', labelNames: ['op'], registers: [this.registry] });

  constructor(dataPlane: () => DataPlane | null) {
    // Kernel-side series are read at scrape time, so they are never stale.
    new Gauge({
      name: 'sluice_decisions_total',
      help: 'Kernel decisions and failures by counter name (per-CPU counters summed).',
      labelNames: ['counter'],
      registers: [this.registry],
      collect() {
        const dp = dataPlane();
        if (!dp) return;
        for (const [name, value] of Object.entries(dp.readCounters())) this.set({ counter: name }, Number(value));
      },
    });
    new Gauge({
      name: 'sluice_map_entries',
      help: 'Entries in each BPF map.',
      labelNames: ['map'],
      registers: [this.registry],
      collect() {
        for (const u of dataPlane()?.mapUsage() ?? []) this.set({ map: u.map }, u.entries);
      },
    });
    new Gauge({
      name: 'sluice_acceleration_enabled',
      help: 'Whether sk_msg acceleration is on (1) or off (0), as the kernel switch says. Redirected bytes bypass netfilter and tcpdump; see sluice_decisions_total{counter=~"accel_.*"}.',
      registers: [this.registry],
      collect() {
        const dp = dataPlane();
        if (dp?.acceleration) this.set(dp.acceleration() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sluice_map_capacity',
      help: 'Capacity of each BPF map.',
      labelNames: ['map'],
      registers: [this.registry],
      collect() {
        for (const u of dataPlane()?.mapUsage() ?? []) this.set({ map: u.map }, u.capacity);
      },
    });
  }
}
