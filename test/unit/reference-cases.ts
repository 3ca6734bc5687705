// capture-spec's "Reference outcomes" table as data, in IPv4 and IPv6.
import type { Connection, Outcome } from '../../src/policy/index.js';
import { inb, out } from './fixtures.js';

export interface Family {
  name: string;
  pod: string;
  remote: string;
  client: string;
  loop: string;
  passthrough: string;
}

export const FAMILIES: Family[] = [
  { name: 'IPv4', pod: '10.1.0.2', remote: '10.2.0.5', client: '10.1.0.1', loop: '127.0.0.1', passthrough: '127.0.0.6' },
  { name: 'IPv6', pod: 'fd00::2', remote: 'fd00:2::5', client: 'fd00::1', loop: '::1', passthrough: '::6' },
];

export interface Row {
  name: string;
  conn: (f: Family) => Connection;
  outcome: Outcome;
  port: number | 'dst';
  /** The original destination is the connection's own destination on capture. */
  step: string;
}

export const ROWS: Row[] = [
  { name: 'app → remote', conn: (f) => out(f.remote, 80), outcome: 'outbound-proxy', port: 15001, step: 'outbound.10' },
  { name: 'app → remote tunnel port', conn: (f) => out(f.remote, 15008), outcome: 'outbound-proxy', port: 15001, step: 'outbound.10' },
  { name: 'app → loopback', conn: (f) => out(f.loop, 8080), outcome: 'pass', port: 'dst', step: 'outbound.4b' },
  { name: 'app → own pod IP', conn: (f) => out(f.pod, 8080), outcome: 'pass', port: 'dst', step: 'outbound.4b' },
  { name: 'proxy → remote', conn: (f) => out(f.remote, 80, { uid: 1337 }), outcome: 'pass', port: 'dst', step: 'outbound.4c' },
  { name: 'proxy → own pod IP (hairpin)', conn: (f) => out(f.pod, 8080, { uid: 1337, src: f.pod }), outcome: 'inbound-proxy', port: 15006, step: 'outbound.4a' },
  { name: 'proxy → app as passthrough', conn: (f) => out(f.pod, 8080, { uid: 1337, src: f.passthrough }), outcome: 'pass', port: 'dst', step: 'outbound.3' },
  { name: 'proxy → own tunnel port', conn: (f) => out(f.pod, 15008, { uid: 1337 }), outcome: 'pass', port: 'dst', step: 'outbound.4c' },
  { name: 'gid-only proxy → remote', conn: (f) => out(f.remote, 80, { uid: 0, gid: 1337 }), outcome: 'pass', port: 'dst', step: 'outbound.5c' },
  { name: 'readiness probe of a proxy', conn: (f) => out(f.passthrough, 15002, { uid: 1337, src: f.loop }), outcome: 'inbound-proxy', port: 15006, step: 'outbound.4a' },
  { name: 'UDP (DNS off)', conn: (f) => out(f.remote, 53, { protocol: 'udp' }), outcome: 'pass', port: 'dst', step: 'outbound.10' },
  { name: 'remote → app port', conn: (f) => inb(f.pod, 8080, { src: f.client }), outcome: 'inbound-proxy', port: 15006, step: 'inbound.5' },
  ...[15008, 15020, 15021, 15090].map(
    (port): Row => ({ name: `remote → ${port}`, conn: (f) => inb(f.pod, port, { src: f.client }), outcome: 'pass', port: 'dst', step: port === 15008 ? 'inbound.4' : 'inbound.5' }),
  ),
  { name: 'remote → 15001', conn: (f) => inb(f.pod, 15001, { src: f.client }), outcome: 'inbound-proxy', port: 15006, step: 'inbound.5' },
];
