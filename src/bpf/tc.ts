// tc on a pod's reroute (KubeVirt) interfaces: a clsact qdisc and one ingress and one
// egress filter running the pinned programs of bpf/tc_reroute.bpf.c, always inside the
// POD's netns (`nsenter --net=PATH tc ...`), never the host's. tc, not a tcx link:
// bpf_link_create resolves an ifindex in the caller's netns, which is the host's here.
import { errorText } from '../errors.js';
import { existsSync } from 'node:fs';
import { encodeSkLookupConfig } from './codec.js';
import * as bpf from './libbpf.js';
import { DEFAULT_BPFFS_DIR, installation, openObject, TC_REROUTE_OBJECT, type LoaderOptions } from './loader.js';
import { netnsIfindex } from './netns.js';
import { assertPodNetns, pinRerouteObject, recordFilters, REROUTE_TC_PREF, RerouteAttachError, replaceFilters, tc, TC_REROUTE_PROGRAMS, progPinPath, unpinRerouteInstances } from './tc-pins.js';

export { progPinPath, REROUTE_TC_PREF, RerouteAttachError, TC_REROUTE_PROGRAMS } from './tc-pins.js';

/**
 * Loads a tc reroute instance that knows `netnsCookie` (its .rodata, as sk_lookup's) and
 * pins its programs, unless they are pinned already. A daemon start removes every pod's
 * pins (install), so each pod gets the new build on its next apply.
 */
function pinRerouteInstance(netnsCookie: bigint, opts: LoaderOptions): void {
  const bpffsDir = opts.bpffsDir ?? DEFAULT_BPFFS_DIR;
  if (TC_REROUTE_PROGRAMS.every((p) => existsSync(progPinPath(bpffsDir, netnsCookie, p)))) return;
  const obj = openObject({ ...installation(opts), object: TC_REROUTE_OBJECT, rodata: encodeSkLookupConfig(netnsCookie) });
  try {
    pinRerouteObject(bpffsDir, netnsCookie, obj);
  } finally {
    bpf.closeObject(obj);
  }
}

function attach(netnsPath: string, dev: string, bpffsDir: string, cookie: bigint): void {
  try {
    tc(netnsPath, ['qdisc', 'add', 'dev', dev, 'clsact']);
  } catch (err) {
    if (!/File exists|Exclusivity/.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
  }
  replaceFilters(netnsPath, dev, bpffsDir, cookie);
}

function detach(netnsPath: string, dev: string): void {
  for (const dir of ['ingress', 'egress']) {
    try {
      tc(netnsPath, ['filter', 'del', 'dev', dev, dir, 'pref', String(REROUTE_TC_PREF)]);
    } catch {
      // Not attached there, or the interface is gone: nothing to remove.
    }
  }
}

/** Which interfaces of which pod netns carry the reroute filters; level-triggered per pod. */
export class RerouteAttachments {
  private readonly attached = new Map<bigint, Set<string>>();

  private readonly bpffsDir: string;

  constructor(private readonly opts: LoaderOptions = {}) {
    this.bpffsDir = opts.bpffsDir ?? DEFAULT_BPFFS_DIR;
  }

  /** Attaches to every reroute interface the netns has, and detaches from the others we used. */
  sync(cookie: bigint, netnsPath: string, ifnames: string[]): void {
    assertPodNetns(netnsPath);
    const had = this.attached.get(cookie) ?? new Set<string>();
    // Only interfaces that exist in the pod netns; names are validated by src/policy.
    const want = new Set(ifnames.filter((n) => n !== 'lo' && netnsIfindex(netnsPath, n) !== null));
    for (const dev of had) if (!want.has(dev)) detach(netnsPath, dev);
    try {
      if (want.size > 0) pinRerouteInstance(cookie, this.opts);
      for (const dev of want) attach(netnsPath, dev, this.bpffsDir, cookie);
    } catch (err) {
      for (const dev of want) detach(netnsPath, dev);
      this.attached.delete(cookie);
      recordFilters(this.bpffsDir, cookie, netnsPath, []);
      throw new RerouteAttachError(`tc on the reroute interfaces of ${netnsPath}: ${errorText(err)}`);
    }
    if (want.size > 0) {
      this.attached.set(cookie, want);
      // For a map migration at the next start (tc-pins.ts); without it, its next apply.
      if (!recordFilters(this.bpffsDir, cookie, netnsPath, [...want])) this.opts.log?.(`${netnsPath}: path too long to record; a map migration leaves its reroute filters to its next apply`);
    } else if (this.attached.delete(cookie)) unpinRerouteInstances(this.bpffsDir, cookie);
  }

  /** Removes our filters from the pod (when its netns still exists). */
  remove(cookie: bigint, netnsPath: string | undefined): void {
    const had = this.attached.get(cookie);
    this.attached.delete(cookie);
    unpinRerouteInstances(this.bpffsDir, cookie);
    if (!had || netnsPath === undefined) return;
    for (const dev of had) detach(netnsPath, dev);
  }
}
