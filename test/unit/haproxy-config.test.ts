// The lab's HAProxy config: the transparent proxy the demo and the e2e tests run, and the
// explicit variant (fixed upstreams) that the bench's floor runs. Rendering only.
import test from 'ava';
import { renderHaproxyConfig } from '../../src/lab/haproxy.js';

const base = { pod: 'a' as const, outboundPort: 15001, inboundPort: 15006 };

/** The lines of one section (`frontend outbound4`, `backend x`), up to the blank line. */
function section(cfg: string, name: string): string[] {
  const lines = cfg.split('\n');
  const at = lines.indexOf(name);
  if (at < 0) return [];
  const end = lines.indexOf('', at);
  return lines.slice(at + 1, end < 0 ? undefined : end).map((l) => l.trim());
}

test('transparent: every listener forwards to the original destination and refuses its own port', (t) => {
  const cfg = renderHaproxyConfig(base);
  t.true(section(cfg, 'frontend outbound4').includes('default_backend original-destination'));
  t.true(section(cfg, 'frontend inbound4').includes('default_backend passthrough4'));
  for (const f of ['outbound4', 'inbound4', 'outbound6', 'inbound6']) t.true(section(cfg, `frontend ${f}`).some((l) => l.includes('no original destination') && l.includes('dst_port 15001 15006')), f);
  t.deepEqual(section(cfg, 'backend upstream-outbound'), []);
});

test('explicit: the IPv4 listeners forward to the fixed upstreams (inbound from 127.0.0.6), IPv6 stays transparent', (t) => {
  const cfg = renderHaproxyConfig({ ...base, upstream: { outbound: '10.1.0.3:15006', inbound: '10.1.0.3:8080' } });
  const out4 = section(cfg, 'frontend outbound4');
  t.true(out4.includes('default_backend upstream-outbound'));
  // Addressed on its own port: that must not be answered as a missing original destination.
  t.false(out4.some((l) => l.includes('no original destination')));
  t.true(out4.some((l) => l.includes('capture loop')), 'the loop guard stays');
  t.true(section(cfg, 'frontend inbound4').includes('default_backend upstream-inbound'));
  t.deepEqual(section(cfg, 'backend upstream-outbound'), ['server upstream 10.1.0.3:15006']);
  t.deepEqual(section(cfg, 'backend upstream-inbound'), ['server upstream 10.1.0.3:8080 source 127.0.0.6']);
  t.true(section(cfg, 'frontend outbound6').includes('default_backend original-destination'));
  t.true(section(cfg, 'frontend outbound6').some((l) => l.includes('no original destination')));
});
