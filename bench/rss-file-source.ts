// The daemon's RSS with N bare pods through the file source, where no Kubernetes client is
// loaded: what the daemon itself costs, to set against `--control-plane`'s kubernetes
// figure. Read SETTLE_MS after the last policy reached the kernel (the idle GC has run).
// Run as root: `node --import tsx bench/rss-file-source.ts 1 512` (builds nothing: `npx tsc -p .` first).
import { readFileSync, writeFileSync } from 'node:fs';
import { BpfDataPlane } from '../src/bpf/dataplane.js';
import { createWorld, killAllDaemons, sourceYaml, startDaemon, waitFor } from '../test/kernel/harness/daemon.js';
import { bareNetns } from '../test/kernel/harness/kube-world.js';

const SETTLE_MS = 8000;

function status(pid: number, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

for (const pods of process.argv.slice(2).map(Number)) {
  const w = await createWorld(0);
  const ns = await bareNetns(pods);
  try {
    writeFileSync(w.source, sourceYaml(ns.paths.map((netns, i) => ({ name: `pod${i}`, netns, ips: [`10.2.${i >> 8}.${i & 255}`] }))));
    const d = await startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, built: true });
    const dp = BpfDataPlane.open({ bpffsDir: w.bpffs });
    await waitFor(`${pods} policies in the kernel`, async () => (dp.listPolicies().length === pods ? true : undefined), 600_000, 50);
    dp.close();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const m = (await d.get('/metrics')).body;
    const gauge = (n: string) => (Number(new RegExp(`^sluice_${n} (\\S+)$`, 'm').exec(m)?.[1]) / 1048576).toFixed(1);
    const pid = d.child.pid!;
    console.log(`file source, ${pods} pods: RSS ${status(pid, 'VmRSS').toFixed(1)} MiB (anon ${status(pid, 'RssAnon').toFixed(1)}, file ${status(pid, 'RssFile').toFixed(1)}); V8 heap ${gauge('nodejs_heap_size_total_bytes')} MiB holding ${gauge('nodejs_heap_size_used_bytes')}; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    await d.stop();
  } finally {
    await killAllDaemons();
    await ns.destroy();
    await w.destroy();
  }
}
