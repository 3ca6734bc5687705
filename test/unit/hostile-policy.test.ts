// Hostile pod input in the policy layer (issue 9, items 4 and 10): non-string annotation
// values and policies over a kernel limit are each one pod's error, reported by
// `sluice validate` and `explain`, never a crash at apply.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { NetnsError } from '../../src/dataplane/index.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Reconciler } from '../../src/daemon/reconcile.js';
import { annotationNetns } from '../../src/sources/file-feed.js';
import { buildPolicies, buildPolicy, DEFAULT_CONFIG, DEFAULT_MAX_SET_ENTRIES, KERNEL_LIMITS, parseNodeConfig, type Pod, type PolicyResult } from '../../src/policy/index.js';
import { pod, sidecar } from './fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const A = 'traffic.sidecar.istio.io/';
const errorsOf = (r: PolicyResult) => (r.status === 'rejected' ? r.errors.map((e) => e.message) : [`not rejected: ${r.status}`]);
/** A pod whose annotation `key` holds a value YAML gives as a non-string. */
const withRaw = (key: string, value: unknown, name = 'app'): Pod => {
  const p = pod({}, { name });
  (p.metadata.annotations as Record<string, unknown>)[key] = value;
  return p;
};

test('a non-string annotation or label value rejects that pod alone, naming the key', (t) => {
  for (const v of [true, {}, 42, null, ['a']]) {
    const [msg] = errorsOf(buildPolicy(withRaw('sluice.dev/netns', v), [], DEFAULT_CONFIG));
    t.regex(msg ?? '', /^Pod default\/app: annotation sluice\.dev\/netns=.* is invalid: annotation values are strings/, JSON.stringify(v));
  }
  const labelled = pod({}, { labels: { app: 7 as unknown as string } });
  t.regex(errorsOf(buildPolicy(labelled, [], DEFAULT_CONFIG))[0] ?? '', /label app=/);
  const sc = sidecar('s', 'default', {}, { annotations: { [`${A}excludeOutboundPorts`]: 80 as unknown as string } });
  t.regex(errorsOf(buildPolicy(pod(), [sc], DEFAULT_CONFIG))[0] ?? '', /^Sidecar default\/s: annotation traffic\.sidecar\.istio\.io\/excludeOutboundPorts=/);
});

test('reconcile: a pod with sluice.dev/netns true, {} or 42 is rejected; the pods after it apply', (t) => {
  const entries = new Map<bigint, unknown>();
  const dp = { applyPolicy: (c: bigint, p: unknown) => void entries.set(c, p), removePolicy: (c: bigint) => void entries.delete(c), listPolicies: () => [...entries.keys()], lookupOriginalDestination: () => null, readCounters: () => ({}), mapUsage: () => [] };
  const netns = {
    cookieOf(path: string) {
      if (typeof path !== 'string') throw new TypeError('koffi: expected string'); // what the native call does
      if (path === '/ns/good') return 7n;
      throw new NetnsError(path, 'ENOENT');
    },
  };
  const metrics = new Metrics(() => null);
  const r = new Reconciler(dp, netns, metrics, { info() {}, warn() {}, error() {} });
  const pods = [withRaw('sluice.dev/netns', true, 'a'), withRaw('sluice.dev/netns', {}, 'b'), withRaw('sluice.dev/netns', 42, 'c'), pod({ 'sluice.dev/netns': '/ns/good' }, { name: 'good' })];
  const records = buildPolicies(pods, [], DEFAULT_CONFIG).map((result, i) => ({ result, netns: annotationNetns(pods[i]!) }));
  const states = r.reconcile(records);
  t.deepEqual(
    states.map((s) => [s.name, s.status]),
    [
      ['a', 'rejected'],
      ['b', 'rejected'],
      ['c', 'rejected'],
      ['good', 'applied'],
    ],
  );
  t.regex(states[0]!.error ?? '', /sluice\.dev\/netns/);
  t.true(r.ready);
  t.deepEqual([...entries.keys()], [7n]);
});

