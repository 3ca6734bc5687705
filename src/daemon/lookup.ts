// Original-destination lookups for proxies that cannot call getsockopt, over HTTP and
// a unix socket. Both parse and answer through the same function.
import { createServer, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { formatEndpoint, parseEndpoint } from '../policy/net.js';
import type { DataPlane } from './dataplane.js';
import type { LookupVia, Metrics } from './metrics.js';

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
    if (!/^\d{1,20}$/.test(netns)) return { kind: 'bad_request', error: 'netns must be the decimal netns cookie' };
    cookie = BigInt(netns);
  }
  const found = dp.lookupOriginalDestination(s, d, cookie);
  return found ? { kind: 'found', originalDestination: formatEndpoint(found) } : { kind: 'not_found' };
}

/**
 * Line protocol, one request per line, one answer per line:
 *   request:  `SRC DST [NETNS_COOKIE]`   e.g. `10.1.0.2:43512 10.1.0.2:15001`
 *   answers:  `OK IP:PORT` | `NOTFOUND` | `ERR message`
 * SRC is the proxy's peer (the app) and DST the proxy's local address, as accept() returns them.
 */
export function serveLookupSocket(path: string, dp: () => DataPlane | null, metrics: Metrics): Server {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 4096) {
        sock.end('ERR request line too long\n');
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        sock.write(answerLine(line, dp(), metrics));
      }
    });
  });
  server.listen(path);
  return server;
}

function answerLine(line: string, dp: DataPlane | null, metrics: Metrics): string {
  if (!dp) return 'ERR data plane not loaded yet\n';
  const [src, dst, netns, extra] = line.split(/\s+/);
  if (extra !== undefined) return 'ERR expected `SRC DST [NETNS_COOKIE]`\n';
  const a = lookup(dp, metrics, 'unix', src, dst, netns);
  return a.kind === 'found' ? `OK ${a.originalDestination}\n` : a.kind === 'not_found' ? 'NOTFOUND\n' : `ERR ${a.error}\n`;
}
