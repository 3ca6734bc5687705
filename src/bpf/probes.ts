// Kernel feature probes for `sluice doctor` and the daemon: which BPF program types, map
// types and helpers this kernel has (libbpf_probe_*), and the live sockmap wake-up check
// that decides whether --accelerate is safe here.
import { errorText } from '../errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseEndpoint } from '../policy/net.js';
import { COUNTER, encodeAccelKey, encodeGlobal, encodeU32, encodeU64, GLOBAL_FLAG } from './codec.js';
import * as bpf from './libbpf.js';
import { probeProgram } from './libbpf-probes.js';
import { lookupBytes } from './fd-map.js';
import { attachToMap } from './links.js';
import { ACCEL_MAP, DEFAULT_OBJECT_DIR, SK_MSG_OBJECT, SK_MSG_PROGRAM } from './objects.js';
import { openPrivate } from './open-object.js';
import { sumPerCpu } from './per-cpu.js';
import { ATTACH_TYPES, HELPERS, judgeWakeup, MAP_TYPES, PROG_TYPES, type WakeupObservation, type WakeupReport, type WakeupStress } from './probe-facts.js';

export * from './probe-facts.js';

// ------------------------------------------------------------ feature probes

export type FeatureKind = 'program' | 'map' | 'helper' | 'context' | 'kfunc';

export interface Feature {
  kind: FeatureKind;
  /** e.g. `sock_ops`, `sockhash`, `bpf_get_netns_cookie in cgroup_sock_addr`. */
  name: string;
  /** What sluice uses it for. */
  use: string;
  /** Capture needs it. The others only matter for --accelerate. */
  required: boolean;
  /** The first upstream Linux release that has it, where known: doctor and run name it. */
  since?: string;
  probe: () => bpf.ProbeAnswer;
}

const P = PROG_TYPES;
const M = MAP_TYPES;
const H = HELPERS;

type Extra = { required?: boolean; since?: string };
const prog = (name: string, type: number, use: string, x: Extra = {}): Feature => ({ kind: 'program', name, use, required: x.required ?? true, ...x, probe: () => bpf.probeProgType(type) });
const map = (name: string, type: number, use: string, x: Extra = {}): Feature => ({ kind: 'map', name, use, required: x.required ?? true, ...x, probe: () => bpf.probeMapType(type) });
const helper = (fn: string, progName: string, type: number, id: number, use: string, x: Extra = {}): Feature => ({
  kind: 'helper',
  name: `bpf_${fn} in ${progName}`,
  use,
  required: x.required ?? true,
  ...x,
  probe: () => bpf.probeHelper(type, id),
});

/** r2 = *(u32 *)(r1 + off); r0 = ret; exit: a program that only reads one context field. */
export function ctxReadProgram(off: number, ret: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt8(0x61, 0); // BPF_LDX | BPF_MEM | BPF_W
  b.writeUInt8(0x12, 1); // src r1, dst r2
  b.writeInt16LE(off, 2);
  b.writeUInt8(0xb7, 8); // BPF_ALU64 | BPF_MOV | BPF_K into r0
  b.writeInt32LE(ret, 12);
  b.writeUInt8(0x95, 16); // BPF_JMP | BPF_EXIT
  return b;
}

