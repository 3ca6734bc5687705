// `sluice run` following its source file: an edit holds within a second (written in place
// or replaced by rename), a removed pod loses its policy, and bad input (malformed YAML, a
// bad annotation, a vanished netns, a full map) is rejected pod by pod, counted, and never
// takes the daemon or the last good policies down.
// Each test builds its own world and tears it down (harness/daemon-suite.ts).
import test from 'ava';
import { existsSync } from 'node:fs';
import { netnsLinkPath } from '../../src/bpf/loader.js';
import { metric, sourceYaml, waitFor } from './harness/daemon.js';
import { appConnect, captured, daemonFor, daemonSuite, direct, EXCLUDE_PORTS, heldAfter, pods, podSpec, podState, podStatus, ready, sleep, waitMetric } from './harness/daemon-suite.js';
import { exec } from './harness/exec.js';
import { tool } from './harness/requirements.js';

const { inWorld } = daemonSuite();

test.serial('live change: an edit of the file holds within 1 s, and a removed pod loses its policy', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0));
    const cookie0 = BigInt((await podState(d, 'pod0'))!.netnsCookie!);
    t.true(existsSync(netnsLinkPath(w.bpffs, cookie0)));

    // Excluding port 80, written in place.
    let since = Date.now();
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '80' }), podSpec(w, 1)]));
    const excluded = await heldAfter(w, 0, since, (r) => direct(r, 0));
    t.log(`exclude port 80 (write in place) held after ${excluded.ms} ms: ${excluded.seen.join(' | ')}`);
    t.true(excluded.ms < 1000, `held within 1 s (took ${excluded.ms} ms)`);
    t.deepEqual((await podState(d, 'pod0'))?.policy?.excludeOutboundPorts, [80]);
    t.true(captured(await appConnect(w, 1), 1), 'the other pod is untouched');

    // Back to capture, the file replaced by rename as an editor does.
    since = Date.now();
    w.replace(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const recaptured = await heldAfter(w, 0, since, (r) => captured(r, 0));
    t.log(`annotation removed (rename) held after ${recaptured.ms} ms`);
    t.true(recaptured.ms < 1000, `held within 1 s (took ${recaptured.ms} ms)`);

    // The pod leaves the file: its policy and its sk_lookup link go.
    since = Date.now();
    w.write(sourceYaml([podSpec(w, 1)]));
    const removed = await heldAfter(w, 0, since, (r) => direct(r, 0));
    t.log(`pod removed held after ${removed.ms} ms`);
    t.true(removed.ms < 1000, `held within 1 s (took ${removed.ms} ms)`);
    t.deepEqual((await pods(d)).map((p) => p.name), ['pod1']);
    t.false(existsSync(netnsLinkPath(w.bpffs, cookie0)), 'the sk_lookup link of the removed pod is gone');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_map_entries', { map: 'sluice_pods' }), 1);
    t.true(captured(await appConnect(w, 1), 1), 'the remaining pod is still captured');
  });
});

test.serial('bad input: malformed YAML keeps the last good policies, and is counted', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    const before = metric(await d.metrics(), 'sluice_source_errors_total');

    w.write('apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n  annotations: :\n');
    await waitMetric(d, 'sluice_source_errors_total to grow', (m) => metric(m, 'sluice_source_errors_total') > before);
    await sleep(200);
    t.true(d.alive(), 'the daemon lives');
    t.is((await d.get('/healthz')).status, 200);
    t.true(captured(await appConnect(w, 0), 0), 'pod0 keeps its policy');
    t.true(captured(await appConnect(w, 1), 1), 'pod1 keeps its policy');
    t.deepEqual(
      (await pods(d)).map((p) => [p.name, p.status]),
      [
        ['pod0', 'applied'],
        ['pod1', 'applied'],
      ],
      '/v1/pods still shows the policies in force',
    );

    // One broken document, one good one: the good one is applied, the broken pod kept.
    const good = sourceYaml([podSpec(w, 1, { [EXCLUDE_PORTS]: '80' })]);
    w.write(`apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n---\n${good}`);
    await heldAfter(w, 1, Date.now(), (r) => direct(r, 1));
    t.true(captured(await appConnect(w, 0), 0), 'the pod in the broken document is unknown, not gone: still captured');
    t.true(d.alive());
    t.is(metric(await d.metrics(), 'sluice_map_entries', { map: 'sluice_pods' }), 2);
  });
});

