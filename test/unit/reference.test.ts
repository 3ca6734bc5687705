// Every row of capture-spec's "Reference outcomes" table, in IPv4 and IPv6.
import test from 'ava';
import { decide } from '../../src/policy/index.js';
import { pod, policyOf } from './fixtures.js';
import { FAMILIES, ROWS } from './reference-cases.js';

const policy = policyOf(pod());

for (const f of FAMILIES) {
  for (const row of ROWS) {
    test(`${f.name}: ${row.name}`, (t) => {
      const conn = row.conn(f);
      const expectedPort = row.port === 'dst' ? conn.dst.port : row.port;
      const original = f.name === 'IPv6' ? `[${conn.dst.ip}]:${conn.dst.port}` : `${conn.dst.ip}:${conn.dst.port}`;
      for (const istioQuirks of [false, true]) {
        const d = decide(policy, conn, { istioQuirks });
        t.is(d.outcome, row.outcome, `istioQuirks=${istioQuirks}: ${d.reason}`);
        t.is(d.port, expectedPort);
        t.is(d.step, row.step);
        t.is(d.originalDestination, row.outcome === 'pass' ? null : original);
      }
    });
  }
}
