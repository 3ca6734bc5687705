import test from 'ava';
import { getHeapSpaceStatistics } from 'node:v8';
import { MallocTrimmer } from '../../src/daemon/malloc-trim.js';

test('malloc_trim runs on glibc, at most once every 5 s', (t) => {
  let now = 1_000_000;
  const trimmer = new MallocTrimmer(() => now);
  t.true(trimmer.maybeTrim(), 'the first call trims (this machine runs glibc)');
  now += 4999;
  t.false(trimmer.maybeTrim(), 'not again within 5 s');
  now += 1;
  t.true(trimmer.maybeTrim());
  trimmer.close();
});

const oldUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
const tick = () => new Promise((r) => setTimeout(r, 0));

test('once idle, a full GC frees the garbage left in the old generation', async (t) => {
  const base = oldUsed();
  // Objects that survive a few scavenges are promoted to the old generation, which only a
  // full GC frees.
  let kept: object[][] | null = [];
  for (let round = 0; round < 16; round++) {
    kept.push(Array.from({ length: 50_000 }, (_, i) => ({ i, round })));
    await tick();
  }
  const filled = oldUsed();
  t.true(filled - base > 8 * 1024 * 1024, `precondition: ${((filled - base) / 1048576).toFixed(1)} MiB promoted`);
  kept = null;
  const trimmer = new MallocTrimmer(Date.now, 20);
  trimmer.maybeTrim();
  t.true(filled - oldUsed() < 4 * 1024 * 1024, 'not collected before the idle delay');
  await new Promise((r) => setTimeout(r, 200));
  const after = oldUsed();
  t.true(filled - after > 8 * 1024 * 1024, `old generation ${(filled / 1048576).toFixed(1)} -> ${(after / 1048576).toFixed(1)} MiB`);
  t.is(kept, null);
});
