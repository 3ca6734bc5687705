import test from 'ava';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachedNetnsResolver } from '../../src/daemon/netns-cache.js';

test('a netns path is resolved once while it names the same inode, again when it changes or the TTL passes', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-nscache-'));
  try {
    const path = join(dir, 'net');
    writeFileSync(path, 'a');
    let calls = 0;
    let clock = 0;
    const r = new CachedNetnsResolver({ cookieOf: () => BigInt(++calls) }, 1000, () => clock);
    t.is(r.cookieOf(path), 1n);
    t.is(r.cookieOf(path), 1n);
    t.is(calls, 1);
    writeFileSync(join(dir, 'other'), 'b');
    renameSync(join(dir, 'other'), path); // a new inode at the same path: a new netns
    t.is(r.cookieOf(path), 2n);
    clock = 1001;
    t.is(r.cookieOf(path), 3n);
    rmSync(path);
    t.is(r.cookieOf(path), 4n, 'a vanished path goes to the resolver, whose error names it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
