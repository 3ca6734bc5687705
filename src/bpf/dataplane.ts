// The daemon's DataPlane on real BPF maps: policies by netns cookie, the pod's sk_lookup
// link, proxy-listener adoption, original-destination lookups, counters and usage.
import { execFileSync } from 'node:child_process';
import { NetnsError, UnknownNetnsError } from '../dataplane/errors.js';
import type { InstalledDataPlane, MapUsage } from '../dataplane/types.js';
import type { CapturePolicy, Endpoint } from '../policy/types.js';
import { decodeGlobal, decodeGlobalConnQuota, encodeGlobal, encodeU32, encodeU64, GLOBAL_FLAG } from './codec.js';
import { adoptListeners, type AdoptedListener } from './listeners.js';
import { attachNetns, capacityOf, DEFAULT_CAPACITY, detachNetns, install, LoaderError, linkedNetns, MAPS, netnsLinkAlive, SIZED_MAPS, type InstallOptions, type InstallReport, type LoaderOptions } from './loader.js';
import { SluiceMaps } from './maps.js';
import { netnsIfindex, openPodNetns, withPodNetns, type NetnsGuard } from './netns.js';
import { PolicyMaps, type GarbageReport, type PodNetns, type Route } from './policy-map.js';
import { RerouteAttachments } from './tc.js';

interface IpRouteJson {
  dst: string;
  dev?: string;
  type?: string;
}

/** The main routing table of a netns, read with `ip` inside it (nsenter: no setns here). */
export function readRoutes(netnsPath: string): Route[] {
  const routes: Route[] = [];
  for (const family of [4, 6] as const) {
    const out = execFileSync('nsenter', [`--net=${netnsPath}`, 'ip', '-j', `-${family}`, 'route', 'show', 'table', 'main'], { encoding: 'utf8' });
    for (const r of JSON.parse(out || '[]') as IpRouteJson[]) {
      if (r.dev && (r.type === undefined || r.type === 'unicast')) routes.push({ dst: r.dst, family, dev: r.dev });
    }
  }
  return routes;
}

function podNetns(path: string): PodNetns {
  let routes: Route[] | null = null;
  return {
    ifindex: (name) => netnsIfindex(path, name),
    routes: () => (routes ??= readRoutes(path)),
  };
}

export interface ApplyReport {
  written: boolean;
  podId: number;
  linked: boolean;
  listeners: AdoptedListener[];
}

export class BpfDataPlane implements InstalledDataPlane {
  private readonly paths = new Map<bigint, string>();
  private readonly reroute: RerouteAttachments;
  /** Namespaces never captured besides the daemon's own (default: PID 1's). */
  guard: NetnsGuard = {};
  /**
   * Fault injection for the fault tests: runs once a policy is staged and its netns linked,
   * before the change is committed. A throw there must leave the pod as it was.
   */
  beforeCommit: ((cookie: bigint) => void) | null = null;

  private constructor(
    readonly maps: SluiceMaps,
    private readonly policies: PolicyMaps,
    private opts: LoaderOptions,
    readonly installReport: InstallReport | null,
    /** How it was installed (null: only opened), for the re-install that grows sluice_accel. */
    private installedWith: InstallOptions | null = null,
  ) {
    this.reroute = new RerouteAttachments(opts);
  }

  /** Installs (or adopts) the data plane and opens its maps. Hold the pin-dir lock first. */
  static install(opts: InstallOptions): BpfDataPlane {
    const report = install(opts);
    const maps = SluiceMaps.open(opts.bpffsDir);
    return new BpfDataPlane(maps, new PolicyMaps(maps), opts, report, opts);
  }

  /** Opens an installed data plane without touching programs or links (CLI reads). */
  static open(opts: LoaderOptions = {}): BpfDataPlane {
    const maps = SluiceMaps.open(opts.bpffsDir);
    return new BpfDataPlane(maps, new PolicyMaps(maps), opts, null);
  }

  close(): void {
    this.maps.close();
  }

  cookieOf(path: string): bigint {
    const { cookie } = openPodNetns(path, this.guard);
    this.paths.set(cookie, path);
    return cookie;
  }

  applyPolicy(cookie: bigint, policy: CapturePolicy): void {
    this.apply(cookie, policy);
  }

  /**
   * applyPolicy, with what it did. All or nothing: the policy is staged, the netns linked
   * and the proxy's listeners enrolled; any failure puts the pod back as it was.
   */
  apply(cookie: bigint, policy: CapturePolicy): ApplyReport {
    const path = this.paths.get(cookie);
    if (!path) throw new UnknownNetnsError(cookie);
    // Re-opened and checked: what is linked is the namespace the cookie names, now.
    return withPodNetns(path, this.guard, (fd, id) => {
      if (id.cookie !== cookie) throw new NetnsError(path, `it names another namespace now (cookie ${id.cookie}, resolved as ${cookie})`);
      const staged = this.policies.stage(cookie, policy, podNetns(path));
      let linked = false;
      try {
        // Policy first: a listener the proxy opens from now on is enrolled by sockops itself.
        linked = attachNetns(cookie, fd, this.opts);
        this.reroute.sync(cookie, path, policy.rerouteInterfaces);
        const listeners = adoptListeners(this.maps, cookie, id, [policy.ports.inbound, policy.ports.outbound]);
        this.beforeCommit?.(cookie);
        staged.commit();
        this.clearPending(cookie);
        return { written: staged.written, podId: staged.podId, linked, listeners };
      } catch (err) {
        if (linked) detachNetns(cookie, this.opts.bpffsDir);
        staged.rollback();
        throw err;
      }
    });
  }