/** Everything the programs in bpf/ rely on; the kfuncs come from the objects (object-probes.ts). */
export const FEATURES: readonly Feature[] = [
  prog('cgroup_sock_addr', P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, 'connect and getpeername rewriting', { since: '4.17' }),
  prog('sock_ops', P.BPF_PROG_TYPE_SOCK_OPS, 'connection records, listener and acceleration enrolment', { since: '4.13' }),
  prog('cgroup_sockopt', P.BPF_PROG_TYPE_CGROUP_SOCKOPT, 'SO_ORIGINAL_DST', { since: '5.3' }),
  prog('sk_lookup', P.BPF_PROG_TYPE_SK_LOOKUP, 'inbound steering without NAT', { since: '5.9' }),
  prog('sk_msg', P.BPF_PROG_TYPE_SK_MSG, '--accelerate', { required: false, since: '4.17' }),
  map('hash', M.BPF_MAP_TYPE_HASH, 'pod policies, port sets, connection records', { since: '3.19' }),
  map('array', M.BPF_MAP_TYPE_ARRAY, 'node-wide settings', { since: '3.19' }),
  map('percpu_array', M.BPF_MAP_TYPE_PERCPU_ARRAY, 'counters', { since: '4.6' }),
  map('lpm_trie', M.BPF_MAP_TYPE_LPM_TRIE, 'CIDR sets', { since: '4.11' }),
  map('sk_storage', M.BPF_MAP_TYPE_SK_STORAGE, 'per-socket original destination', { since: '5.2' }),
  map('sockhash', M.BPF_MAP_TYPE_SOCKHASH, 'proxy listeners for inbound steering, and --accelerate', { since: '4.18' }),
  helper('get_netns_cookie', 'cgroup_sock_addr', P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, H.BPF_FUNC_get_netns_cookie, 'finding the pod of a socket', { since: '5.7' }),
  helper('get_socket_cookie', 'cgroup_sock_addr', P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, H.BPF_FUNC_get_socket_cookie, 'owner of a connection record'),
  helper('sk_storage_get', 'cgroup_sock_addr', P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, H.BPF_FUNC_sk_storage_get, 'per-socket original destination'),
  helper('get_netns_cookie', 'sock_ops', P.BPF_PROG_TYPE_SOCK_OPS, H.BPF_FUNC_get_netns_cookie, 'loopback connection keys', { since: '5.15' }),
  helper('sock_hash_update', 'sock_ops', P.BPF_PROG_TYPE_SOCK_OPS, H.BPF_FUNC_sock_hash_update, 'enrolling listeners and accelerated sockets', { since: '4.18' }),
  helper('sock_ops_cb_flags_set', 'sock_ops', P.BPF_PROG_TYPE_SOCK_OPS, H.BPF_FUNC_sock_ops_cb_flags_set, 'deleting records on close', { since: '4.16' }),
  helper('get_netns_cookie', 'cgroup_sockopt', P.BPF_PROG_TYPE_CGROUP_SOCKOPT, H.BPF_FUNC_get_netns_cookie, 'SO_ORIGINAL_DST for loopback connections', { since: '5.15' }),
  helper('sk_assign', 'sk_lookup', P.BPF_PROG_TYPE_SK_LOOKUP, H.BPF_FUNC_sk_assign, 'handing a connection to the proxy listener', { since: '5.9' }),
  helper('sk_release', 'sk_lookup', P.BPF_PROG_TYPE_SK_LOOKUP, H.BPF_FUNC_sk_release, 'listener lookups', { since: '5.9' }),
  {
    kind: 'context',
    name: 'ctx->ingress_ifindex in sk_lookup',
    use: 'inbound interface exclusions (reroute interfaces)',
    required: true,
    since: '5.17',
    // offsetof(struct bpf_sk_lookup, ingress_ifindex); SK_PASS.
    probe: () => probeProgram(P.BPF_PROG_TYPE_SK_LOOKUP, ATTACH_TYPES.BPF_SK_LOOKUP, ctxReadProgram(64, 1)),
  },
  helper('msg_redirect_hash', 'sk_msg', P.BPF_PROG_TYPE_SK_MSG, H.BPF_FUNC_msg_redirect_hash, '--accelerate', { required: false, since: '4.18' }),
  helper('get_netns_cookie', 'sk_msg', P.BPF_PROG_TYPE_SK_MSG, H.BPF_FUNC_get_netns_cookie, '--accelerate (loopback keys)', { required: false }),
  helper('sk_storage_get', 'sk_msg', P.BPF_PROG_TYPE_SK_MSG, H.BPF_FUNC_sk_storage_get, '--accelerate (ordering)', { required: false }),
];

/** What a kernel without the bpf_rdonly_cast kfunc needs instead (bpf/owner.h). */
export const RDONLY_CAST_FALLBACK: Feature = helper(
  'probe_read_kernel',
  'cgroup_sock_addr',
  P.BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
  H.BPF_FUNC_probe_read_kernel,
  'the owner of UDP sockets where the kernel has no bpf_rdonly_cast',
);

// ---------------------------------------------------- sockmap wake-up check

export const WAKEUP_HELPER = fileURLToPath(new URL('../../native/build/sluice-wakeup', import.meta.url));

export interface WakeupOptions {
  objectDir?: string;
  helper?: string;
  /** How long a waiter may sleep before its wake-up counts as lost. */
  timeoutMs?: number;
}

interface HelperSocket {
  pair: 'redirect' | 'tcp' | 'redirect-ws' | 'tcp-ws';
  end: 'client' | 'server';
  fd: number;
  local: string;
  remote: string;
}

const unknown = (reason: string): WakeupReport => ({ verdict: `unknown: ${reason}`, summary: reason, observations: [], stress: [], redirected: 0 });

/** Sockets put in the sockhash: both ends of the `redirect` pairs, only the server end of the `tcp` ones. */
const enrolled = (s: HelperSocket) => s.pair.startsWith('redirect') || s.end === 'server';

class LineReader {
  private readonly lines: string[] = [];
  private waiting: ((line: string | null) => void) | null = null;
  private closed = false;
  private readonly rl: Interface;

  constructor(child: ChildProcess) {
    this.rl = createInterface({ input: child.stdout! });
    this.rl.on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(line);
      } else this.lines.push(line);
    });
    this.rl.on('close', () => {
      this.closed = true;
      this.waiting?.(null);
      this.waiting = null;
    });
  }

  next(timeoutMs: number): Promise<string | null> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        resolve(null);
      }, timeoutMs);
      this.waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
    });
  }

  close(): void {
    this.rl.close();
  }
}

