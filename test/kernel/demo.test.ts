// `sluice demo` as a reader runs it (the README's first command): a real daemon, HAProxy
// as uid 1337 in two pods, real HTTP. Its JSON report must show each request on the path
// the spec gives, and nothing of the run may be left afterwards.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { findCgroup2Mount } from '../../src/bpf/system.js';
import type { DemoReport } from '../../src/demo/demo.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { meshRequirementsMissing } from './harness/mesh.js';
import { REPO_ROOT } from './harness/requirements.js';

const missing = meshRequirementsMissing() ?? bpfRequirementsMissing();

test('sluice demo: every request takes the captured path, and nothing is left', async (t) => {
  if (missing) return t.fail(missing);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'demo', '--json'], { cwd: REPO_ROOT, timeout: 120_000 });
  const report = JSON.parse(stdout) as DemoReport;
  t.true(report.ok, JSON.stringify(report.requests.filter((r) => !r.ok)));
  t.deepEqual(
    report.pods.map((p) => [p.name, p.status]),
    [
      ['demo/a', 'applied'],
      ['demo/b', 'applied'],
    ],
  );
  const byId = new Map(report.requests.map((r) => [r.id, r]));
  for (const v of ['v4', 'v6']) {
    t.deepEqual(byId.get(`app-a-to-pod-b-${v}`)?.path, ['a/outbound:15001', 'b/inbound:15006'], `app-a-to-pod-b-${v}`);
    t.deepEqual(byId.get(`app-b-to-pod-a-${v}`)?.path, ['b/outbound:15001', 'a/inbound:15006'], `app-b-to-pod-a-${v}`);
    t.deepEqual(byId.get(`app-a-to-own-pod-ip-${v}`)?.path, [], `app-a-to-own-pod-ip-${v}: direct`);
    t.deepEqual(byId.get(`app-a-to-loopback-${v}`)?.path, [], `app-a-to-loopback-${v}: direct`);
    t.deepEqual(byId.get(`proxy-uid-a-to-pod-b-${v}`)?.path, ['b/inbound:15006'], `proxy-uid-a-to-pod-b-${v}: the proxy's own traffic skips 15001`);
    t.is(byId.get(`app-a-to-pod-b-${v}`)?.app?.peer.replace(/:\d+$/, ''), v === 'v4' ? '127.0.0.6' : '[::6]', 'the app sees the passthrough source');
  }
  // HAProxy read the original destination with SO_ORIGINAL_DST (IPv4) on both hops.
  t.deepEqual(byId.get('app-a-to-pod-b-v4')?.hops.map((h) => h.kernelDst), ['10.1.0.3:8080', '10.1.0.3:8080']);
  t.true((report.decisions['outbound-proxy'] ?? 0) > 0 && (report.decisions['inbound-proxy'] ?? 0) > 0, 'the kernel counted the captures');
  t.deepEqual(report.leftovers, []);
  t.false(existsSync(report.daemon.bpffs), 'pins removed');
  t.false(existsSync(report.daemon.cgroup), 'cgroup removed');
  const cg = findCgroup2Mount()!;
  t.false(readdirSync(cg).some((n) => report.daemon.cgroup.endsWith(n)), 'no demo cgroup under the cgroup2 mount');
});
