import test from 'ava';
import { MallocTrimmer } from '../../src/daemon/malloc-trim.js';

test('malloc_trim runs on glibc, at most once every 5 s', (t) => {
  let now = 1_000_000;
  const trimmer = new MallocTrimmer(() => now);
  t.true(trimmer.maybeTrim(), 'the first call trims (this machine runs glibc)');
  now += 4999;
  t.false(trimmer.maybeTrim(), 'not again within 5 s');
  now += 1;
  t.true(trimmer.maybeTrim());
});
