// tc on a pod's reroute (KubeVirt) interfaces: a clsact qdisc and one ingress and one
// egress filter running the pinned programs of bpf/tc_reroute.bpf.c, always inside the
// POD's netns (`nsenter --net=PATH tc ...`), never the host's. tc, not a tcx link:
// bpf_link_create resolves an ifindex in the caller's netns, which is the host's here.
import { SluiceError, errorText } from '../errors.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSkLookupConfig } from './codec.js';
import * as bpf from './libbpf.js';
import { DEFAULT_BPFFS_DIR, installation, openObject, TC_REROUTE_OBJECT, type LoaderOptions } from './loader.js';
import { netnsIfindex } from './netns.js';
import { progPinPath, TC_REROUTE_PROGRAMS, unpinRerouteInstances } from './tc-pins.js';

export { progPinPath, TC_REROUTE_PROGRAMS } from './tc-pins.js';

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
    mkdirSync(join(bpffsDir, 'progs', netnsCookie.toString()), { recursive: true });
    for (const program of TC_REROUTE_PROGRAMS) {
      const path = progPinPath(bpffsDir, netnsCookie, program);
      if (existsSync(path)) unlinkSync(path);
      bpf.objPin(bpf.programFd(bpf.findProgram(obj, program)), path);
    }
  } finally {
    bpf.closeObject(obj);
  }
}

/** Our filters' preference on an interface, so that removing them touches nothing else. */
export const REROUTE_TC_PREF = 0x5c1;

export class RerouteAttachError extends SluiceError {
  constructor(message: string) {
    super('REROUTE_ATTACH_FAILED', message);
  }
}

/** Never the host netns: the daemon's own namespace is refused outright. */
function assertPodNetns(netnsPath: string): void {
  const self = statSync('/proc/self/ns/net');
  const target = statSync(netnsPath);
  if (self.ino === target.ino && self.dev === target.dev) throw new RerouteAttachError(`${netnsPath} is the daemon's own network namespace; tc is only run in pod namespaces`);
}

function tc(netnsPath: string, args: string[]): string {
  assertPodNetns(netnsPath);
  return execFileSync('nsenter', [`--net=${netnsPath}`, 'tc', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function attach(netnsPath: string, dev: string, bpffsDir: string, cookie: bigint): void {
  try {
    tc(netnsPath, ['qdisc', 'add', 'dev', dev, 'clsact']);
  } catch (err) {
    if (!/File exists|Exclusivity/.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
  }
  const [ingress, egress] = TC_REROUTE_PROGRAMS;
  for (const [dir, program] of [['ingress', ingress], ['egress', egress]] as const) {
    const pin = progPinPath(bpffsDir, cookie, program);
    tc(netnsPath, ['filter', 'replace', 'dev', dev, dir, 'pref', String(REROUTE_TC_PREF), 'handle', '1', 'bpf', 'object-pinned', pin, 'direct-action']);
  }
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
      throw new RerouteAttachError(`tc on the reroute interfaces of ${netnsPath}: ${errorText(err)}`);
    }
    if (want.size > 0) this.attached.set(cookie, want);
    else if (this.attached.delete(cookie)) unpinRerouteInstances(this.bpffsDir, cookie);
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
