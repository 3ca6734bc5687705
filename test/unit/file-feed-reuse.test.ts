// The file source is read on every resync; an unchanged text must not be parsed again
// (512 pods took ~100 ms of the event loop per pass), and any edit must be.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DEFAULT_CONFIG } from '../../src/policy/index.js';
import { fileFeed } from '../../src/sources/file-feed.js';

const pod = (name: string, port: string) =>
  stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', annotations: { 'sidecar.istio.io/status': '{}', 'sluice.dev/netns': `/run/netns/${name}`, 'traffic.sidecar.istio.io/excludeOutboundPorts': port } }, status: { podIP: '10.1.0.2' } });

test('an unchanged source file reuses its parse; an edit is parsed anew', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-feed-reuse-'));
  try {
    const path = join(dir, 'pods.yaml');
    writeFileSync(path, pod('a', '9000'));
    const feed = fileFeed({ kind: 'file', path }, DEFAULT_CONFIG);
    const first = feed.read()!;
    const again = feed.read()!;
    t.is(again.records, first.records, 'the same records, not a second parse');
    t.is(again.records.length, 1);

    writeFileSync(path, `${pod('a', '9001')}---\n${pod('b', '9000')}`);
    const edited = feed.read()!;
    t.not(edited.records, first.records);
    t.deepEqual(
      edited.records.map((r) => (r.result.status === 'captured' ? r.result.policy.excludeOutboundPorts : null)),
      [[9001], [9000]],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
