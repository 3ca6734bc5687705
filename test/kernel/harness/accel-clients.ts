// The processes of the acceleration tests: an echo server (every byte read is written
// back, so both directions are checked) and long-lived clients that run exchanges on
// command (stdin), so a test can look at the sockhash while a connection is open and flip
// the switch in the middle of one. Both are python3, in a netns, as processes of the cgroup.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import type { TestCgroup } from '../bpf-fixture.js';
import { CGROUP_EXEC } from './probe.js';

/** Echo listeners: every byte read is written back, so both directions are checked. */
const ECHO_SERVER = `
import socket, sys, threading
def handle(c):
    with c:
        while True:
            d = c.recv(1 << 20)
            if not d:
                return
            c.sendall(d)
def serve(l):
    while True:
        c, _ = l.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
for port in map(int, sys.argv[1].split(',')):
    l = socket.socket(socket.AF_INET6)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('::', port))
    l.listen(64)
    threading.Thread(target=serve, args=(l,), daemon=True).start()
print('ready', flush=True)
sys.stdin.read()
`;

/**
 * One connection; each stdin line "W N" writes N bytes of random data in W-byte writes,
 * reading each echo back before the next write, and prints whether every byte came back
 * intact. An empty line closes the connection.
 */
const CLIENT = `
import encodings.idna, json, os, socket, sys  # idna: loaded while root can still read the stdlib
dst, port, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if uid:
    os.setgid(uid); os.setuid(uid)
s = socket.create_connection((dst, port))
me = s.getsockname()
print(json.dumps({'local': [me[0], me[1]]}), flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    w, n = map(int, line.split())
    intact, sent = True, 0
    while sent < n:
        chunk = os.urandom(w)
        s.sendall(chunk)
        got = bytearray()
        while len(got) < w:
            d = s.recv(w - len(got))
            if not d:
                print(json.dumps({'error': 'eof after %d bytes' % sent}), flush=True)
                sys.exit(1)
            got += d
        intact = intact and bytes(got) == chunk
        sent += w
    print(json.dumps({'write': w, 'bytes': sent, 'intact': intact}), flush=True)
s.close()
`;

function lineReader(child: ChildProcess): { next(what: string): Promise<string>; rl: Interface } {
  const rl = createInterface({ input: child.stdout! });
  const queue: string[] = [];
  let waiter: ((l: string) => void) | null = null;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  rl.on('line', (l) => (waiter ? (waiter(l), (waiter = null)) : queue.push(l)));
  return {
    rl,
    next: (what) =>
      queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${what}: no output after 20s; stderr: ${stderr}`)), 20_000);
            waiter = (l) => {
              clearTimeout(timer);
              resolve(l);
            };
            child.once('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`${what}: exited ${code}; stderr: ${stderr}`));
            });
          }),
  };
}

/** `python3 -c script args` in the netns, as a process of the cgroup, driven through its stdin. */
function spawnPython(cg: TestCgroup, netnsPath: string, script: string, args: string[]): ChildProcess {
  const child = spawn('/bin/sh', ['-c', CGROUP_EXEC, cg.path, 'nsenter', `--net=${netnsPath}`, 'python3', '-c', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => {});
  return child;
}

export async function startEcho(cg: TestCgroup, netnsPath: string, ports: number[]): Promise<ChildProcess> {
  const child = spawnPython(cg, netnsPath, ECHO_SERVER, [ports.join(',')]);
  const line = await lineReader(child).next(`echo server on ${ports.join(',')}`);
  if (line !== 'ready') throw new Error(`echo server: ${line}`);
  return child;
}

export interface Exchange {
  write: number;
  bytes: number;
  intact: boolean;
}

/** A long-lived client connection in `netnsPath` as `uid`. */
export async function openClient(e: { cg: TestCgroup }, netnsPath: string, dst: string, port: number, uid: number) {
  const child = spawnPython(e.cg, netnsPath, CLIENT, [dst, String(port), String(uid)]);
  const lines = lineReader(child);
  const hello = JSON.parse(await lines.next(`client to ${dst}:${port}`)) as { local: [string, number] };
  return {
    local: { ip: hello.local[0].replace(/^::ffff:/, ''), port: hello.local[1] },
    async run(write: number, bytes: number): Promise<Exchange> {
      child.stdin!.write(`${write} ${bytes}\n`);
      const r = JSON.parse(await lines.next(`exchange of ${bytes} bytes in ${write}-byte writes`)) as Exchange & { error?: string };
      if (r.error) throw new Error(r.error);
      return r;
    },
    async close(): Promise<void> {
      child.stdin!.end('\n');
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    },
    kill: () => child.kill('SIGKILL'),
  };
}
