// `sluice explain`: the decision one connection gets, and why.
import { InputError, canonicalIp, decide, formatEndpoint, parseEndpoint, type Connection, type Decision, type PolicyResult } from '../policy/index.js';
import { findPod, loadPolicies } from './load.js';

export interface ExplainOptions {
  source: string;
  kubeconfig?: string;
  config?: string;
  uid?: string;
  gid?: string;
  src?: string;
  udp?: boolean;
  inbound?: boolean;
  interface?: string;
  json?: boolean;
}

/** The app's uid when none is given: any id that is not a proxy id. */
export const DEFAULT_APP_UID = 1000;

function parseId(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,10}$/.test(value) || Number(value) > 0xfffffffe) throw new InputError('BAD_ID', `${flag} ${value} is not a numeric id; use e.g. ${flag} 1337`);
  return Number(value);
}

export function connectionFromArgs(dst: string, opts: ExplainOptions): Connection {
  const ep = parseEndpoint(dst);
  if (!ep) throw new InputError('BAD_ADDRESS', `DST ${JSON.stringify(dst)} is not IP:PORT; use e.g. 10.2.0.5:80 or [fd00::2]:8080 (port 1..65535)`);
  let src: string | undefined;
  if (opts.src !== undefined) {
    src = canonicalIp(opts.src) ?? undefined;
    if (src === undefined) throw new InputError('BAD_ADDRESS', `--src ${JSON.stringify(opts.src)} is not an IP address; use e.g. --src 127.0.0.6`);
  }
  const conn: Connection = {
    direction: opts.inbound ? 'inbound' : 'outbound',
    protocol: opts.udp ? 'udp' : 'tcp',
    dst: ep,
    ...(src !== undefined ? { src } : {}),
    ...(opts.interface !== undefined ? { interface: opts.interface } : {}),
  };
  if (!opts.inbound) {
    conn.uid = parseId('--uid', opts.uid) ?? DEFAULT_APP_UID;
    conn.gid = parseId('--gid', opts.gid) ?? conn.uid;
  }
  return conn;
}

export interface Explanation extends Decision {
  pod: string;
  direction: Connection['direction'];
}

export function explainResult(result: PolicyResult, conn: Connection): Explanation {
  const pod = `${result.pod.namespace}/${result.pod.name}`;
  if (result.status === 'rejected') {
    throw new InputError('POLICY_REJECTED', `pod ${pod} has no valid policy:\n  ${result.errors.map((e) => e.message).join('\n  ')}`);
  }
  const decision: Decision =
    result.status === 'uncaptured'
      ? { outcome: 'pass', port: conn.dst.port, originalDestination: null, step: 'uncaptured', reason: `the pod is not captured: ${result.reason}` }
      : decide(result.policy, conn);
  return { pod, direction: conn.direction, ...decision };
}

export function formatExplanation(e: Explanation, conn: Connection): string {
  const who = conn.direction === 'outbound' ? ` uid ${conn.uid} gid ${conn.gid}` : '';
  const from = conn.src ? ` from ${conn.src}` : '';
  const what =
    e.outcome === 'pass'
      ? `pass: the real listener on port ${e.port}`
      : `${e.outcome} on port ${e.port}, original destination ${e.originalDestination}`;
  return `${e.pod} ${e.direction} ${conn.protocol}${who}${from} -> ${formatEndpoint(conn.dst)}: ${what} [${e.step}: ${e.reason}]`;
}

export async function runExplain(pod: string, dst: string, opts: ExplainOptions): Promise<void> {
  const conn = connectionFromArgs(dst, opts);
  const { results } = await loadPolicies(opts.source, opts.config, opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  const e = explainResult(findPod(results, pod), conn);
  const { pod: p, direction, outcome, port, originalDestination, step, reason } = e;
  console.log(opts.json ? JSON.stringify({ pod: p, direction, outcome, port, originalDestination, step, reason }) : formatExplanation(e, conn));
}
