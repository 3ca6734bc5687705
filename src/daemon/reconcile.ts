// Level-triggered reconcile: desired policy per pod → the minimal map writes.
// Safe to run any number of times; restart adoption and live changes are the same path.
import { errorText } from '../errors.js';
import type { PodRecord } from '../sources/record.js';
import type { ChainsVerdict, IstioChainsCheck } from './istio-iptables.js';
import type { CapturePolicy } from '../policy/types.js';
import { MapFullError, NetnsError, NetnsRefusedError, type DataPlane, type NetnsResolver } from '../dataplane/index.js';
import type { Metrics, ReconcileErrorReason } from './metrics.js';

export interface PodState {
  namespace: string;
  name: string;
  netns: string | null;
  netnsCookie: string | null;
  /** pending: the pod's netns is not found yet (its sandbox is starting); retried. */
  status: 'applied' | 'rejected' | 'pending' | 'uncaptured';
  error: string | null;
  /** The policy in the kernel now (the last good one when the new one is rejected). */
  policy: CapturePolicy | null;
  /** Whether istio-init's ISTIO_* chains are in the pod's netns (then iptables captures it). */
  istioIptables?: ChainsVerdict;
}

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const MOVE_HINT = 'the pod keeps its old netns until that one is gone; check the sluice.dev/netns annotation (a reused /proc/PID path points at another process)';

/** One captured pod's netns: its cookie and the pod that owns it, or why it has none. */
type NetnsClaim = { cookie: bigint; owner: string } | { refused: string } | { unavailable: string };

export interface ReconcilerOptions {
  /**
   * Hold every captured pod the kernel has no policy for (new, or rejected with no last
   * good one): its netns is marked pending, so its connects fail instead of bypassing the
   * proxy. Off: such a pod is not captured until its policy lands.
   */
  holdUnknown?: boolean;
}

interface Applied {
  cookie: bigint;
  policy: CapturePolicy;
  json: string;
}

export class Reconciler {
  /** What this daemon wrote, by pod key; the kernel map is the source of truth on restart. */
  private applied = new Map<string, Applied>();
  private states: PodState[] = [];
  private reconciledOnce = false;
  private queued = 0;
  /** Policies applied or removed by the last pass. */
  lastPassWrites = 0;

  constructor(
    private readonly dataPlane: DataPlane,
    private readonly netns: NetnsResolver,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly chains?: IstioChainsCheck,
    private readonly opts: ReconcilerOptions = {},
  ) {}

  /** Every pod of the source reconciled at least once, none left queued by the budget. */
  get ready(): boolean {
    return this.reconciledOnce && this.queued === 0;
  }

  podStates(): PodState[] {
    return this.states;
  }

  /**
   * Each captured pod's netns, resolved once, and who owns it: the pod that already owned
   * it in the kernel keeps it whatever the order of the source, so a pod that names
   * another pod's netns cannot take it over; a netns nobody owned yet goes to the first
   * pod that names it.
   */
  private claimNetns(records: PodRecord[]): Map<number, NetnsClaim> {
    const claims = new Map<number, NetnsClaim>();
    const claimants = new Map<bigint, string[]>();
    records.forEach(({ result, netns: target }, i) => {
      if (result.status === 'uncaptured' || target.kind !== 'path') return;
      try {
        const cookie = this.netns.cookieOf(target.path);
        claims.set(i, { cookie, owner: '' });
        const key = `${result.pod.namespace}/${result.pod.name}`;
        claimants.set(cookie, [...(claimants.get(cookie) ?? []), key]);
      } catch (e) {
        if (e instanceof NetnsRefusedError) claims.set(i, { refused: e.message });
        else if (e instanceof NetnsError) claims.set(i, { unavailable: e.message });
        else throw e;
      }
    });
    const owners = new Map<bigint, string>();
    for (const [cookie, keys] of claimants) {
      const incumbent = keys.find((k) => this.applied.get(k)?.cookie === cookie);
      owners.set(cookie, incumbent ?? keys[0]!);
    }
    for (const c of claims.values()) if ('cookie' in c) c.owner = owners.get(c.cookie)!;
    return claims;
  }

  /**
   * The cookie a pod had, when its path now names another netns while the old one still
   * lives: with /proc/PID paths a reused PID points elsewhere, so this is never taken as
   * a move. Once the old netns is gone (the pod really restarted), the move goes ahead.
   */
  private refusedMove(key: string, cookie: bigint): bigint | null {
    const last = this.applied.get(key);
    if (!last || last.cookie === cookie) return null;
    return this.dataPlane.netnsAlive?.(last.cookie) === false ? null : last.cookie;
  }

