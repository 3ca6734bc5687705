// What the daemon needs from the kernel side. src/bpf implements it; tests fake it.
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

/** What `sluice run` holds: the DataPlane plus the install-time knobs of the daemon. */
export interface InstalledDataPlane extends DataPlane, NetnsResolver {
  /** What the install attached, swapped in place, and adopted; null when only opened. */
  readonly installReport: { attached: string[]; updated: string[]; adoptedMaps: string[] } | null;
  /** Namespaces never captured besides the daemon's own (default PID 1's). */
  guard: { hostNetns?: string[] };
  /** How many original-destination records the node's map holds. */
  connectionCapacity(): number;
  setConnQuota(n: number): void;
  /** Deletes entries a crashed writer left behind; call under the pin-dir lock. */
  collectGarbage(): { sets: number; addrs: number };
  setAcceleration(on: boolean): void;
  close(): void;
}

export interface SockmapCheckReport {
  /** `ok`, `regressed` or `unknown: <reason>`. */
  verdict: string;
  summary: string;
  stress: unknown;
}

export type SockmapCheck = (opts: { objectDir?: string }) => Promise<SockmapCheckReport>;

export interface InstallRequest {
  cgroupDir: string;
  bpffsDir: string;
  objectDir?: string;
  /** `accelerate`: size the acceleration map for it (it is minimal while acceleration is off). */
  capacity?: { pods?: number; connections?: number; accelerate?: boolean };
  log: (message: string) => void;
}

/**
 * The kernel side as the daemon starts it. The CLI wires src/bpf in (the way Cilium's
 * agent wires its maps from cell.go), so the daemon never imports src/bpf.
 */
export interface DataPlaneBackend {
  /** One writer per pin directory: resolves once this process holds it. */
  lockPinDir(dir: string, opts: { onWait?: () => void }): Promise<{ release(): void }>;
  /** Installs (or adopts) the programs and maps; the cgroup2 root is allowed (production). */
  install(req: InstallRequest): InstalledDataPlane;
  findCgroup2Mount(): string | null;
  kernelRelease(): string;
  sockmapCheck: SockmapCheck;
}
