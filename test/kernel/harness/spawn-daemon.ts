// `sluice run` as a bare child process: no wait for /healthz, so a test can kill it at
// any moment of its start (install, adoption, the first reconcile), or run it inside
// another netns where its HTTP port cannot be reached.
import { spawn } from 'node:child_process';
import { CLI, freePort, type World } from './daemon.js';
import { findTool, REPO_ROOT } from './requirements.js';

export interface Spawned {
  port: number;
  output(): string;
  logs(): Record<string, unknown>[];
  alive(): boolean;
  kill(): Promise<void>;
}

const spawned = new Set<Spawned>();

/** Kills every bare daemon not killed yet. */
export async function killSpawned(): Promise<void> {
  await Promise.all([...spawned].map((s) => s.kill()));
}

/** `sluice run` as a child, optionally inside the netns at `netns`; no HTTP wait. */
export async function spawnDaemon(w: World, extra: string[], netns?: string): Promise<Spawned> {
  const port = await freePort();
  const node = [process.execPath, '--import', 'tsx', CLI, 'run', '--source', `file:${w.source}`, '--cgroup', w.cg.path, '--bpffs', w.bpffs, '--listen', `127.0.0.1:${port}`, '--resync', '0.2', ...extra];
  const inNetns = netns ? [findTool('nsenter')!, `--net=${netns}`, ...node] : node;
  const setpriv = findTool('setpriv');
  const argv = setpriv ? [setpriv, '--pdeathsig', 'KILL', ...inNetns] : inNetns;
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const s: Spawned = {
    port,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    alive: () => child.exitCode === null && child.signalCode === null,
    async kill() {
      if (s.alive()) child.kill('SIGKILL');
      await exited;
      spawned.delete(s);
    },
  };
  spawned.add(s);
  return s;
}

