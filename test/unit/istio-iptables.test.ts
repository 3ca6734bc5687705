import test from 'ava';
import { execFileSync } from 'node:child_process';
import { saveScript } from '../../src/daemon/istio-iptables.js';

const run = (script: string) => {
  try {
    return { code: 0, out: execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' }) };
  } catch (e) {
    return { code: (e as { status: number }).status, out: '' };
  }
};

test('the chains check fails, rather than reading "no chains", when no iptables-save could read the table', (t) => {
  // Without CAP_NET_ADMIN every saver fails: that must be "unknown", never "absent".
  t.not(run(saveScript(['/bin/false', '/bin/false'])).code, 0);
});

test('one saver that reads the table is enough, and its output is kept', (t) => {
  const r = run(saveScript(['/bin/false', '/bin/echo :ISTIO_OUTPUT']));
  t.is(r.code, 0);
  t.regex(r.out, /^:ISTIO_OUTPUT/m);
});