test('a 70,000-CIDR annotation is rejected naming the field and the limit, without quoting it all', (t) => {
  const cidrs = Array.from({ length: 70_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`).join(',');
  const [msg, ...rest] = errorsOf(buildPolicy(pod({ [`${A}excludeOutboundIPRanges`]: cidrs }), [], DEFAULT_CONFIG));
  t.deepEqual(rest, []);
  t.is(msg, `Pod default/app: annotation ${A}excludeOutboundIPRanges="(70000 entries)" is invalid: at most ${DEFAULT_MAX_SET_ENTRIES} CIDRs per pod; use fewer (wider CIDRs), or raise maxSetEntriesPerPod in the node config`);
  const ok = Array.from({ length: DEFAULT_MAX_SET_ENTRIES }, (_, i) => String(i + 1)).join(',');
  t.is(buildPolicy(pod({ [`${A}excludeOutboundPorts`]: ok }), [], DEFAULT_CONFIG).status, 'captured', 'exactly the cap is fine');
});

test('every set is capped, merged lists included, and the cap is a node config setting', (t) => {
  const config = parseNodeConfig({ maxSetEntriesPerPod: 3 }, 'c.yaml');
  t.is(config.maxSetEntriesPerPod, 3);
  const cases: [Record<string, string>, RegExp][] = [
    [{ [`${A}includeOutboundPorts`]: '1,2,3,4' }, /includeOutboundPorts.*at most 3 ports/],
    [{ [`${A}includeInboundPorts`]: '1,2,3,4' }, /includeInboundPorts.*at most 3 ports/],
    [{ [`${A}excludeInterfaces`]: 'a,b,c,d' }, /excludeInterfaces.*at most 3 interfaces/],
    [{ 'istio.io/reroute-virtual-interfaces': 'a,b,c,d' }, /reroute-virtual-interfaces.*at most 3 interfaces/],
    [{ [`${A}includeOutboundIPRanges`]: '1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8' }, /includeOutboundIPRanges.*at most 3 CIDRs/],
    // 15090, 15021 and the status port 15020 are always excluded: one more is over 3.
    [{ [`${A}excludeInboundPorts`]: '9' }, /excluded inbound ports .*"\(4 entries\)".*at most 3 ports/],
  ];
  for (const [ann, re] of cases) t.regex(errorsOf(buildPolicy(pod(ann), [], config)).join('\n'), re, JSON.stringify(ann));
  const binds = sidecar('s', 'default', { egress: [1, 2, 3, 4].map((i) => ({ bind: `10.9.0.${i}`, captureMode: 'NONE' })) });
  t.regex(errorsOf(buildPolicy(pod(), [binds], config)).join('\n'), /Sidecar spec\.egress binds .*at most 3 binds/);
  for (const bad of [0, 32_769, 1.5, '10']) t.throws(() => parseNodeConfig({ maxSetEntriesPerPod: bad }, 'c.yaml'), { message: /maxSetEntriesPerPod/ });
});

test("the codec's limits fail validation, not apply: 8 proxy ids, 4 pod IPs per family", (t) => {
  t.is(KERNEL_LIMITS.proxyIds, 8);
  const ips = (n: number) => ({ status: { podIPs: Array.from({ length: n }, (_, i) => ({ ip: `10.1.0.${i + 1}` })) } });
  t.is(buildPolicy(pod({}, ips(4)), [], DEFAULT_CONFIG).status, 'captured');
  t.regex(errorsOf(buildPolicy(pod({}, ips(5)), [], DEFAULT_CONFIG))[0] ?? '', /status\.podIPs="\(5 entries\)" is invalid: at most 4 IPv4 pod addresses per pod/);
  t.throws(() => parseNodeConfig({ proxyUids: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, 'c.yaml'), { message: /proxyUids.*at most 8 ids/ });
  const nine = { ...DEFAULT_CONFIG, proxyUids: [1, 2, 3, 4, 5, 6, 7, 8, 9] };
  t.regex(errorsOf(buildPolicy(pod(), [], nine))[0] ?? '', /proxy uids .*at most 8 proxy uids/);
});

test('`sluice validate` and `explain` report a policy over a limit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-limits-'));
  const file = join(dir, 'pods.yaml');
  const cidrs = Array.from({ length: 70_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`).join(',');
  writeFileSync(file, stringify(pod({ [`${A}excludeOutboundIPRanges`]: cidrs })));
  const run = (args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT }, (err, stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, out: stdout + stderr })),
    );
  try {
    const v = await run(['validate', '--source', `file:${file}`]);
    t.is(v.code, 1);
    t.regex(v.out, /default\/app: REJECTED\n {2}- Pod default\/app: annotation traffic\.sidecar\.istio\.io\/excludeOutboundIPRanges="\(70000 entries\)" is invalid: at most 1024 CIDRs per pod/);
    const e = await run(['explain', '--source', `file:${file}`, 'app', '10.2.0.5:80']);
    t.is(e.code, 2);
    t.regex(e.out, /has no valid policy:\n {2}Pod default\/app: annotation traffic\.sidecar\.istio\.io\/excludeOutboundIPRanges.*at most 1024 CIDRs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
