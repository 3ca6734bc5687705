// The pure half of the kernel probes (no libbpf here, so unit tests need no kernel): uapi
// enum values, and how the sockmap check's observations become a verdict.

/** uapi enum values (stable ABI); test/unit/doctor.test.ts checks them against <linux/bpf.h>. */
export const PROG_TYPES = {
  BPF_PROG_TYPE_CGROUP_SOCK_ADDR: 18,
  BPF_PROG_TYPE_SOCK_OPS: 13,
  BPF_PROG_TYPE_CGROUP_SOCKOPT: 25,
  BPF_PROG_TYPE_SK_LOOKUP: 30,
  BPF_PROG_TYPE_SK_MSG: 16,
} as const;

export const MAP_TYPES = {
  BPF_MAP_TYPE_HASH: 1,
  BPF_MAP_TYPE_ARRAY: 2,
  BPF_MAP_TYPE_PROG_ARRAY: 3,
  BPF_MAP_TYPE_PERCPU_HASH: 5,
  BPF_MAP_TYPE_PERCPU_ARRAY: 6,
  BPF_MAP_TYPE_LRU_HASH: 9,
  BPF_MAP_TYPE_LRU_PERCPU_HASH: 10,
  BPF_MAP_TYPE_LPM_TRIE: 11,
  BPF_MAP_TYPE_SOCKHASH: 18,
  BPF_MAP_TYPE_SK_STORAGE: 24,
} as const;

export const HELPERS = {
  BPF_FUNC_get_socket_cookie: 46,
  BPF_FUNC_sock_ops_cb_flags_set: 59,
  BPF_FUNC_sock_hash_update: 70,
  BPF_FUNC_msg_redirect_hash: 71,
  BPF_FUNC_sk_release: 86,
  BPF_FUNC_sk_storage_get: 107,
  BPF_FUNC_probe_read_kernel: 113,
  BPF_FUNC_get_netns_cookie: 122,
  BPF_FUNC_sk_assign: 124,
} as const;

/** enum bpf_attach_type values used by the loader. */
export const ATTACH_TYPES = { BPF_SK_MSG_VERDICT: 7, BPF_SK_LOOKUP: 36 } as const;

/**
 * `limited`: every wake-up came, but FIONREAD does not count bytes that sk_msg redirected
 * (the kernel predates upstream 929e30f93125). Not the regression, but readers that size
 * reads by FIONREAD would see 0 on accelerated sockets, so --accelerate is refused too.
 */
export type WakeupVerdict = 'ok' | 'regressed' | 'limited' | `unknown: ${string}`;

/** Upstream commits the verdicts name (torvalds/linux). */
export const SOCKMAP_COMMITS = {
  /** "bpf, sockmap: Fix FIONREAD for sockmap": counts a psock's ingress_msg (msg_tot_len); it also brought the regression. */
  fionreadForSockmap: '929e30f93125',
  /** "bpf, sockmap: Account for receive queue in FIONREAD without a verdict program": the regression's fix. */
  receiveQueueFix: '04af4efde58a',
} as const;

export interface WakeupObservation {
  /** `redirect`: the data went through bpf_msg_redirect_hash; `tcp`: by TCP into a socket in the sockhash. */
  path: 'redirect' | 'tcp';
  waiter: 'epoll' | 'epoll-et' | 'poll';
  sent: number;
  woke: boolean;
  waitedMs: number;
  /** What ioctl(FIONREAD) said before the receiver was drained. */
  fionread: number;
  /** Bytes the receiver could read once the wait was over. */
  readableAfter: number;
  errno: number;
}

/** Many rounds on one enrolled socket: the lost wake-ups seen in the field are intermittent. */
export interface WakeupStress {
  path: 'redirect' | 'tcp';
  /** `ping-pong`: 64 B / 32 KiB request-response rounds read in 4 KiB pieces, an epoll wait before each; `write-space`: EPOLLOUT waits after EAGAIN. */
  mode: 'ping-pong' | 'write-space';
  rounds: number;
  /** Waits that timed out although the socket was ready: lost wake-ups. */
  stalls: number;
  maxWaitMs: number;
  errno: number;
}

