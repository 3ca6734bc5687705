// What the daemon needs from the kernel side. src/bpf implements it; tests fake it.
import { SluiceError } from '../errors.js';
import type { CapturePolicy, Endpoint } from '../policy/types.js';

export interface MapUsage {
  map: string;
  entries: number;
  capacity: number;
}

export interface DataPlane {
  /** Writes or replaces the policy of the pod living in netns `cookie`. All or nothing. */
  applyPolicy(cookie: bigint, policy: CapturePolicy): void;
  removePolicy(cookie: bigint): void;
  /** Netns cookies that hold a policy now (after a restart: the adopted ones). */
  listPolicies(): bigint[];
  /** The recorded original destination of a connection, as the proxy sees it. */
  lookupOriginalDestination(src: Endpoint, dst: Endpoint, netnsCookie?: bigint): Endpoint | null;
  /** Per-outcome and per-failure counters summed over CPUs, by counter name. */
  readCounters(): Record<string, bigint>;
  mapUsage(): MapUsage[];
  /** Whether sk_msg acceleration is switched on in the kernel right now. */
  acceleration?(): boolean;
  /**
   * Whether the netns of a captured pod still exists: false once it is gone, null when
   * the data plane cannot tell (the reconciler then takes it as alive).
   */
  netnsAlive?(cookie: bigint): boolean | null;
  /**
   * Holding (sluice run --hold-unknown): a pending netns without a policy has its outbound
   * connects refused until applyPolicy, which clears the mark, succeeds.
   */
  markPending?(cookie: bigint): void;
  clearPending?(cookie: bigint): void;
  pendingNetns?(): bigint[];
}

export interface NetnsResolver {
  /** The netns cookie of a namespace path; throws NetnsError when it is gone. */
  cookieOf(path: string): bigint;
}

export class NetnsError extends Error {
  override readonly name = 'NetnsError';
  readonly code = 'NETNS_UNAVAILABLE';
  constructor(readonly path: string, cause: string) {
    super(`network namespace ${path} is not available (${cause}); check the pod's sluice.dev/netns annotation`);
  }
}

/**
 * A netns path the daemon will not capture: not a network namespace file (a FIFO, a
 * device, another kind of namespace), or the host's or the daemon's own namespace. The
 * pod is rejected and nothing of it is written.
 */
export class NetnsRefusedError extends SluiceError {
  constructor(
    readonly path: string,
    why: string,
  ) {
    super('NETNS_REFUSED', `network namespace ${path} refused: ${why}`, {
      hint: "set the pod's sluice.dev/netns annotation to its own netns (/var/run/netns/NAME or /proc/PID/ns/net)",
      exitCode: 2,
    });
  }
}

/** The `sluice run` flag that sizes each map; the set maps have a fixed size. */
const CAPACITY_FLAG: Record<string, string> = { sluice_pods: '--max-pods', sluice_listen: '--max-pods', sluice_conns: '--max-connections' };

/** A map that cannot take another entry. Counted and reported, never silent. */
export class MapFullError extends Error {
  override readonly name = 'MapFullError';
  readonly code = 'MAP_FULL';
  constructor(readonly map: string, capacity: number) {
    const flag = CAPACITY_FLAG[map];
    // A pinned map keeps the size it was created with, so a larger flag needs a fresh install.
    const fix = flag
      ? `raise sluice run ${flag} (a pinned map keeps its size until \`sluice uninstall\`)`
      : 'it holds the port, CIDR, interface and bind sets of all pods together; shorten the pods\' lists';
    super(`BPF map ${map} is full (${capacity} entries); ${fix}`);
  }
}
