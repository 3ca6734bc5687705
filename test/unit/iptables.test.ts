// renderIptables(): the rule order follows the spec's steps. Real kernel behaviour of
// these rules is checked by test/kernel/oracle.test.ts.
import test from 'ava';
import { renderIptables } from '../../src/policy/index.js';
import { pod, policyOf } from './fixtures.js';

const A = 'traffic.sidecar.istio.io/';
const dns = { spec: { containers: [{ name: 'istio-proxy', env: [{ name: 'ISTIO_META_DNS_CAPTURE', value: 'true' }] }] } };

function outputRules(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('-A ISTIO_OUTPUT'));
}

test('the output chain follows the spec steps in order', (t) => {
  const p = policyOf(pod({ [`${A}excludeOutboundPorts`]: '25', [`${A}excludeOutboundIPRanges`]: '10.96.0.0/12', [`${A}includeOutboundPorts`]: '5432', [`${A}includeOutboundIPRanges`]: '10.0.0.0/8' }, dns));
  const rules = outputRules(renderIptables(p).ipv4);
  const at = (re: RegExp) => {
    const i = rules.findIndex((r) => re.test(r));
    t.not(i, -1, `no rule matches ${re}`);
    return i;
  };
  const order = [
    at(/--dport 25 -j RETURN/),
    at(/-s 127\.0\.0\.6\/32 -j RETURN/),
    at(/--uid-owner 1337 -j ISTIO_IN_REDIRECT/),
    at(/--gid-owner 1337 -j RETURN/),
    at(/--dport 53 -j REDIRECT --to-ports 15053/),
    at(/-d 127\.0\.0\.1\/32 -j RETURN/),
    at(/-d 10\.96\.0\.0\/12 -j RETURN/),
    at(/--dport 5432 -j ISTIO_REDIRECT/),
    at(/-d 10\.0\.0\.0\/8 -j ISTIO_REDIRECT/),
  ];
  t.deepEqual(order, [...order].sort((a, b) => a - b));
});

test('the IPv6 form uses ::1 and ::6 and only IPv6 CIDRs', (t) => {
  const p = policyOf(pod({ [`${A}excludeOutboundIPRanges`]: '10.96.0.0/12,fd00:96::/64' }));
  const v6 = renderIptables(p).ipv6;
  t.regex(v6, /-s ::6\/128 -j RETURN/);
  t.regex(v6, /-d ::1\/128 -j RETURN/);
  t.regex(v6, /-d fd00:96::\/64 -j RETURN/);
  t.notRegex(v6, /10\.96/);
  t.notRegex(renderIptables(p).ipv4, /fd00/);
});

test('several proxy uids give one rule triple per uid, in order', (t) => {
  const p = { ...policyOf(pod()), proxyUids: [1337, 1338] };
  const owners = outputRules(renderIptables(p).ipv4).filter((r) => r.includes('--uid-owner')).map((r) => (r.includes('1338') ? 1338 : 1337));
  t.deepEqual(owners, [1337, 1337, 1337, 1338, 1338, 1338]);
});

test('no inbound capture writes no ISTIO_INBOUND jump', (t) => {
  const p = policyOf(pod({ [`${A}includeInboundPorts`]: '' }));
  t.notRegex(renderIptables(p).ipv4, /-A PREROUTING -p tcp -j ISTIO_INBOUND/);
  t.regex(renderIptables(policyOf(pod())).ipv4, /-A PREROUTING -p tcp -j ISTIO_INBOUND/);
});