  /** Marks the pod's netns pending before anything is written: a crash mid-apply still holds it. */
  private hold(cookie: bigint, held: Set<bigint>, inKernel: Set<bigint>): void {
    held.add(cookie);
    if (!inKernel.has(cookie)) this.dataPlane.markPending?.(cookie);
  }

  /** Pending marks: kept for pods still without a policy, dropped for the rest. */
  private releaseHeld(held: Set<bigint>, captured: Set<bigint>, prune: boolean): void {
    for (const cookie of this.dataPlane.pendingNetns?.() ?? []) {
      if (held.has(cookie) && !captured.has(cookie)) continue;
      if (!prune && !captured.has(cookie)) continue; // a pod in a broken document is unknown, not gone
      this.dataPlane.clearPending?.(cookie);
    }
  }

  /**
   * `prune: false` (the source had unreadable documents) keeps every entry no pod in this
   * snapshot claims: a pod in a broken document is unknown, not gone, so its capture stays.
   */
  reconcile(records: PodRecord[], opts: { prune?: boolean; budgetMs?: number } = {}): PodState[] {
    const prune = opts.prune ?? true;
    const budgetMs = opts.budgetMs ?? Infinity;
    const started = Date.now();
    /** Netns whose write was left to the next pass: what the kernel holds for them stays. */
    const deferred = new Set<bigint>();
    this.metrics.reconciles.inc();
    this.lastPassWrites = 0;
    const states: PodState[] = [];
    const wanted = new Map<string, Applied>();
    const cookieOwner = new Map<bigint, string>();
    /** Every netns a pod of this pass resolved to, whatever became of the pod. */
    const seen = new Set<bigint>();
    const keyOf = (s: { namespace: string; name: string }) => `${s.namespace}/${s.name}`;
    const previous = new Map(this.states.map((s) => [keyOf(s), s]));
    const claims = this.claimNetns(records);
    const held = new Set<bigint>();
    const inKernel = this.opts.holdUnknown ? new Set(this.dataPlane.listPolicies()) : new Set<bigint>();

    records.forEach(({ result, netns: target }, i) => {
      const key = `${result.pod.namespace}/${result.pod.name}`;
      const netnsPath = target.kind === 'path' ? target.path : null;
      const state: PodState = { ...result.pod, netns: netnsPath, netnsCookie: null, status: 'uncaptured', error: null, policy: null };
      states.push(state);
      if (result.status === 'uncaptured') return;

      const reject = (reason: ReconcileErrorReason, error: string, keepLastGood: boolean, status: 'rejected' | 'pending' = 'rejected') => {
        state.status = status;
        state.error = error;
        // Counted and logged when a pod becomes rejected or its error changes, not again on
        // every later pass (resyncs and unrelated edits) while it stays the same.
        const before = previous.get(key);
        if (before?.status !== 'rejected' || before.error !== error) {
          this.metrics.reconcileErrors.inc({ reason });
          this.log.warn({ pod: key, reason, error }, 'pod policy not applied');
        }
        const last = this.applied.get(key);
        if (keepLastGood && last) {
          wanted.set(key, last);
          cookieOwner.set(last.cookie, key);
          state.policy = last.policy;
          state.netnsCookie = last.cookie.toString();
        }
      };

      // A pod whose sandbox is starting keeps what it had: its old entry, if any, is
      // harmless (netns cookies are never reused) and goes once the new netns is found.
      if (target.kind === 'pending') return reject('netns_pending', target.reason, true, 'pending');
      // A bad policy (a non-string netns annotation among its errors) keeps its last good one.
      if (target.kind === 'missing' && result.status === 'rejected') return reject('policy_rejected', result.errors.map((e) => e.message).join('; '), true);
      if (target.kind === 'missing') return reject('netns_missing', target.reason, false);
      const claim = claims.get(i)!;
      // A refused netns (not nsfs, the host's, the daemon's own) gets nothing written; a
      // vanished one means the pod is gone: its entry is removed, not kept.
      if ('refused' in claim) return reject('netns_refused', claim.refused, false);
      if ('unavailable' in claim) return reject('netns_unavailable', claim.unavailable, false);
      const cookie = claim.cookie;
      state.netnsCookie = cookie.toString();
      seen.add(cookie);
      if (claim.owner !== key) return reject('netns_conflict', `netns ${netnsPath} already belongs to pod ${claim.owner}; each pod needs its own netns`, false);
      const moved = this.refusedMove(key, cookie);
      if (moved) return reject('netns_moved', `netns ${netnsPath} names another namespace now (cookie ${cookie}, was ${moved}); ${MOVE_HINT}`, true);
      if (this.chains) {
        state.istioIptables = this.chains.verdict(cookie, target.path);
        if (state.istioIptables === 'present') {
          return reject(
            'double_capture',
            "the pod's netns holds istio-init's ISTIO_* iptables chains, which capture it already; sluice leaves it to them, since stacking both breaks inbound SO_ORIGINAL_DST. Stop istio-init from writing them (README: Install on a cluster) and restart the pod for sluice to take over",
            false,
          );
        }
      }
      if (this.opts.holdUnknown) this.hold(cookie, held, inKernel);
      if (result.status === 'rejected') {
        return reject('policy_rejected', result.errors.map((e) => e.message).join('; '), true);
      }
      for (const w of result.warnings) this.log.warn({ pod: key, reason: 'warning' }, w);

      const json = JSON.stringify(result.policy);
      const last = this.applied.get(key);
      if (!last || last.cookie !== cookie || last.json !== json) {
        // A pass that has worked its budget leaves further writes to the next pass, so
        // /healthz and the lookups keep answering while hundreds of pods arrive at once.
        // The netns keeps whatever the kernel holds for it meanwhile (never pruned).
        if (Date.now() - started > budgetMs) {
          deferred.add(cookie);
          if (last) {
            wanted.set(key, last);
            state.policy = last.policy;
          }
          cookieOwner.set(cookie, key);
          state.status = 'pending';
          state.error = 'queued: this pass reached its time budget; the next one applies it';
          return;
        }
        try {
          this.dataPlane.applyPolicy(cookie, result.policy);
          this.metrics.mapWrites.inc({ op: 'apply' });
          this.lastPassWrites++;
          this.log.info({ pod: key, netnsCookie: cookie.toString(), reason: last ? 'changed' : 'new' }, 'pod policy applied');
        } catch (e) {
          if (e instanceof MapFullError) return reject('map_full', e.summary(), true);
          return reject('map_write', `writing the policy failed: ${errorText(e)}`, true);
        }
      }
      const applied = { cookie, policy: result.policy, json };
      wanted.set(key, applied);
      cookieOwner.set(cookie, key);
      state.status = 'applied';
      state.policy = result.policy;
    });

    if (!prune) {
      const reported = new Set(states.map(keyOf));
      for (const [key, last] of this.applied) {
        // Only pods missing from this snapshot: one that is here but rejected lost its entry.
        if (!reported.has(key) && !wanted.has(key) && !cookieOwner.has(last.cookie)) {
          wanted.set(key, last);
          cookieOwner.set(last.cookie, key);
          // Still in force, so still reported: /v1/pods shows what the kernel does.
          const before = previous.get(key);
          if (before && !reported.has(key)) states.push(before);
        }
      }
    }
    // Remove what no pod wants: pods that went away, moved netns, or (after a restart)
    // entries adopted from the kernel that no pod in the source owns.
    const keep = new Set([...[...wanted.values()].map((a) => a.cookie), ...deferred]);
    const stale = new Set<bigint>([...this.applied.values()].map((a) => a.cookie));
    if (prune) for (const cookie of this.dataPlane.listPolicies()) stale.add(cookie);
    for (const cookie of stale) {
      if (keep.has(cookie)) continue;
      try {
        this.dataPlane.removePolicy(cookie);
        this.metrics.mapWrites.inc({ op: 'remove' });
        this.lastPassWrites++;
        this.log.info({ netnsCookie: cookie.toString(), reason: 'no pod wants it' }, 'pod policy removed');
      } catch (e) {
        this.metrics.reconcileErrors.inc({ reason: 'map_write' });
        this.log.error({ netnsCookie: cookie.toString(), reason: 'map_write', error: errorText(e) }, 'removing a policy failed');
      }
    }

    this.releaseHeld(held, keep, prune);
    this.chains?.retain(seen);
    this.applied = wanted;
    this.states = states;
    this.reconciledOnce = true;
    this.queued = deferred.size;
    for (const status of ['applied', 'rejected', 'pending', 'uncaptured'] as const) {
      this.metrics.pods.set({ status }, states.filter((s) => s.status === status).length);
    }
    return states;
  }
}
