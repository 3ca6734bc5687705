// Issue 9, items 1 and 5, with `sluice run` as a real process: a pod's netns annotation
// naming the host's or the daemon's own namespace, or a FIFO, is refused without
// blocking or touching it; and a second daemon on the same pin directory waits for the
// first instead of writing beside it.
//
// The host is never at risk: the daemon under test runs inside a stand-in netns
// (`nsenter --net=S` keeps the mounts, so /sys and the pins are the real ones), and "the
// host's" namespace is another stand-in passed as --host-netns. /proc/1/ns/net is not used.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { linkedNetns } from '../../src/bpf/loader.js';
import { SluiceMaps } from '../../src/bpf/maps.js';
import { netnsCookie } from '../../src/bpf/netns.js';
import { decodeU64 } from '../../src/bpf/codec.js';
import { bpfRequirementsMissing } from './bpf-fixture.js';
import { createWorld, killAllDaemons, reapStaleWorld, sourceYaml, startDaemon, waitFor, type World } from './harness/daemon.js';
import { killSpawned, spawnDaemon, type Spawned } from './harness/spawn-daemon.js';

const missing = bpfRequirementsMissing();

test.before(async () => {
  if (!missing) await reapStaleWorld();
});

test.after.always(async () => {
  await killSpawned();
  await killAllDaemons();
});

async function inWorld(t: { fail(m: string): void }, body: (w: World) => Promise<void>): Promise<void> {
  if (missing) return t.fail(missing);
  const w = await createWorld(1);
  try {
    await body(w);
  } finally {
    await killSpawned();
    await killAllDaemons();
    await w.destroy();
  }
}

const notApplied = (d: Spawned, pod: string) => d.logs().find((l) => l.pod === pod && l.msg === 'pod policy not applied');

test.serial("a netns annotation naming the host's or the daemon's own netns, or a FIFO, is refused; the daemon neither blocks nor writes", async (t) => {
  await inWorld(t, async (w) => {
    const standIn = await w.extraNetns(); // where the daemon runs: "its own"
    const host = await w.extraNetns(); // what it is told the host's is
    const fifo = join(w.dir, 'netns.fifo');
    execFileSync('mkfifo', [fifo]);
    // The hostile pods come first: a blocking open would stall the good one too.
    w.write(
      sourceYaml([
        { name: 'fifo', netns: fifo },
        { name: 'own', netns: standIn },
        { name: 'host', netns: host },
        { name: 'good', netns: w.pods[0]!.pod.path },
      ]),
    );
    const d = await spawnDaemon(w, ['--host-netns', host], standIn);
    await waitFor('the good pod applied', async () => (d.logs().some((l) => l.pod === 'default/good' && l.msg === 'pod policy applied') ? true : undefined), 20_000);
    const why = (pod: string) => notApplied(d, pod) as { reason?: string; error?: string } | undefined;
    await waitFor('three refusals', async () => (['fifo', 'own', 'host'].every((p) => why(`default/${p}`)) ? true : undefined), 5000);
    t.like(why('default/fifo'), { reason: 'netns_refused' });
    t.regex(why('default/fifo')!.error!, /not a network namespace file/);
    t.like(why('default/own'), { reason: 'netns_refused' });
    t.regex(why('default/own')!.error!, /the daemon's own network namespace/);
    t.like(why('default/host'), { reason: 'netns_refused' });
    t.regex(why('default/host')!.error!, /the host's network namespace/);

    // Only the good pod is in the kernel: one policy, one sk_lookup link.
    const good = netnsCookie(w.pods[0]!.pod.path);
    const maps = SluiceMaps.open(w.bpffs);
    try {
      t.deepEqual(maps.keys('sluice_pods').map((k) => decodeU64(k)), [good]);
    } finally {
      maps.close();
    }
    t.deepEqual(linkedNetns(w.bpffs), [good]);
    await new Promise((r) => setTimeout(r, 600)); // a few resyncs
    t.true(d.alive(), `the daemon lives:\n${d.output().slice(-2000)}`);
  });
});

test.serial('a second daemon on the same pin directory waits for the first, then takes over', async (t) => {
  await inWorld(t, async (w) => {
    w.write(sourceYaml([{ name: 'good', netns: w.pods[0]!.pod.path }]));
    const first = await startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: join(w.dir, 'a.sock') });
    await waitFor('/readyz', async () => ((await first.get('/readyz')).status === 200 ? true : undefined), 10_000);
    const second = await spawnDaemon(w, []);
    await waitFor('the second daemon says it waits', async () => (second.logs().some((l) => l.reason === 'pin_dir_locked') ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    t.false(
      second.logs().some((l) => l.msg === 'data plane attached'),
      'the second daemon touched nothing while the first held the pins',
    );
    await first.kill9();
    await waitFor('the second daemon takes over', async () => (second.logs().some((l) => l.msg === 'data plane attached') ? true : undefined), 10_000);
    const pods = await waitFor(
      'the second daemon ready',
      async () => {
        const res = await fetch(`http://127.0.0.1:${second.port}/v1/pods`, { signal: AbortSignal.timeout(2000) });
        return res.status === 200 ? ((await res.json()) as { name: string; status: string }[]) : undefined;
      },
      10_000,
    );
    t.deepEqual(
      pods.map((p) => [p.name, p.status]),
      [['good', 'applied']],
    );
  });
});
