// The kernel's per-step counters become sluice_decisions_total{outcome, step}: the outcome
// must be the one decide() gives for a connection decided at that step.
import test from 'ava';
import { counterNames } from '../../src/bpf/codec.js';
import { decisionOfCounter } from '../../src/daemon/metrics.js';
import { ROWS } from './reference-cases.js';

test('every reference row: the counter of its step reports its outcome', (t) => {
  for (const row of ROWS) {
    const name = `${row.outcome === 'pass' ? 'pass' : 'captured'}:${row.step}`;
    t.deepEqual(decisionOfCounter(name), { outcome: row.outcome, step: row.step }, row.name);
  }
});

test('event counters are not decisions; every step counter is', (t) => {
  const names = counterNames();
  t.true(names.length > 0);
  for (const n of names) {
    const isStep = /^(captured|pass):/.test(n);
    t.is(decisionOfCounter(n) !== null, isStep, n);
  }
  t.is(decisionOfCounter('conn_map_full'), null);
});
