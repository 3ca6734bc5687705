// A load client for the fault suite: connects to HOST:PORT as fast as it can from inside
// a netns (as uid UID when not 0), and checks every reply: the probe server's name, its
// port, and the SO_ORIGINAL_DST it saw.
import { createInterface } from 'node:readline';
import { spawnInCgroup } from '../kernel/bpf-fixture.js';
import type { World } from '../kernel/harness/daemon.js';

/** Connects to HOST:PORT as fast as it can, checking each reply's listener and original destination. */
export const CLIENT = `
import encodings.idna, json, os, socket, sys, time
host, port, want, wport, wdst, seconds, uid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6]), int(sys.argv[7])
if uid: os.setgid(uid); os.setuid(uid)
ok = wrong = failed = 0
seen = {}
end = time.time() + seconds
while time.time() < end:
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b'load\\n')
        data = b''
        while not data.endswith(b'\\n'):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        r = json.loads(data)
        if r['server'] == want and r['port'] == wport and r['origDst'] == wdst:
            ok += 1
        else:
            wrong += 1
            seen['%s:%s origDst=%s' % (r['server'], r['port'], r['origDst'])] = 1
    except Exception as e:
        failed += 1
        seen[repr(e)[:100]] = 1
print(json.dumps({'ok': ok, 'wrong': wrong, 'failed': failed, 'seen': list(seen)[:10]}), flush=True)
`;

export interface LoadResult {
  ok: number;
  wrong: number;
  failed: number;
  seen: string[];
}

export function runClient(w: World, netns: string, args: string[]): Promise<LoadResult> {
  const child = spawnInCgroup(w.cg, 'nsenter', [`--net=${netns}`, 'python3', '-c', CLIENT, ...args]);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l) as LoadResult));
    child.once('exit', (code) => reject(new Error(`load client exited ${code}: ${stderr}`)));
  });
}
