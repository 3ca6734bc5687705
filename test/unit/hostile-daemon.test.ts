// Hostile input to the daemon's own surfaces (issue 9, items 3 and 10): lookup requests,
// the lookup socket's framing and backpressure, the listen address, /metrics cost.
import test from 'ava';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupFlag } from '../../src/cli/daemon-commands.js';
import type { DataPlane } from '../../src/dataplane/index.js';
import { wildcardListenWarning } from '../../src/daemon/http.js';
import { lookup, MAX_LINE, serveLookupSocket } from '../../src/daemon/lookup.js';
import { Metrics } from '../../src/daemon/metrics.js';

function fakeDataPlane(): DataPlane & { walks: number; cookies: (bigint | undefined)[] } {
  return {
    walks: 0,
    cookies: [],
    applyPolicy() {},
    removePolicy() {},
    listPolicies: () => [],
    lookupOriginalDestination(_s, _d, cookie) {
      this.cookies.push(cookie);
      return null;
    },
    readCounters: () => ({}),
    mapUsage() {
      this.walks++;
      return [{ map: 'sluice_pods', entries: this.walks, capacity: 512 }];
    },
  };
}

test('a netns cookie above 2^64 - 1 is a bad request, never a RangeError', (t) => {
  const dp = fakeDataPlane();
  const m = new Metrics(() => dp);
  const ask = (netns: string) => lookup(dp, m, 'http', '127.0.0.1:1', '127.0.0.1:15001', netns);
  t.like(ask('18446744073709551616'), { kind: 'bad_request' });
  t.like(ask('99999999999999999999'), { kind: 'bad_request' });
  t.like(ask('123456789012345678901'), { kind: 'bad_request' });
  t.like(ask('-1'), { kind: 'bad_request' });
  t.like(ask('18446744073709551615'), { kind: 'not_found' });
  t.deepEqual(dp.cookies, [18446744073709551615n], 'only the valid cookie reached the data plane');
});

async function withSocket(body: (path: string, server: Server) => Promise<void>, gid?: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-lookup-'));
  const path = join(dir, 'lookup.sock');
  const dp = fakeDataPlane();
  const server = await serveLookupSocket(path, () => dp, new Metrics(() => dp), gid === undefined ? {} : { gid });
  try {
    await body(path, server);
  } finally {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends `data` in one write and collects answers until `n` lines or the end. */
function exchange(path: string, data: string, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const done = () => resolve(buf.split('\n').slice(0, -1));
    sock.setEncoding('utf8').on('error', reject).on('end', done);
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.split('\n').length > n) {
        sock.end();
        done();
      }
    });
    sock.write(data);
  });
}

test('the socket is 0600 (0660 with a group), and 250 pipelined requests get 250 answers', async (t) => {
  await withSocket(async (path) => {
    t.is(statSync(path).mode & 0o777, 0o600);
    const answers = await exchange(path, '10.1.0.2:1 10.1.0.2:15001\n'.repeat(250), 250);
    t.deepEqual(answers, Array(250).fill('NOTFOUND'));
    t.deepEqual(await exchange(path, `${'x'.repeat(MAX_LINE + 1)}\n`, 1), ['ERR request line too long']);
    t.deepEqual(await exchange(path, 'x'.repeat(MAX_LINE + 1), 1), ['ERR request line too long'], 'no newline yet, already too long');
    t.deepEqual(await exchange(path, '1.2.3.4:5 1.2.3.4:6 99999999999999999999\n', 1), ['ERR netns must be the decimal netns cookie (0..2^64-1)']);
  });
  await withSocket(async (path) => void t.is(statSync(path).mode & 0o777, 0o660), process.getgid?.() ?? 0);
});

test('a client that never reads its answers stops being read (backpressure)', async (t) => {
  await withSocket(async (path) => {
    const sock = createConnection(path);
    const request = '10.1.0.2:1 10.1.0.2:15001\n'.repeat(40_000); // ~1 MB of requests, ~360 KB of answers
    await new Promise<void>((resolve) => sock.once('connect', resolve));
    sock.pause(); // never read
    for (let i = 0; i < 20; i++) sock.write(request);
    await new Promise((r) => setTimeout(r, 1000));
    // Without backpressure the server reads all 20 MB and queues every answer in memory,
    // so this side's buffer drains; with it the server stops reading and it stays full.
    t.true(sock.writableLength > 10 * request.length, `still queued here: ${sock.writableLength} bytes`);
    sock.destroy();
  });
});

test('--listen on every address is warned about; loopback is not', (t) => {
  for (const host of ['0.0.0.0', '::', '']) t.regex(wildcardListenWarning(host) ?? '', /no access control/);
  for (const host of ['127.0.0.1', '::1', '10.0.0.1']) t.is(wildcardListenWarning(host), null);
});

test('/metrics walks the maps at most once a second', async (t) => {
  const dp = fakeDataPlane();
  const m = new Metrics(() => dp);
  await m.registry.metrics();
  await m.registry.metrics();
  await m.registry.metrics();
  t.is(dp.walks, 1);
  await new Promise((r) => setTimeout(r, 1050));
  t.regex(await m.registry.metrics(), /sluice_map_entries\{map="sluice_pods"\} 2/);
  t.is(dp.walks, 2);
});

test('--lookup-group takes a gid or a group name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-group-'));
  const file = join(dir, 'group');
  writeFileSync(file, 'root:x:0:\nenvoy:x:1337:a,b\n');
  try {
    t.is(groupFlag('42', file), 42);
    t.is(groupFlag('envoy', file), 1337);
    t.throws(() => groupFlag('nobody-here', file), { message: /--lookup-group "nobody-here" is neither a gid nor a group/ });
    t.throws(() => groupFlag('4294967295', file), { message: /neither a gid/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