const mapFdOf = (obj: bpf.BpfObject, name: string) => bpf.mapFd(bpf.findMap(obj, name));

/**
 * The sockmap epoll wake-up check. In a private network namespace (native/wakeup.c), two
 * loopback connections are put in a private sockhash with sluice's own sk_msg program
 * attached; a thread blocked in epoll_wait/poll must be woken when data arrives, both for
 * redirected data and for data that came by TCP. Touches no cgroup, no pinned map and
 * not the host network namespace. Never throws: a check that cannot run is `unknown: why`.
 */
export async function checkSockmapWakeup(opts: WakeupOptions = {}): Promise<WakeupReport> {
  const objectDir = opts.objectDir ?? DEFAULT_OBJECT_DIR;
  const helperPath = opts.helper ?? WAKEUP_HELPER;
  const timeoutMs = opts.timeoutMs ?? 1000;
  if (process.geteuid?.() !== 0) return unknown('root is needed (a private network namespace and BPF maps)');
  if (!existsSync(helperPath)) return unknown(`the helper ${helperPath} is missing: run \`make -C native\``);
  if (!existsSync(join(objectDir, `${SK_MSG_OBJECT}.bpf.o`))) return unknown(`${join(objectDir, `${SK_MSG_OBJECT}.bpf.o`)} is missing: run \`make -C bpf\``);

  let obj: bpf.BpfObject | null = null;
  let linkFd: number | null = null;
  let child: ChildProcess | null = null;
  let lines: LineReader | null = null;
  let pidfd: number | null = null;
  try {
    obj = openPrivate(objectDir, SK_MSG_OBJECT, `${SK_MSG_OBJECT} (wake-up check)`);
    const accelFd = mapFdOf(obj, ACCEL_MAP);
    const countersFd = mapFdOf(obj, 'sluice_counters');
    bpf.mapUpdate(mapFdOf(obj, 'sluice_global'), encodeU32(0), encodeGlobal(GLOBAL_FLAG.ACCELERATE), bpf.BPF_ANY, 'sluice_global');
    // Without sockmap links the program is attached to the private map, and freed with it.
    linkFd = attachToMap(bpf.programFd(bpf.findProgram(obj, SK_MSG_PROGRAM)), accelFd, ATTACH_TYPES.BPF_SK_MSG_VERDICT, `${SK_MSG_PROGRAM} (wake-up check)`);

    child = spawn(helperPath, ['--timeout-ms', String(timeoutMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => {});
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    lines = new LineReader(child);
    const first = await lines.next(5000);
    if (first === null) return unknown(`the helper did not start: ${stderr.trim() || 'no output'}`);
    const setup = JSON.parse(first) as { error?: string; netnsCookie?: string; sockets?: HelperSocket[] };
    if (setup.error || !setup.sockets || !setup.netnsCookie) return unknown(setup.error ?? 'the helper printed no sockets');

    pidfd = bpf.pidfdOpen(child.pid!);
    for (const s of setup.sockets.filter(enrolled)) {
      const self = parseEndpoint(s.local);
      const peer = parseEndpoint(s.remote);
      if (!self || !peer) return unknown(`the helper printed a bad address: ${s.local} ${s.remote}`);
      const fd = bpf.pidfdGetfd(pidfd, s.fd);
      try {
        bpf.mapUpdate(accelFd, encodeAccelKey({ self, peer, netnsCookie: BigInt(setup.netnsCookie) }), encodeU64(BigInt(fd)), bpf.BPF_NOEXIST, `${ACCEL_MAP} (${s.pair} ${s.end})`);
      } finally {
        bpf.closeFd(fd); // the sockhash keeps the socket; the helper owns it
      }
    }
    child.stdin!.write('go\n');
    // 6 single waits and up to 3 stalls in each of 4 stress runs, each at most timeoutMs.
    const second = await lines.next(18 * (timeoutMs + 100) + 30000);
    if (second === null) return unknown(`the helper gave no results: ${stderr.trim() || 'no output'}`);
    const out = JSON.parse(second) as { error?: string; results?: WakeupObservation[]; stress?: WakeupStress[] };
    if (out.error || !out.results || !out.stress) return unknown(out.error ?? 'the helper printed no results');
    const counters = bpf.mapShape(bpf.findMap(obj, 'sluice_counters'));
    const redirected = Number(sumPerCpu(bpf.mapLookup(countersFd, encodeU32(COUNTER.ACCEL_REDIRECTED), lookupBytes(counters), 'sluice_counters'), counters.valueSize));
    return { ...judgeWakeup(out.results, out.stress, redirected), observations: out.results, stress: out.stress, redirected };
  } catch (err) {
    return unknown(errorText(err));
  } finally {
    lines?.close();
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (pidfd !== null) bpf.closeFd(pidfd);
    if (linkFd !== null) bpf.closeFd(linkFd);
    if (obj) bpf.closeObject(obj);
  }
}
