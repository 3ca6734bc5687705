// Original-destination lookups for proxies that cannot call getsockopt, over HTTP and
// a unix socket. Both parse and answer through the same function.
import { createServer, type Server } from 'node:net';
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { formatEndpoint, parseEndpoint } from '../policy/net.js';
import type { DataPlane } from '../dataplane/index.js';
import type { LookupVia, Metrics } from './metrics.js';

const MAX_U64 = (1n << 64n) - 1n;
/** Longest request line: two bracketed IPv6 endpoints and a cookie fit with room to spare. */
export const MAX_LINE = 4096;

export type LookupAnswer =
  | { kind: 'found'; originalDestination: string }
  | { kind: 'not_found' }
  | { kind: 'bad_request'; error: string };

export function lookup(dp: DataPlane, metrics: Metrics, via: LookupVia, src: string | undefined, dst: string | undefined, netns: string | undefined): LookupAnswer {
  const answer = answerLookup(dp, src, dst, netns);
  metrics.lookups.inc({ via, result: answer.kind });
  return answer;
}

function answerLookup(dp: DataPlane, src: string | undefined, dst: string | undefined, netns: string | undefined): LookupAnswer {
  const s = src ? parseEndpoint(src) : null;
  const d = dst ? parseEndpoint(dst) : null;
  if (!s || !d) return { kind: 'bad_request', error: 'src and dst must be IP:PORT or [IPv6]:PORT (the connection as the proxy sees it: peer, then local)' };
  let cookie: bigint | undefined;
  if (netns !== undefined && netns !== '') {
    // A cookie is a __u64: anything longer or larger is a bad request, never a throw.
    cookie = /^\d{1,20}$/.test(netns) ? BigInt(netns) : -1n;
    if (cookie < 0n || cookie > MAX_U64) return { kind: 'bad_request', error: 'netns must be the decimal netns cookie (0..2^64-1)' };
  }
  const found = dp.lookupOriginalDestination(s, d, cookie);
  return found ? { kind: 'found', originalDestination: formatEndpoint(found) } : { kind: 'not_found' };
}

/**
 * Line protocol, one request per line, one answer per line:
 *   request:  `SRC DST [NETNS_COOKIE]`   e.g. `10.1.0.2:43512 10.1.0.2:15001`
 *   answers:  `OK IP:PORT` | `NOTFOUND` | `ERR message`
 * SRC is the proxy's peer (the app) and DST the proxy's local address, as accept() returns them.
 * Only a line longer than MAX_LINE is refused (not a buffer of many short ones), and a
 * client that does not read its answers stops being read: replies never pile up here.
 */
export function serveLookupSocket(path: string, dp: () => DataPlane | null, metrics: Metrics, access: SocketAccess = {}): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    const tooLong = () => sock.end('ERR request line too long\n');
    // Answers the complete lines buffered, until the socket's buffer is full.
    const pump = () => {
      let nl: number;
      while (!sock.writableNeedDrain && (nl = buf.indexOf('\n')) !== -1) {
        if (nl > MAX_LINE) return tooLong();
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        sock.write(answerLine(line, dp(), metrics));
      }
      if (sock.writableNeedDrain) sock.pause();
      else if (buf.length > MAX_LINE) tooLong();
    };
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('drain', () => {
      pump();
      if (!sock.writableNeedDrain) sock.resume();
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      pump();
    });
  });
  return listenPrivately(server, path, access);
}

export interface SocketAccess {
  /** Group allowed to connect (mode 0660); without one only the owner may (0600). */
  gid?: number;
}

/**
 * Binds with umask 077, so the socket is never connectable by others, even for a moment,
 * then opens it to the group when one is given.
 */
async function listenPrivately(server: Server, path: string, access: SocketAccess): Promise<Server> {
  const old = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  if (access.gid !== undefined) chownSync(path, process.getuid?.() ?? 0, access.gid);
  chmodSync(path, access.gid === undefined ? 0o600 : 0o660);
  return server;
}

function answerLine(line: string, dp: DataPlane | null, metrics: Metrics): string {
  if (!dp) return 'ERR data plane not loaded yet\n';
  const [src, dst, netns, extra] = line.split(/\s+/);
  if (extra !== undefined) return 'ERR expected `SRC DST [NETNS_COOKIE]`\n';
  const a = lookup(dp, metrics, 'unix', src, dst, netns);
  return a.kind === 'found' ? `OK ${a.originalDestination}\n` : a.kind === 'not_found' ? 'NOTFOUND\n' : `ERR ${a.error}\n`;
}