export interface WakeupReport {
  verdict: WakeupVerdict;
  /** One line for people: what was seen. */
  summary: string;
  observations: WakeupObservation[];
  stress: WakeupStress[];
  /** Messages the sk_msg program redirected during the check (proves the setup worked). */
  redirected: number;
}

/**
 * The verdict. `regressed` when any waiter slept through data that was there, or when
 * FIONREAD reports nothing for bytes that came by TCP into a sockmap'd socket: both come
 * from the same kernel change (upstream 929e30f93125; FIONREAD fixed by 04af4efde58a).
 * FIONREAD short only for redirected bytes is `limited`: kernels from before 929e30f93125
 * (6.1.192, 6.12.74, measured in the test-vm matrix) count only the TCP receive queue,
 * never a psock's ingress_msg queue, with every wake-up delivered.
 */
export function judgeWakeup(observations: WakeupObservation[], stress: WakeupStress[], redirected: number): Pick<WakeupReport, 'verdict' | 'summary'> {
  const broken = observations.find((o) => o.errno !== 0 || o.sent <= 0);
  if (broken) return { verdict: `unknown: the ${broken.path}/${broken.waiter} case could not run (errno ${broken.errno}, sent ${broken.sent})`, summary: 'the check could not run' };
  if (redirected === 0) return { verdict: 'unknown: the sk_msg program redirected nothing, so the check did not test a sockmap', summary: 'no redirect happened' };
  const name = (o: WakeupObservation) => `${o.path}/${o.waiter}`;
  const noData = observations.filter((o) => !o.woke && o.readableAfter === 0);
  if (noData.length > 0) return { verdict: `unknown: no wake-up and no data either (${noData.map(name).join(', ')})`, summary: 'data did not arrive' };
  const problems: string[] = [];
  const lost = observations.filter((o) => !o.woke);
  if (lost.length > 0) problems.push(`no wake-up although data arrived: ${lost.map(name).join(', ')}`);
  for (const s of stress.filter((x) => x.stalls > 0)) problems.push(`${s.stalls} lost wake-up(s) in ${s.rounds} ${s.path} ${s.mode} rounds`);
  const allShort = observations.filter((o) => o.fionread >= 0 && o.fionread < o.readableAfter);
  const fionread = (list: WakeupObservation[]) => `FIONREAD said ${list[0]!.fionread} for ${list[0]!.readableAfter} readable bytes (${[...new Set(list.map((x) => x.path))].join(', ')} path)`;
  const short = allShort.filter((o) => o.path === 'tcp');
  if (short.length > 0) problems.push(`${fionread(short)}: the regression of upstream ${SOCKMAP_COMMITS.fionreadForSockmap}, fixed by ${SOCKMAP_COMMITS.receiveQueueFix}`);
  // Redirected bytes only: the older limitation (see above), unless the regression is there too.
  const redirectOnly = allShort.filter((o) => o.path === 'redirect');
  const rounds = stress.reduce((n, x) => n + x.rounds, 0);
  const woken = `${observations.length} single waits and ${rounds} stress rounds`;
  if (problems.length > 0) {
    if (lost.length === 0 && !stress.some((x) => x.stalls > 0)) problems.push(`no wake-up was lost in ${woken}`);
    if (redirectOnly.length > 0) problems.push(fionread(redirectOnly));
    return { verdict: 'regressed', summary: problems.join('; ') };
  }
  const stressBroken = stress.find((x) => x.errno !== 0);
  if (stressBroken) return { verdict: `unknown: the ${stressBroken.path} ${stressBroken.mode} stress stopped with errno ${stressBroken.errno}`, summary: 'the stress rounds could not run' };
  // Fail-safe: nginx and Java NIO size reads by FIONREAD and would read 0 on accelerated sockets.
  if (redirectOnly.length > 0) {
    const why = `an older sockmap limitation, not the regression: FIONREAD counts the TCP receive queue only (upstream ${SOCKMAP_COMMITS.fionreadForSockmap} added the redirected bytes)`;
    return { verdict: 'limited', summary: `every waiter was woken (${woken}), but ${fionread(redirectOnly)}: ${why}` };
  }
  return { verdict: 'ok', summary: `every waiter was woken (${woken}) and FIONREAD counted every byte` };
}