  removePolicy(cookie: bigint): void {
    this.policies.remove(cookie);
    this.reroute.remove(cookie, this.paths.get(cookie));
    detachNetns(cookie, this.opts.bpffsDir);
    this.maps.delete('sluice_conn_count', encodeU64(cookie));
    this.clearPending(cookie);
  }

  /** What a crash left in the maps, deleted; only under the pin-dir lock (pin-lock.ts). */
  collectGarbage(): GarbageReport {
    return this.policies.collectGarbage();
  }

  /** False once the netns of a captured pod is gone (its sk_lookup link is defunct). */
  netnsAlive(cookie: bigint): boolean | null {
    return netnsLinkAlive(cookie, this.opts.bpffsDir);
  }

  listPolicies(): bigint[] {
    return [...this.policies.entries().keys()];
  }

  /** Netns with an sk_lookup link but no policy: leftovers for the reconciler to remove. */
  orphanLinks(): bigint[] {
    const live = new Set(this.listPolicies());
    return linkedNetns(this.opts.bpffsDir).filter((c) => !live.has(c));
  }

  lookupOriginalDestination(src: Endpoint, dst: Endpoint, netnsCookie?: bigint): Endpoint | null {
    return this.maps.originalDestination(src, dst, netnsCookie ?? 0n)?.destination ?? null;
  }

  readCounters(): Record<string, bigint> {
    return this.maps.counters();
  }

  /**
   * The acceleration switch in sluice_global, read by sockops and sk_msg at run time.
   * Off: nothing new is enrolled, and enrolled sockets send by TCP from their next message.
   */
  setAcceleration(on: boolean): void {
    if (on) this.growAccelMap();
    const flags = this.globalFlags();
    this.maps.update('sluice_global', encodeU32(0), encodeGlobal(on ? flags | GLOBAL_FLAG.ACCELERATE : flags & ~GLOBAL_FLAG.ACCELERATE, this.connQuota()));
  }

  /**
   * An install with acceleration off made sluice_accel minimal (map-table.ts): turning it on
   * installs again with it on, which replaces that map by a full one. The minimal map
   * can never hold an enrolled pair, so no connection had data redirected through it.
   */
  private growAccelMap(): void {
    const on = { ...DEFAULT_CAPACITY, ...this.opts.capacity, accelerate: true };
    if (this.maps.info('sluice_accel').maxEntries !== MAPS.sluice_accel.minimal || capacityOf('sluice_accel', on)! <= MAPS.sluice_accel.minimal) return;
    if (!this.installedWith) {
      throw new LoaderError('NOT_INSTALLED', `sluice_accel under ${this.maps.bpffsDir} was made with acceleration off; only the daemon that installed it can turn it on (sluice run --accelerate)`);
    }
    const opts: InstallOptions = { ...this.installedWith, capacity: { ...this.installedWith.capacity, accelerate: true } };
    install(opts);
    this.maps.reopen('sluice_accel');
    this.installedWith = this.opts = opts;
  }

  /**
   * Most original-destination records one pod netns may hold (0: no limit), read by the
   * programs at run time: a captured connect past it is refused, so one pod cannot fill
   * the node's sluice_conns.
   */
  connectionCapacity(): number {
    return this.maps.info('sluice_conns').maxEntries;
  }

  setConnQuota(n: number): void {
    this.maps.update('sluice_global', encodeU32(0), encodeGlobal(this.globalFlags(), n));
  }

  connQuota(): number {
    const v = this.maps.lookup('sluice_global', encodeU32(0));
    return v ? decodeGlobalConnQuota(v) : 0;
  }

  /** Live original-destination records of one pod netns, as the programs count them. */
  connCount(cookie: bigint): bigint {
    const v = this.maps.lookup('sluice_conn_count', encodeU64(cookie));
    return v ? v.readBigUInt64LE(0) : 0n;
  }

  /**
   * Holds a netns (sluice run --hold-unknown): with no policy written yet, its outbound
   * connects are refused, so a pod that starts before it is reconciled never bypasses
   * its proxy. applyPolicy releases it.
   */
  markPending(cookie: bigint): void {
    this.maps.update('sluice_pending', encodeU64(cookie), encodeU32(1));
  }

  clearPending(cookie: bigint): void {
    this.maps.delete('sluice_pending', encodeU64(cookie));
  }

  pendingNetns(): bigint[] {
    return this.maps.keys('sluice_pending').map((k) => k.readBigUInt64LE(0));
  }

  acceleration(): boolean {
    return (this.globalFlags() & GLOBAL_FLAG.ACCELERATE) !== 0;
  }

  private globalFlags(): number {
    const v = this.maps.lookup('sluice_global', encodeU32(0));
    return v ? decodeGlobal(v) : 0;
  }

  mapUsage(): MapUsage[] {
    const usage: MapUsage[] = [];
    for (const map of SIZED_MAPS) {
      usage.push({ map, entries: this.maps.count(map), capacity: this.maps.info(map).maxEntries });
    }
    return usage;
  }
}
