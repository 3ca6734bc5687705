// Where a pod's tc reroute filters are, as recorded under the pin directory (tc-pins.ts):
// a daemon start keeps the record, a migration reads it, and a netns that is gone loses it.
import test from 'ava';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progPinPath, recordedFilters, recordFilters, relinkRerouteFilters, TC_REROUTE_PROGRAMS, unpinReroutePrograms, unpinRerouteInstances } from '../../src/bpf/tc-pins.js';

const pinDir = () => mkdtempSync(join(tmpdir(), 'sluice-test-leaks-tcpins-'));

// Stand-ins for the program pins (a plain directory holds no BPF objects).
function fakePins(dir: string, cookie: bigint): void {
  for (const p of TC_REROUTE_PROGRAMS) writeFileSync(progPinPath(dir, cookie, p), '');
}

test('a record names the netns path and its interfaces, and survives a start', (t) => {
  const dir = pinDir();
  try {
    t.true(recordFilters(dir, 7n, '/var/run/netns/cni-1', ['eth1', 'tap0']));
    fakePins(dir, 7n);
    t.true(recordFilters(dir, 9n, '/proc/42/ns/net', ['eth2']));
    const sorted = () => recordedFilters(dir).map((r) => ({ ...r, devs: r.devs.sort() })).sort((a, b) => Number(a.cookie - b.cookie));
    t.deepEqual(sorted(), [
      { cookie: 7n, netnsPath: '/var/run/netns/cni-1', devs: ['eth1', 'tap0'] },
      { cookie: 9n, netnsPath: '/proc/42/ns/net', devs: ['eth2'] },
    ]);
    unpinReroutePrograms(dir);
    t.false(TC_REROUTE_PROGRAMS.some((p) => existsSync(progPinPath(dir, 7n, p))), 'the programs are unpinned');
    t.is(sorted().length, 2, 'the records stay');
    t.true(recordFilters(dir, 7n, '/var/run/netns/cni-1', ['eth1']));
    t.deepEqual(sorted()[0]!.devs, ['eth1'], 'rewritten, not added to');
    unpinRerouteInstances(dir, 9n);
    t.deepEqual(sorted().map((r) => r.cookie), [7n]);
    t.true(recordFilters(dir, 7n, '/var/run/netns/cni-1', []));
    t.deepEqual(recordedFilters(dir), [], 'no interfaces: no record');
    unpinRerouteInstances(dir);
    t.false(existsSync(join(dir, 'progs')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a path too long for a directory name is not recorded', (t) => {
  const dir = pinDir();
  try {
    t.false(recordFilters(dir, 1n, `/var/run/netns/${'x'.repeat(200)}`, ['eth1']));
    t.deepEqual(recordedFilters(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a migration drops the record of a netns that is gone, without loading anything', (t) => {
  const dir = pinDir();
  try {
    t.true(recordFilters(dir, 5n, join(dir, 'no-such-netns'), ['eth1']));
    let loads = 0;
    t.is(
      relinkRerouteFilters(dir, () => {
        loads++;
        throw new Error('not reached');
      }),
      0,
    );
    t.is(loads, 0);
    t.deepEqual(recordedFilters(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
