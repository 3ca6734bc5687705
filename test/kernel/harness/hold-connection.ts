// A client that connects and holds its connection open until it is killed, so a test can
// look up the connection's original destination while it exists.
import { createInterface } from 'node:readline';
import { spawnInCgroup, type TestCgroup } from '../bpf-fixture.js';

export interface HeldConnection {
  /** The client's source port. */
  port: number;
  close(): void;
}

/** A python client in `netnsPath` (uid 1000, a process of `cg`) connected to IPv4 `dst` (`ip:port`). */
export async function holdConnection(cg: TestCgroup, netnsPath: string, dst: string): Promise<HeldConnection> {
  const [ip, port] = dst.split(':');
  // Its stdin is /dev/null, so it must not wait on stdin: that returned at once and raced the lookup.
  const script = `
import encodings.idna, os, socket, time  # idna: loaded while root can still read the stdlib
os.setgid(1000); os.setuid(1000)
s = socket.create_connection(('${ip}', ${port}))
print(s.getsockname()[1], flush=True)
time.sleep(600)  # only a kill ends it
`;
  const child = spawnInCgroup(cg, 'nsenter', [`--net=${netnsPath}`, 'python3', '-c', script]);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`holding client exited ${code}: ${stderr}`)));
    });
    return { port: Number(line.trim()), close: () => child.kill('SIGKILL') };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
