// Original-destination lookups over the unix socket of a running `sluice run` (the built
// CLI, as the DaemonSet runs it): one pod, one captured connection held open by a client
// in it (uid 1000), then the proxy's question for that connection pipelined on one socket
// connection, 256 lines at a time with up to 512 unanswered. Every answer must be
// `OK <the original destination>`; answers per second, per round.
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { createWorld, killAllDaemons, REMOTE, sourceYaml, startDaemon, waitFor } from '../test/kernel/harness/daemon.js';
import { holdConnection, type HeldConnection } from '../test/kernel/harness/hold-connection.js';
import { REPO_ROOT } from '../test/kernel/harness/requirements.js';
import { ADDRESSES } from '../test/kernel/harness/topology.js';

const BATCH = 256;

export interface LookupRound {
  answers: number;
  wrong: number;
  seconds: number;
  rate: number;
}

export function builtCliMissing(): string | null {
  return existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js')) ? null : 'the built CLI (dist/cli/main.js): run `npm run build` (the control-plane phase runs `sluice run` as the DaemonSet does)';
}

/** Pipelines `line` on the socket for `ms`; every answer must be `expect`. */
function lookupRound(socketPath: string, line: string, expect: string, ms: number): Promise<LookupRound> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const payload = `${line}\n`.repeat(BATCH);
    let buf = '';
    let answers = 0;
    let wrong = 0;
    let inflight = 0;
    let t0 = 0;
    let end = 0;
    const send = () => {
      inflight += BATCH;
      sock.write(payload);
    };
    sock.setEncoding('utf8');
    sock.once('error', reject);
    // After the last answer this rejects nothing: the promise is settled by then.
    sock.once('close', () => reject(new Error(`the lookup socket closed after ${answers} answers`)));
    sock.once('connect', () => {
      t0 = performance.now();
      end = t0 + ms;
      send();
      send();
    });
    sock.on('data', (d: string) => {
      buf += d;
      let from = 0;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n', from)) {
        if (buf.slice(from, nl) !== expect) wrong++;
        answers++;
        inflight--;
        from = nl + 1;
      }
      buf = buf.slice(from);
      const now = performance.now();
      if (now < end) {
        while (inflight <= BATCH) send();
      } else if (inflight === 0) {
        sock.end();
        const seconds = (now - t0) / 1000;
        resolve({ answers, wrong, seconds, rate: answers / seconds });
      }
    });
  });
}

export async function measureLookups(rounds: number, ms: number, log: (m: string) => void): Promise<LookupRound[]> {
  const w = await createWorld(1);
  let held: HeldConnection | null = null;
  try {
    w.write(sourceYaml([{ name: 'pod0', netns: w.pods[0]!.pod.path }]));
    const d = await startDaemon({ source: w.source, cgroup: w.cg.path, bpffs: w.bpffs, lookupSocket: w.lookupSocket, built: true });
    await waitFor('/readyz 200', async () => ((await d.get('/readyz')).status === 200 ? true : undefined), 20_000);
    held = await holdConnection(w.cg, w.pods[0]!.pod.path, REMOTE);
    const line = `${ADDRESSES.pod4}:${held.port} ${ADDRESSES.pod4}:15001`;
    const out: LookupRound[] = [];
    for (let i = 0; i < rounds; i++) {
      const r = await lookupRound(w.lookupSocket, line, `OK ${REMOTE}`, ms);
      log(`round ${i + 1}/${rounds} lookups  ${r.rate.toFixed(0)} answers/s over the unix socket${r.wrong ? `, ${r.wrong} WRONG` : ''}`);
      out.push(r);
    }
    await d.stop();
    return out;
  } finally {
    held?.close();
    await killAllDaemons();
    await w.destroy();
  }
}
