// What `sluice run` leaves in the kernel: kill -9 and restart while connections flow (the
// new daemon adopts the pins), `sluice uninstall` leaving nothing (checked with bpftool and
// ls), and the host untouched (no program on the root cgroup, host loopback not redirected).
// Each test builds its own world and tears it down (harness/daemon-suite.ts).
import test from 'ava';
import { existsSync, statSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { MAP_NAMES } from '../../src/bpf/loader.js';
import { findCgroup2Mount } from '../../src/bpf/system.js';
import { connect } from './bpf-fixture.js';
import { cgroupPrograms, links, lsPinDir, mapIds, metric, programIds, sluice, sourceYaml, startDaemon, waitFor, type Daemon } from './harness/daemon.js';
import { appConnect, captured, daemonFor, daemonSuite, direct, podSpec, podState, PROGRAMS, ready, where } from './harness/daemon-suite.js';
import { exec } from './harness/exec.js';
import { tool } from './harness/requirements.js';

const { inWorld } = daemonSuite();

test.serial('restart: kill -9 while connections flow; capture never stops and the new daemon adopts the pins', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const first = await daemonFor(w);
    await ready(first);
    const progsBefore = await cgroupPrograms(w.cg.path);

    type Phase = 'before' | 'down' | 'after';
    let phase: Phase = 'before';
    let stop = false;
    const outcomes: { phase: Phase; ok: boolean; what: string }[] = [];
    const traffic = (async () => {
      while (!stop) {
        const p = phase;
        const r = await appConnect(w, 0);
        outcomes.push({ phase: p, ok: captured(r, 0), what: where(r) });
      }
    })();
    let second: Daemon | null = null;
    try {
      await waitFor('connections before the kill', async () => (outcomes.length >= 5 ? true : undefined));
      await first.kill9();
      phase = 'down';
      const whileDown = await appConnect(w, 0);
      t.true(captured(whileDown, 0), `a connection made while the daemon is dead is captured: ${where(whileDown)}`);
      await waitFor('connections while the daemon is down', async () => (outcomes.filter((o) => o.phase === 'down').length >= 3 ? true : undefined));
      second = await startDaemon({ ...first.options });
      await ready(second);
      phase = 'after';
      await waitFor('connections after the restart', async () => (outcomes.filter((o) => o.phase === 'after').length >= 5 ? true : undefined));
    } finally {
      stop = true;
      await traffic;
    }
    const count = (p: Phase) => outcomes.filter((o) => o.phase === p).length;
    t.log(`connections: ${count('before')} before, ${count('down')} while down, ${count('after')} after the restart`);
    const missed = outcomes.filter((o) => !o.ok);
    t.deepEqual(missed, [], 'every connection, before, during and after, was captured');

    const m = await second!.metrics();
    t.is(metric(m, 'sluice_programs_attached', { how: 'adopted' }), PROGRAMS.length + 1, 'every cgroup link and the sk_msg link adopted, its program swapped in place');
    t.is(metric(m, 'sluice_programs_attached', { how: 'new' }), 0, 'nothing attached twice');
    t.is(metric(m, 'sluice_maps_adopted'), MAP_NAMES.length, 'every pinned map reused with its contents');
    t.like(await podState(second!, 'pod0'), { status: 'applied' });
    const progsAfter = await cgroupPrograms(w.cg.path);
    t.deepEqual(progsAfter.map((p) => p.name).sort(), progsBefore.map((p) => p.name).sort(), 'still exactly one of each program on the cgroup');
    t.true(second!.output().includes('"updated":["sluice_connect4"'), 'the restart log says the links were updated in place');
  });
});

