// HAProxy standing in for Envoy in a mesh pod: an outbound listener (15001) and an inbound
// listener (15006), both forwarding to the connection's original destination, the inbound
// one from the passthrough source (127.0.0.6 / ::6) as Envoy's inbound passthrough does.
//
// How HAProxy finds the original destination: a `server 0.0.0.0:0` connects to the
// frontend connection's `dst`. For IPv4 listeners HAProxy (built with USE_NETFILTER and
// USE_TPROXY, as Debian's is) fills `dst` with getsockopt(SOL_IP, SO_ORIGINAL_DST), so the
// IPv4 path really exercises the capture's SO_ORIGINAL_DST answer. For IPv6 listeners it
// never asks IP6T_SO_ORIGINAL_DST: `dst` is plain getsockname() (src/sock_inet.c:
// proto_fam_inet6.get_dst = sock_get_dst), which under REDIRECT is [::1]:15001 outbound and
// [pod IP]:15006 inbound. So the IPv6 frontends take the destination from the Host header
// (`set-dst`, `set-dst-port`), as Envoy's HTTP routing would, and the hop header records
// what the kernel said (`kdst`) separately from where HAProxy went (`fwd-dst`).
//
// Every hop adds a response header `x-sluice-hop` (http-after-response, so errors carry it
// too) and a request header `x-sluice-via` that the app echoes. A request that reaches the
// same pod's same listener twice, or whose destination is a proxy port, is a capture loop:
// HAProxy answers 508 at once instead of looping until it runs out of connections.
import type { PodName } from './mesh-topology.js';
import { startPodProcess, waitListening, type PodProcess, type PodProcessOptions } from './pod-process.js';
import { tool } from '../system/tools.js';

export const HOP_HEADER = 'x-sluice-hop';
export const VIA_HEADER = 'x-sluice-via';
export const ERROR_HEADER = 'x-sluice-error';

export interface HaproxyConfigOptions {
  pod: PodName;
  outboundPort: number;
  inboundPort: number;
  /**
   * Fixed IPv4 upstreams instead of the original destination (inbound from 127.0.0.6 as
   * before): an explicit proxy that clients address directly, with no capture at all.
   * The bench's floor (bench/proxy.ts) uses it.
   */
  upstream?: { outbound: string; inbound: string };
}

type Listener = 'outbound' | 'inbound';

function frontend(o: HaproxyConfigOptions, listener: Listener, family: 4 | 6): string[] {
  const port = listener === 'outbound' ? o.outboundPort : o.inboundPort;
  const via = `${o.pod}/${listener}`;
  const hop = [
    `pod=${o.pod}`,
    `listener=${listener}`,
    `port=${port}`,
    `family=${family}`,
    'peer=%[src]',
    'kdst=%[var(txn.kdst)]',
    'kport=%[var(txn.kport)]',
    'fwd-src=%[bc_src]',
    'fwd-dst=%[bc_dst]',
    'fwd-port=%[bc_dst_port]',
  ].join(' ');
  const lines = [
    `frontend ${listener}${family}`,
    family === 4 ? `  bind 0.0.0.0:${port}` : `  bind [::]:${port} v6only`,
    // What the kernel told HAProxy: SO_ORIGINAL_DST (IPv4) or getsockname() (IPv6).
    '  http-request set-var(txn.kdst) dst',
    '  http-request set-var(txn.kport) dst_port',
    `  http-request return status 508 content-type text/plain string "capture loop: ${via} reached twice" hdr ${ERROR_HEADER} "loop at ${via}" if { req.hdr(${VIA_HEADER}) -m str ${via} }`,
  ];
  if (family === 6) {
    // HAProxy reads no IP6T_SO_ORIGINAL_DST: route by the Host header ([IPv6]:port).
    lines.push(
      `  http-request set-dst req.hdr(host),field(1,']'),field(2,'[')`,
      `  http-request set-dst-port req.hdr(host),field(2,']'),field(2,':')`,
    );
  }
  // An explicit proxy is addressed on its own port: that is no missing original destination.
  const fixed = o.upstream !== undefined && family === 4;
  if (!fixed) lines.push(`  http-request return status 508 content-type text/plain string "no original destination at ${via}" hdr ${ERROR_HEADER} "no original destination at ${via}" if { dst_port ${o.outboundPort} ${o.inboundPort} }`);
  lines.push(
    `  http-request add-header ${VIA_HEADER} ${via}`,
    `  http-after-response add-header ${HOP_HEADER} "${hop}"`,
    `  default_backend ${fixed ? `upstream-${listener}` : listener === 'outbound' ? 'original-destination' : `passthrough${family}`}`,
    '',
  );
  return lines;
}

export function renderHaproxyConfig(o: HaproxyConfigOptions): string {
  return [
    `# sluice mesh test: the proxy of pod ${o.pod} (generated)`,
    'global',
    '  log stdout format raw local0',
    '  maxconn 200',
    '  nbthread 1',
    '',
    'defaults',
    '  mode http',
    '  log global',
    `  log-format "pod=${o.pod} frontend=%ft client=%ci:%cp kdst=%[var(txn.kdst)]:%[var(txn.kport)] upstream=%bi:%bp->%si:%sp status=%ST"`,
    '  option httpclose',
    '  http-reuse never',
    '  timeout connect 2s',
    '  timeout client 10s',
    '  timeout server 10s',
    '',
    ...frontend(o, 'outbound', 4),
    ...frontend(o, 'outbound', 6),
    ...frontend(o, 'inbound', 4),
    ...frontend(o, 'inbound', 6),
    '# The original destination, as the frontend left it in `dst`.',
    'backend original-destination',
    '  server original 0.0.0.0:0',
    '',
    '# Inbound passthrough: the app sees the proxy coming from 127.0.0.6 / ::6.',
    'backend passthrough4',
    '  server original 0.0.0.0:0 source 127.0.0.6',
    '',
    'backend passthrough6',
    '  server original 0.0.0.0:0 source [::6]:0',
    '',
    ...(o.upstream ? ['# Explicit: fixed upstreams (IPv4 listeners).', 'backend upstream-outbound', `  server upstream ${o.upstream.outbound}`, '', 'backend upstream-inbound', `  server upstream ${o.upstream.inbound} source 127.0.0.6`, ''] : []),
  ].join('\n');
}

/** The listeners `ss -tln` shows once HAProxy is up. */
export function haproxyListeners(o: HaproxyConfigOptions): string[] {
  return [o.outboundPort, o.inboundPort].flatMap((p) => [`0.0.0.0:${p}`, `[::]:${p}`]);
}

/** Starts HAProxy in the pod (as `proc.who`, normally 1337) and waits for its listeners. */
export async function startHaproxy(o: HaproxyConfigOptions, configPath: string, proc: PodProcessOptions): Promise<PodProcess> {
  const p = startPodProcess(`haproxy in pod ${o.pod}`, proc, tool('haproxy'), ['-db', '-f', configPath]);
  try {
    await waitListening(p, proc.netns, haproxyListeners(o), 5000);
    return p;
  } catch (err) {
    await p.stop();
    throw err;
  }
}
