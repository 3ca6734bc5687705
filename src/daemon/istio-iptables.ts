// Double capture: a pod whose netns already holds istio-init's ISTIO_* iptables chains.
// Stacking the two breaks inbound (REDIRECT delivers to 15006 first, and sluice then
// answers SO_ORIGINAL_DST with 15006), so such a pod is left to iptables, and reported.
// The check runs once per netns, off the event loop (iptables-save inside the netns).
import { execFile } from 'node:child_process';
import { findTool } from '../system/tools.js';

export type ChainsVerdict = 'present' | 'absent' | 'unknown';

/** Runs `iptables-save -t nat` (nft and legacy) in a netns; resolves with its output. */
export type SaveRunner = (netnsPath: string) => Promise<string>;

// istio-init always writes its IPv4 chains; either backend may hold them.
const SAVERS = ['iptables-nft-save', 'iptables-legacy-save'];
/** Checks run at once: a node with hundreds of new pods must not fork hundreds at once. */
const CONCURRENCY = 2;

export const nsenterSave: SaveRunner = async (netnsPath) => {
  const nsenter = findTool('nsenter');
  const savers = SAVERS.map(findTool).filter((p): p is string => p !== null);
  if (!nsenter || savers.length === 0) throw new Error('nsenter and iptables-save are needed to look for istio-init\'s chains');
  return new Promise<string>((resolve, reject) => {
    execFile(nsenter, [`--net=${netnsPath}`, '/bin/sh', '-c', saveScript(savers.map((s) => `${s} -t nat`))], { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
};

/**
 * One process per netns: sh runs each saver in turn, and fails unless one of them read
 * the table. Without CAP_NET_ADMIN they all fail, and that must read "unknown", not
 * "no chains" (which would stack sluice on istio-init's rules).
 */
export function saveScript(commands: string[]): string {
  return `ok=1; ${commands.map((c) => `if ${c} 2>/dev/null; then ok=0; fi`).join('; ')}; exit $ok`;
}

export class IstioChainsCheck {
  private readonly verdicts = new Map<bigint, ChainsVerdict>();
  private readonly running = new Set<bigint>();
  private readonly queue: { cookie: bigint; path: string }[] = [];
  private active = 0;

  constructor(
    private readonly run: SaveRunner,
    /** Called when a verdict arrives, so the pod is reconciled again. */
    private readonly onVerdict: (cookie: bigint, verdict: ChainsVerdict, detail: string) => void,
  ) {}

  /** The verdict for this netns so far; the first call starts the check. */
  verdict(cookie: bigint, netnsPath: string): ChainsVerdict {
    const known = this.verdicts.get(cookie);
    if (known) return known;
    if (!this.running.has(cookie)) {
      this.running.add(cookie);
      this.queue.push({ cookie, path: netnsPath });
      this.next();
    }
    return 'unknown';
  }

  private next(): void {
    while (this.active < CONCURRENCY && this.queue.length > 0) {
      const { cookie, path } = this.queue.shift()!;
      this.active += 1;
      this.run(path)
        .then(
          (out) => this.settle(cookie, /^:ISTIO_[A-Z_]+ /m.test(out) ? 'present' : 'absent', out.match(/^:ISTIO_[A-Z_]+/gm)?.join(' ') ?? ''),
          (e: Error) => this.settle(cookie, 'unknown', e.message),
        )
        .finally(() => {
          this.active -= 1;
          this.next();
        });
    }
  }

  /** Forget netns that no pod holds any more. */
  retain(cookies: Set<bigint>): void {
    for (const c of this.verdicts.keys()) if (!cookies.has(c)) this.verdicts.delete(c);
  }

  count(verdict: ChainsVerdict): number {
    return [...this.verdicts.values()].filter((v) => v === verdict).length;
  }

  private settle(cookie: bigint, verdict: ChainsVerdict, detail: string): void {
    this.running.delete(cookie);
    this.verdicts.set(cookie, verdict);
    this.onVerdict(cookie, verdict, detail);
  }
}