test.serial('uninstall: `sluice uninstall` leaves nothing, checked with bpftool and ls', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0));

    // What this run put in the kernel: the cgroup programs, the pod's sk_lookup link, and the maps they use.
    const podIno = statSync(w.pods[0]!.pod.path).ino;
    const ours = (await cgroupPrograms(w.cg.path)).map((p) => p.id);
    const skLookup = (await links()).filter((l) => l.type === 'netns' && l.netns_ino === podIno);
    t.is(skLookup.length, 1, 'the pod netns has one sk_lookup link');
    ours.push(...skLookup.map((l) => l.prog_id));
    const ourMaps = new Set<number>();
    for (const id of ours) for (const m of (await exec(tool('bpftool'), ['-j', 'prog', 'show', 'id', String(id)]).then((r) => JSON.parse(r.stdout) as { map_ids?: number[] })).map_ids ?? []) ourMaps.add(m);
    t.true(ourMaps.size >= MAP_NAMES.length, `the programs use the sluice maps (${ourMaps.size})`);

    // Stopping the daemon detaches nothing.
    await d.stop();
    t.deepEqual((await cgroupPrograms(w.cg.path)).map((p) => p.name).sort(), PROGRAMS);
    t.true(captured(await appConnect(w, 0), 0), 'capture goes on without the daemon');

    const r = await sluice(['uninstall', '--cgroup', w.cg.path, '--bpffs', w.bpffs]);
    t.is(r.code, 0, r.stderr);
    t.log(r.stdout.trim());
    const ls = await lsPinDir(w.bpffs);
    t.true(ls.code !== 0 || ls.stdout.trim() === '', `ls ${w.bpffs}: ${ls.stdout}${ls.stderr}`);
    t.false(existsSync(w.bpffs), 'the pin directory is gone');
    t.deepEqual(await cgroupPrograms(w.cg.path), [], 'bpftool cgroup show lists nothing');
    t.deepEqual(
      (await links()).filter((l) => l.type === 'netns' && l.netns_ino === podIno),
      [],
      'no sk_lookup link in the pod netns',
    );
    // Programs and maps are freed once their last reference goes (RCU: not at once).
    const left = await waitFor(
      'our programs and maps to be freed',
      async () => {
        const progs = await programIds();
        const maps = await mapIds();
        const l = [...ours.filter((id) => progs.has(id)).map((id) => `prog ${id}`), ...[...ourMaps].filter((id) => maps.has(id)).map((id) => `map ${id}`)];
        return l.length === 0 ? l : undefined;
      },
      5000,
      100,
    ).catch((e: Error) => [e.message]);
    t.deepEqual(left, [], 'no program or map of this run is left in bpftool prog/map show');
    t.true(direct(await appConnect(w, 0), 0), 'the pod is untouched now');
  });
});

/** A loopback server in the host netns (this process, outside the cgroup) that answers like the probe. */
function hostServer(): Promise<{ port: number; accepted: { local: string; remote: string }[]; close(): Promise<void> }> {
  const accepted: { local: string; remote: string }[] = [];
  const server = createServer((sock) => {
    const local = `${sock.localAddress}:${sock.localPort}`;
    const remote = `${sock.remoteAddress}:${sock.remotePort}`;
    accepted.push({ local, remote });
    sock.setEncoding('utf8');
    sock.once('data', () => {
      sock.end(JSON.stringify({ server: 'host', port: sock.localPort, peer: remote, local, origDst: null, origDstErrno: 0, tag: '-' }) + '\n');
    });
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ port, accepted, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

test.serial('host untouched: nothing on the root cgroup, host loopback connections are not redirected', async (t) => {
  await inWorld(t, 1, async (w) => {
    w.write(sourceYaml([podSpec(w, 0)]));
    const d = await daemonFor(w);
    await ready(d);
    t.true(captured(await appConnect(w, 0), 0), 'the daemon captures in the pod');

    const root = findCgroup2Mount()!;
    const onRoot = (await cgroupPrograms(root)).filter((p) => p.name.startsWith('sluice'));
    t.deepEqual(onRoot, [], `bpftool cgroup show ${root}: no sluice program on the host root cgroup`);

    const server = await hostServer();
    try {
      // A host process outside the cgroup.
      const reply = await new Promise<string>((resolve, reject) => {
        const c = createConnection({ host: '127.0.0.1', port: server.port }, () => c.write('hello\n'));
        let buf = '';
        c.setEncoding('utf8');
        c.on('data', (x: string) => (buf += x));
        c.on('end', () => resolve(buf));
        c.on('error', reject);
      });
      t.like(JSON.parse(reply), { server: 'host', port: server.port });
      // A host-netns process inside the private cgroup, as an app uid: the programs run
      // for it, and let it be (the host netns has no policy).
      const before = metric(await d.metrics(), 'sluice_datapath_events_total', { event: 'connect_no_policy' });
      const r = await connect(w.cg, { netnsPath: `/proc/${process.pid}/ns/net`, dst: `127.0.0.1:${server.port}`, uid: 1000 });
      t.true(r.ok && r.server.server === 'host' && r.server.port === server.port, where(r));
      t.true(r.ok && r.clientPeer === `127.0.0.1:${server.port}`);
      t.true(metric(await d.metrics(), 'sluice_datapath_events_total', { event: 'connect_no_policy' }) > before, 'the programs saw it and let it be');
      t.is(server.accepted.length, 2);
      for (const a of server.accepted) t.is(a.local, `127.0.0.1:${server.port}`, 'accepted on the port it was sent to: not redirected');
    } finally {
      await server.close();
    }
    t.true(d.alive());
  });
});