test.serial('bad input: a bad annotation rejects that pod alone, which keeps its last good policy', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w);
    await ready(d);
    const before = metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'policy_rejected' });

    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1, { [EXCLUDE_PORTS]: '80,99999' })]));
    const bad = await podStatus(d, 'pod1', 'rejected');
    t.regex(bad.error ?? '', /excludeOutboundPorts/);
    t.regex(bad.error ?? '', /99999/);
    t.deepEqual(bad.policy?.excludeOutboundPorts, [], 'the last good policy is reported as the one in force');
    t.true(captured(await appConnect(w, 1), 1), 'and is the one in the kernel: port 80 still captured');
    t.like(await podState(d, 'pod0'), { status: 'applied', error: null });
    t.true(captured(await appConnect(w, 0), 0), 'the other pod is applied and captured');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), before + 1, 'counted once, by reason');
    t.is(metric(m, 'sluice_pods', { status: 'rejected' }), 1);

    // An unrelated edit re-reconciles everything: the same bad pod is not counted again.
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '443' }), podSpec(w, 1, { [EXCLUDE_PORTS]: '80,99999' })]));
    await waitFor('pod0 to exclude 443', async () => ((await podState(d, 'pod0'))?.policy?.excludeOutboundPorts?.[0] === 443 ? true : undefined));
    t.is(metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'policy_rejected' }), before + 1);
    t.true(d.alive());
  });
});

test.serial('bad input: a pod whose netns vanished is rejected and its entry removed; the daemon lives', async (t) => {
  await inWorld(t, 1, async (w) => {
    const gonePath = await w.extraNetns();
    w.write(sourceYaml([podSpec(w, 0), { name: 'gone', netns: gonePath, ips: ['10.9.0.9'] }]));
    const d = await daemonFor(w, ['--resync', '0.5']);
    await ready(d);
    const gone = (await podStatus(d, 'gone', 'applied'))!;
    const cookie = BigInt(gone.netnsCookie!);
    t.true(existsSync(netnsLinkPath(w.bpffs, cookie)));
    t.is(metric(await d.metrics(), 'sluice_map_entries', { map: 'sluice_pods' }), 2);
    const before = metric(await d.metrics(), 'sluice_reconcile_errors_total', { reason: 'netns_unavailable' });

    // The namespace goes away; the file does not change. The periodic resync notices.
    await exec(tool('ip'), ['netns', 'del', gonePath.split('/').pop()!]);
    const rejected = await podStatus(d, 'gone', 'rejected');
    t.true(rejected.error?.includes(gonePath), rejected.error ?? '');
    t.is(rejected.policy, null, 'a vanished netns loses its entry');
    const m = await waitMetric(d, 'the pod policy entry to go', (x) => metric(x, 'sluice_map_entries', { map: 'sluice_pods' }) === 1);
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'netns_unavailable' }), before + 1, 'counted once');
    t.false(existsSync(netnsLinkPath(w.bpffs, cookie)), 'its sk_lookup link pin is gone');
    t.true(d.alive());
    t.like(await podState(d, 'pod0'), { status: 'applied' });
    t.true(captured(await appConnect(w, 0), 0), 'the other pod is unaffected');
  });
});

test.serial('bad input: a full map (--max-pods 1) rejects the second pod with a clear error and a metric', async (t) => {
  await inWorld(t, 2, async (w) => {
    w.write(sourceYaml([podSpec(w, 0), podSpec(w, 1)]));
    const d = await daemonFor(w, ['--max-pods', '1']);
    await ready(d);
    t.like(await podState(d, 'pod0'), { status: 'applied' });
    const full = (await podState(d, 'pod1'))!;
    t.is(full.status, 'rejected');
    t.regex(full.error ?? '', /sluice_pods is full/);
    t.regex(full.error ?? '', /--max-pods/, 'the error names the flag that raises the capacity');
    const m = await d.metrics();
    t.is(metric(m, 'sluice_reconcile_errors_total', { reason: 'map_full' }), 1);
    t.is(metric(m, 'sluice_map_entries', { map: 'sluice_pods' }), 1);
    t.is(metric(m, 'sluice_map_capacity', { map: 'sluice_pods' }), 1);
    t.true(captured(await appConnect(w, 0), 0), 'the applied pod is captured');
    t.true(direct(await appConnect(w, 1), 1), 'the rejected pod is simply not captured');

    // Edits keep coming: still no crash, and the first pod's change is applied.
    w.write(sourceYaml([podSpec(w, 0, { [EXCLUDE_PORTS]: '80' }), podSpec(w, 1)]));
    await heldAfter(w, 0, Date.now(), (r) => direct(r, 0));
    t.true(d.alive());
    // A pass over its time budget (a loaded machine) shows pod1 queued for a moment.
    await waitFor('pod1 rejected again', async () => ((await podState(d, 'pod1'))?.status === 'rejected' ? true : undefined));
  });
});
