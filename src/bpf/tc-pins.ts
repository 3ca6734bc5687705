// The tc reroute programs of each pod netns, where they are pinned, and where their
// filters are attached:
//
//   <bpffs>/progs/<cookie>/<prog>                  the instance's programs
//   <bpffs>/progs/<cookie>/at/<netns path>/<dev>   the filters (empty directories; the path
//                                                  base64url-encoded: bpffs holds no files)
//
// A daemon start drops the programs' pins (each pod gets the new build on its next
// apply) but keeps the record: a map migration (migrate.ts) must move every filter to the
// new build before it commits, and only the record says which namespace and interfaces.
import { SluiceError } from '../errors.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsError, NetnsRefusedError } from '../dataplane/errors.js';
import * as bpf from './libbpf.js';
import { netnsIfindex, withPodNetns } from './netns.js';

export const TC_REROUTE_PROGRAMS = ['sluice_reroute_ingress', 'sluice_reroute_egress'] as const;

/** Our filters' preference on an interface, so that removing them touches nothing else. */
export const REROUTE_TC_PREF = 0x5c1;

// A directory name is at most 255 bytes: base64url of up to 191.
const MAX_RECORDED_PATH = 191;

export class RerouteAttachError extends SluiceError {
  constructor(message: string) {
    super('REROUTE_ATTACH_FAILED', message);
  }
}

export function progPinPath(bpffsDir: string, netnsCookie: bigint, program: string): string {
  return join(bpffsDir, 'progs', netnsCookie.toString(), program);
}

/** Pins the programs of a loaded tc reroute instance as the netns's, replacing older pins. */
export function pinRerouteObject(bpffsDir: string, netnsCookie: bigint, obj: bpf.BpfObject): void {
  mkdirSync(join(bpffsDir, 'progs', netnsCookie.toString()), { recursive: true });
  for (const program of TC_REROUTE_PROGRAMS) {
    const path = progPinPath(bpffsDir, netnsCookie, program);
    if (existsSync(path)) unlinkSync(path);
    bpf.objPin(bpf.programFd(bpf.findProgram(obj, program)), path);
  }
}

/** Never the host netns: the daemon's own namespace is refused outright. */
export function assertPodNetns(netnsPath: string): void {
  const self = statSync('/proc/self/ns/net');
  const target = statSync(netnsPath);
  if (self.ino === target.ino && self.dev === target.dev) throw new RerouteAttachError(`${netnsPath} is the daemon's own network namespace; tc is only run in pod namespaces`);
}

export function tc(netnsPath: string, args: string[]): string {
  assertPodNetns(netnsPath);
  return execFileSync('nsenter', [`--net=${netnsPath}`, 'tc', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Points our ingress and egress filters on `dev` at the pinned programs: one atomic replace each. */
export function replaceFilters(netnsPath: string, dev: string, bpffsDir: string, cookie: bigint): void {
  const [ingress, egress] = TC_REROUTE_PROGRAMS;
  for (const [dir, program] of [['ingress', ingress], ['egress', egress]] as const) {
    const pin = progPinPath(bpffsDir, cookie, program);
    tc(netnsPath, ['filter', 'replace', 'dev', dev, dir, 'pref', String(REROUTE_TC_PREF), 'handle', '1', 'bpf', 'object-pinned', pin, 'direct-action']);
  }
}

/** Records where the netns's filters are (none: the record goes). False when the path is too long to record. */
export function recordFilters(bpffsDir: string, netnsCookie: bigint, netnsPath: string, devs: string[]): boolean {
  const at = join(bpffsDir, 'progs', netnsCookie.toString(), 'at');
  rmSync(at, { recursive: true, force: true });
  if (devs.length === 0) return true;
  if (Buffer.byteLength(netnsPath) > MAX_RECORDED_PATH) return false;
  for (const dev of devs) mkdirSync(join(at, Buffer.from(netnsPath).toString('base64url'), dev), { recursive: true });
  return true;
}

export interface FilterRecord {
  cookie: bigint;
  netnsPath: string;
  devs: string[];
}

export function recordedFilters(bpffsDir: string): FilterRecord[] {
  const progs = join(bpffsDir, 'progs');
  const out: FilterRecord[] = [];
  for (const dir of existsSync(progs) ? readdirSync(progs) : []) {
    const at = join(progs, dir, 'at');
    if (!/^\d+$/.test(dir) || !existsSync(at)) continue;
    for (const name of readdirSync(at)) out.push({ cookie: BigInt(dir), netnsPath: Buffer.from(name, 'base64url').toString(), devs: readdirSync(join(at, name)) });
  }
  return out;
}

/**
 * A migration's step (before its commit): every recorded filter moves to an instance of
 * the new build (`load` opens one bound to the new maps), by tc filter replace. A netns
 * that is gone, or whose path names another namespace now, loses its record and pins.
 * Returns the number of filters moved.
 */
export function relinkRerouteFilters(bpffsDir: string, load: (cookie: bigint) => bpf.BpfObject): number {
  let moved = 0;
  for (const r of recordedFilters(bpffsDir)) {
    let same: boolean;
    try {
      same = withPodNetns(r.netnsPath, {}, (_fd, id) => id.cookie === r.cookie);
    } catch (err) {
      if (!(err instanceof NetnsError) && !(err instanceof NetnsRefusedError)) throw err;
      same = false;
    }
    if (!same) {
      unpinRerouteInstances(bpffsDir, r.cookie);
      continue;
    }
    const obj = load(r.cookie);
    try {
      pinRerouteObject(bpffsDir, r.cookie, obj);
    } finally {
      bpf.closeObject(obj);
    }
    for (const dev of r.devs) {
      if (netnsIfindex(r.netnsPath, dev) === null) continue; // gone with its filters
      replaceFilters(r.netnsPath, dev, bpffsDir, r.cookie);
      moved += 2;
    }
  }
  return moved;
}

/** Unpins the programs of every pod netns, keeping where their filters are (a daemon start). */
export function unpinReroutePrograms(bpffsDir: string): void {
  const progs = join(bpffsDir, 'progs');
  for (const dir of existsSync(progs) ? readdirSync(progs) : []) {
    for (const p of TC_REROUTE_PROGRAMS) rmSync(join(progs, dir, p), { force: true });
  }
}

/** Unpins the tc programs and record of one pod netns, or of all of them (attached filters keep their programs). */
export function unpinRerouteInstances(bpffsDir: string, netnsCookie?: bigint): void {
  const progs = join(bpffsDir, 'progs');
  if (!existsSync(progs)) return;
  for (const dir of readdirSync(progs)) {
    if (netnsCookie !== undefined && dir !== netnsCookie.toString()) continue;
    rmSync(join(progs, dir), { recursive: true });
  }
  if (netnsCookie === undefined) rmSync(progs, { recursive: true });
}
