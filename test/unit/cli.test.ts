// The CLI as a user runs it: `npx sluice explain --json` for every reference row, and
// the exit codes and messages of bad input.
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FAMILIES, ROWS } from './reference-cases.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = 'file:examples/pods.yaml';

function sluice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function argsFor(conn: ReturnType<(typeof ROWS)[number]['conn']>): string[] {
  const dst = conn.dst.ip.includes(':') ? `[${conn.dst.ip}]:${conn.dst.port}` : `${conn.dst.ip}:${conn.dst.port}`;
  const a = ['explain', '--source', EXAMPLE, 'default/app', dst, '--json'];
  if (conn.direction === 'inbound') a.push('--inbound');
  if (conn.protocol === 'udp') a.push('--udp');
  if (conn.uid !== undefined) a.push('--uid', String(conn.uid));
  if (conn.gid !== undefined) a.push('--gid', String(conn.gid));
  if (conn.src !== undefined) a.push('--src', conn.src);
  return a;
}

test('explain --json prints one object with the reference outcome for every row, IPv4 and IPv6', async (t) => {
  const jobs = FAMILIES.flatMap((f) => ROWS.map((row) => ({ f, row, conn: row.conn(f) })));
  // A few at a time: each is a Node process.
  for (let i = 0; i < jobs.length; i += 6) {
    await Promise.all(
      jobs.slice(i, i + 6).map(async ({ f, row, conn }) => {
        const r = await sluice(argsFor(conn));
        t.is(r.code, 0, `${f.name} ${row.name}: ${r.stderr}`);
        const lines = r.stdout.trim().split('\n');
        t.is(lines.length, 1, 'exactly one line of output');
        const got = JSON.parse(lines[0]!);
        t.deepEqual(Object.keys(got), ['pod', 'direction', 'outcome', 'port', 'originalDestination', 'step', 'reason']);
        t.like(got, { pod: 'default/app', direction: conn.direction, outcome: row.outcome, step: row.step }, `${f.name} ${row.name}`);
        t.is(got.port, row.port === 'dst' ? conn.dst.port : row.port);
      }),
    );
  }
});

test('explain without --json prints one readable line', async (t) => {
  const r = await sluice(['explain', '--source', EXAMPLE, 'app', '10.2.0.5:80']);
  t.is(r.code, 0);
  t.regex(r.stdout.trim(), /^default\/app outbound tcp uid 1000 gid 1000 -> 10\.2\.0\.5:80: outbound-proxy on port 15001, original destination 10\.2\.0\.5:80 \[outbound\.10: .+\]$/);
});

test('an unknown pod or a bad address exits 2 and says what to fix', async (t) => {
  const unknown = await sluice(['explain', '--source', EXAMPLE, 'default/nope', '10.2.0.5:80']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /pod default\/nope is not in the source.*use NAMESPACE\/NAME/);
  for (const bad of ['10.2.0.5', '10.2.0.5:0', '[10.2.0.5]:80', 'fd00::2:80', 'host:80']) {
    const r = await sluice(['explain', '--source', EXAMPLE, 'app', bad]);
    t.is(r.code, 2, bad);
    t.regex(r.stderr, /use e\.g\. 10\.2\.0\.5:80/, bad);
  }
  const src = await sluice(['explain', '--source', EXAMPLE, 'app', '10.2.0.5:80', '--src', 'nope']);
  t.is(src.code, 2);
  t.regex(src.stderr, /--src "nope" is not an IP address/);
  const source = await sluice(['explain', '--source', 'examples/pods.yaml', 'app', '10.2.0.5:80']);
  t.is(source.code, 2);
  t.regex(source.stderr, /use file:PATH/);
});

test('validate exits 1 and names each rejected pod; a good file exits 0', async (t) => {
  const bad = await sluice(['validate', '--source', 'file:examples/bad-pods.yaml']);
  t.is(bad.code, 1);
  t.regex(bad.stdout, /default\/bad-cidr: REJECTED\n.*10\.0\.0\.0\/33/);
  t.regex(bad.stdout, /default\/bad-port: REJECTED\n.*70000/);
  t.regex(bad.stdout, /default\/good: captured/);
  const good = await sluice(['validate', '--source', EXAMPLE]);
  t.is(good.code, 0, good.stdout);
});

test('rules prints iptables-restore input for IPv4 and IPv6', async (t) => {
  const v4 = await sluice(['rules', '--source', EXAMPLE, 'app']);
  t.is(v4.code, 0);
  t.regex(v4.stdout, /^\*nat$/m);
  t.regex(v4.stdout, /-A ISTIO_OUTPUT -o lo -s 127\.0\.0\.6\/32 -j RETURN/);
  t.regex(v4.stdout, /COMMIT\n$/);
  const v6 = await sluice(['rules', '--source', EXAMPLE, 'app', '--ipv6']);
  t.regex(v6.stdout, /-A ISTIO_OUTPUT -o lo -s ::6\/128 -j RETURN/);
});
