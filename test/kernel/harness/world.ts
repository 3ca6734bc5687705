// The private world a daemon test runs against: pod namespaces (each with its own peer),
// one private cgroup holding every probe process, one private bpffs directory and a
// scratch directory for the source file and the lookup socket.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBpffsDir, createCgroup, reapStale, startServer, TEST_PREFIX, type TestCgroup, type TestServer } from '../bpf-fixture.js';
import { exec } from './exec.js';
import { tool } from './requirements.js';
import { createTopology, deleteNetns, NETNS_PREFIX, pidAlive, reapStaleNamespaces, type Topology } from './topology.js';

/** Listeners of every pod: the sidecar's outbound and inbound ports. */
export const POD_TCP = [15001, 15006];
/** The "remote" service every outbound test connection goes to (on the peer's lo). */
export const REMOTE = '10.2.0.5:80';

export interface World {
  cg: TestCgroup;
  bpffs: string;
  dir: string;
  source: string;
  lookupSocket: string;
  /** One topology per pod: pods[i].pod is the pod's netns, pods[i].peer its remote side. */
  pods: Topology[];
  servers: TestServer[];
  /** Replaces the source file in place (write, not rename): the edit a person makes. */
  write(text: string): void;
  /** Replaces the source file by rename, as editors and config managers do. */
  replace(text: string): void;
  /** A netns that is only a name (no veth, no process): one the test may delete. */
  extraNetns(): Promise<string>;
  destroy(): Promise<void>;
}

/**
 * `pods` pods, each in its own topology, with probe servers already listening: 15001 and
 * 15006 in the pod (the sidecar), 80 on the peer's remote address. Every probe is a
 * process of the private cgroup.
 */
export async function createWorld(pods: number): Promise<World> {
  const cg = createCgroup();
  const bpffs = createBpffsDir();
  const dir = mkdtempSync(join(tmpdir(), `${TEST_PREFIX}${process.pid}-`));
  const topologies: Topology[] = [];
  const servers: TestServer[] = [];
  const extra: string[] = [];
  let destroyed = false;
  const world: World = {
    cg,
    bpffs: bpffs.path,
    dir,
    source: join(dir, 'pods.yaml'),
    lookupSocket: join(dir, 'lookup.sock'),
    pods: topologies,
    servers,
    write(text) {
      writeFileSync(world.source, text);
    },
    replace(text) {
      const tmp = join(dir, `.pods.yaml.${randomBytes(3).toString('hex')}`);
      writeFileSync(tmp, text);
      renameSync(tmp, world.source);
    },
    async extraNetns() {
      const name = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-x`;
      extra.push(name);
      await exec(tool('ip'), ['netns', 'add', name]);
      return `/var/run/netns/${name}`;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await Promise.all(servers.map((s) => s.stop()));
      await Promise.all(topologies.map((t) => t.destroy()));
      for (const name of extra) await deleteNetns(name);
      try {
        bpffs.destroy();
      } finally {
        await cg.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    for (let i = 0; i < pods; i++) {
      const topo = await createTopology();
      topologies.push(topo);
      servers.push(await startServer(cg, `pod${i}`, topo.pod.path, POD_TCP));
      servers.push(await startServer(cg, `peer${i}`, topo.peer.path, [80]));
    }
    return world;
  } catch (err) {
    await world.destroy();
    throw err;
  }
}

/** Everything dead test processes left: namespaces, cgroups, pins, scratch directories. */
export async function reapStaleWorld(): Promise<void> {
  await reapStaleNamespaces();
  reapStale();
  reapStaleWorkDirs();
}

/** Removes the scratch directories (source file, lookup socket) of dead test processes. */
export function reapStaleWorkDirs(): string[] {
  const reaped: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${TEST_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    reaped.push(name);
  }
  return reaped;
}
