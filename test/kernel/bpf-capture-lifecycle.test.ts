// The eBPF data plane's life in the sandbox of harness/capture-suite.ts: a policy change
// or removal reaches the kernel at once, the per-netns program stays small, a restarted
// loader adopts every pin while interception goes on, a restarted proxy gets its inbound
// connections again, an incompatible pin dir is refused, and uninstall leaves the pod
// untouched. Uninstall is the last test: it removes what the others stand on.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { CGROUP_PROGRAMS, MAP_NAMES, netnsLinkPath, pinLayout, uninstall, type LoaderError } from '../../src/bpf/loader.js';
import { bpfRequirementsMissing, connect, createBpffsDir, createCgroup, runInCgroup, serverOf, startServer } from './bpf-fixture.js';
import { listenerSuite, podClient, POD_TCP } from './harness/capture-suite.js';

const missing = bpfRequirementsMissing();
const ready = listenerSuite(missing);

test.serial('a policy change reaches the kernel at once: excluding port 80 lets the app go direct', async (t) => {
  const e = ready(t);
  if (!e) return;
  try {
    e.dp.applyPolicy(e.cookie, { ...e.policy, excludeOutboundPorts: [80] });
    t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
    t.is(serverOf(await podClient(e, '10.2.0.5:8080', 1000)).port, 15001, 'other ports still captured');
  } finally {
    e.dp.applyPolicy(e.cookie, e.policy);
  }
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).port, 15001);
  t.is(e.dp.mapUsage().find((u) => u.map === 'sluice_ports')!.entries, e.policy.excludeInboundPorts.length, 'the old sets were removed');
});

test.serial('removing the policy releases the pod, and its sk_lookup link', async (t) => {
  const e = ready(t);
  if (!e) return;
  try {
    e.dp.removePolicy(e.cookie);
    t.false(existsSync(netnsLinkPath(e.bpffs.path, e.cookie)));
    t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
    t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 8080);
  } finally {
    e.dp.applyPolicy(e.cookie, e.policy);
  }
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).port, 15001);
  t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 15006);
});

test.serial("each netns links only the small entry; the one steering program sits in the pinned prog array", async (t) => {
  const e = ready(t);
  if (!e) return;
  const { exec } = await import('./harness/exec.js');
  const show = async (args: string[]) => JSON.parse((await exec('bpftool', ['-j', ...args])).stdout) as Record<string, any>;
  const link = await show(['link', 'show', 'pinned', netnsLinkPath(e.bpffs.path, e.cookie)]);
  const entry = await show(['prog', 'show', 'id', String(link.prog_id)]);
  t.is(entry.name, 'sluice_sk_lookup');
  const array = await show(['map', 'dump', 'pinned', `${pinLayout(e.bpffs.path).maps}/sluice_lookup_prog`]);
  // bpftool prints a prog array's value (the program id) as little-endian hex bytes.
  const bytes = (array as unknown as { value: string[] | number }[])[0]!.value;
  const steerId = Array.isArray(bytes) ? Buffer.from(bytes.map((b) => parseInt(b, 16))).readUInt32LE() : bytes;
  const steer = await show(['prog', 'show', 'id', String(steerId)]);
  t.is(steer.name, 'sluice_sk_lookup_steer');
  // The per-pod verifier run is the entry's: a few instructions, not decide_inbound.
  t.true(entry.bytes_xlated * 8 < steer.bytes_xlated, `entry ${entry.bytes_xlated} B, steering ${steer.bytes_xlated} B`);
});

test.serial('a restarted loader adopts every pin, and interception never stops', async (t) => {
  const e = ready(t);
  if (!e) return;
  let stop = false;
  const outcomes: string[] = [];
  const traffic = (async () => {
    while (!stop) {
      const r = await podClient(e, '10.2.0.5:80', 1000);
      outcomes.push(r.ok ? `${r.server.server}:${r.server.port}` : r.error);
    }
  })();
  const reports = [];
  try {
    for (let i = 0; i < 5; i++) {
      const again = BpfDataPlane.install({ cgroupDir: e.cg.path, bpffsDir: e.bpffs.path });
      reports.push(again.installReport!);
      t.deepEqual(again.listPolicies(), [e.cookie], 'the policy survived');
      again.close();
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    stop = true;
    await traffic;
  }
  for (const r of reports) {
    t.deepEqual(r.attached, [], 'nothing attached twice');
    t.is(r.updated.length, CGROUP_PROGRAMS.length + 1, 'every cgroup link, and the sk_msg link, got the new program in place');
    t.is(r.adoptedMaps.length, MAP_NAMES.length);
  }
  t.true(outcomes.length > 0);
  t.deepEqual([...new Set(outcomes)], ['pod:15001'], 'every connection during the restarts was captured');
});

test.serial('a proxy that restarts its listeners gets inbound connections again (sockops enrols them)', async (t) => {
  const e = ready(t);
  if (!e) return;
  const pod = e.servers.find((s) => s.name === 'pod')!;
  await pod.stop();
  e.servers.splice(e.servers.indexOf(pod), 1);
  const refused = await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080', timeoutMs: 1000 });
  t.false(refused.ok, 'no proxy listener: refused, never delivered around the proxy');
  e.servers.push(await startServer(e.cg, 'pod', e.topo.pod.path, POD_TCP));
  const s = serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' }));
  t.like(s, { server: 'pod', port: 15006, origDst: '10.1.0.2:8080' });
  t.true((e.dp.readCounters().listener_added ?? 0n) >= 4n);
});

test.serial("a pin dir holding another version's map is refused by name, and nothing is attached", async (t) => {
  if (missing) return t.fail(missing);
  const cg = createCgroup();
  const bpffs = createBpffsDir();
  try {
    // sluice_counters of another map type: not one an upgrade can migrate (fewer counters
    // would be migrated in place: test/faults/upgrade.test.ts).
    const maps = pinLayout(bpffs.path).maps;
    await runInCgroup(cg, 'mkdir', ['-p', maps]);
    const made = await runInCgroup(cg, 'bpftool', ['map', 'create', `${maps}/sluice_counters`, 'type', 'array', 'key', '4', 'value', '8', 'entries', '3', 'name', 'sluice_counters']);
    t.is(made.code, 0, made.stderr);
    const err = t.throws(() => BpfDataPlane.install({ cgroupDir: cg.path, bpffsDir: bpffs.path }));
    t.is((err as LoaderError).code, 'PINNED_MAP_INCOMPATIBLE');
    t.regex(err!.message, /sluice_counters .*type 2 pinned, 6 in this build.*sluice uninstall --bpffs/);
    const shown = await runInCgroup(cg, 'bpftool', ['-j', 'cgroup', 'show', cg.path]);
    t.deepEqual(JSON.parse(shown.stdout.trim() || '[]'), [], 'nothing attached to the cgroup');
    t.deepEqual(readdirSync(maps), ['sluice_counters'], 'no map created or pinned');
  } finally {
    bpffs.destroy();
    await cg.destroy();
  }
});

test.serial('uninstall removes links, pins and maps; the pod is then untouched', async (t) => {
  const e = ready(t);
  if (!e) return;
  const report = uninstall(e.bpffs.path);
  for (const { program } of CGROUP_PROGRAMS) t.true(report.detached.includes(program), `${program} detached`);
  t.true(report.detached.includes(`netns/${e.cookie}`));
  t.false(existsSync(pinLayout(e.bpffs.path).root));
  const shown = await new Promise<string>((resolve) => {
    const c = spawn('bpftool', ['-j', 'cgroup', 'show', e.cg.path], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('close', () => resolve(out.trim()));
  });
  t.deepEqual(JSON.parse(shown || '[]'), [], 'bpftool cgroup show lists nothing');
  t.is(serverOf(await podClient(e, '10.2.0.5:80', 1000)).server, 'peer');
  t.is(serverOf(await connect(e.cg, { netnsPath: e.topo.peer.path, dst: '10.1.0.2:8080' })).port, 8080);
});
