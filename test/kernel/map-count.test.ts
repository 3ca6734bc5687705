// Counting map entries (sluice_map_entries on every /metrics scrape): hash maps are
// counted with BPF_MAP_LOOKUP_BATCH, a batch of keys per syscall; the types without batch
// operations (sockhashes; LPM tries before the kernel's generic batch ops) fall back to
// the get_next_key walk. Both must give the number of entries the map holds.
import test from 'ava';
import { join } from 'node:path';
import { BpfDataPlane } from '../../src/bpf/dataplane.js';
import { CIDR_SET, encodeCidrKey, encodeConnKey, encodeOrigDst, encodeU32 } from '../../src/bpf/codec.js';
import * as bpf from '../../src/bpf/libbpf.js';
import { bpfRequirementsMissing, createBpfSandbox, reapStale } from './bpf-fixture.js';
import { reapStaleNamespaces } from './harness/topology.js';

const missing = bpfRequirementsMissing();

test.serial('map counts: batched for hash maps, walked for the LPM trie and sockhash, and both exact past one batch', async (t) => {
  if (missing) return t.fail(missing);
  await reapStaleNamespaces();
  reapStale();
  const box = await createBpfSandbox();
  const dp = BpfDataPlane.install({ cgroupDir: box.cg.path, bpffsDir: box.bpffs.path });
  const fds: number[] = [];
  try {
    // The pinned maps through fds of their own, as the daemon's FdMap reads them.
    const pinned = (name: 'sluice_conns' | 'sluice_cidrs' | 'sluice_accel') => ({ ...dp.maps.info(name), fd: fds[fds.push(bpf.objGet(join(box.bpffs.path, 'maps', name))) - 1]! });
    const conns = pinned('sluice_conns');
    const cidrs = pinned('sluice_cidrs');
    const accel = pinned('sluice_accel');
    t.is(dp.maps.count('sluice_conns'), 0, 'an empty hash map counts 0');
    t.is(bpf.mapCountBatch(conns.fd, conns.keySize, conns.valueSize, 'sluice_conns'), 0);

    // 2,500 records: more than two batches of 1,024, so the cursor is carried across calls.
    const value = encodeOrigDst({ destination: { ip: '10.2.0.5', port: 80 }, family: 4, outcome: 0, step: 0, ownerCookie: 7n });
    for (let i = 0; i < 2500; i++) {
      const key = encodeConnKey({ client: { ip: `10.9.${i >> 8}.${i & 255}`, port: 40000 + (i % 1000) }, listener: { ip: '10.1.0.2', port: 15001 }, netnsCookie: 0n });
      dp.maps.update('sluice_conns', key, value);
    }
    t.is(bpf.mapCountBatch(conns.fd, conns.keySize, conns.valueSize, 'sluice_conns'), 2500, 'the batched count');
    t.is(bpf.mapCount(conns.fd, conns.keySize, 'sluice_conns'), 2500, 'the walk agrees');
    t.is(dp.maps.count('sluice_conns'), 2500);
    const time = (f: () => unknown) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 20; i++) f();
      return Number(process.hrtime.bigint() - t0) / 20e6;
    };
    const batched = time(() => bpf.mapCountBatch(conns.fd, conns.keySize, conns.valueSize, 'sluice_conns'));
    const walked = time(() => bpf.mapCount(conns.fd, conns.keySize, 'sluice_conns'));
    t.log(`counting 2,500 records: batched ${batched.toFixed(2)} ms, walked ${walked.toFixed(2)} ms`);

    // An LPM trie has the kernel's generic batch ops (a key as the cursor) on newer kernels.
    for (let i = 0; i < 300; i++) dp.maps.update('sluice_cidrs', encodeCidrKey({ podId: 1, set: CIDR_SET.OUT_EXCLUDE, cidr: `10.${i >> 8}.${i & 255}.0/24` }), encodeU32(1));
    t.true([null, 300].includes(bpf.mapCountBatch(cidrs.fd, cidrs.keySize, cidrs.valueSize, 'sluice_cidrs')), 'batched, or refused (then walked)');
    t.is(bpf.mapCount(cidrs.fd, cidrs.keySize, 'sluice_cidrs'), 300);
    t.is(dp.maps.count('sluice_cidrs'), 300);
    // No batch operations on a sockhash: null, and count() walks instead.
    t.is(bpf.mapCountBatch(accel.fd, accel.keySize, accel.valueSize, 'sluice_accel'), null, 'sockhashes have no batch lookup');
    t.is(dp.maps.count('sluice_accel'), 0);

    const usage = new Map(dp.mapUsage().map((u) => [u.map, u.entries]));
    t.is(usage.get('sluice_conns'), 2500);
    t.is(usage.get('sluice_cidrs'), 300);
  } finally {
    fds.forEach((fd) => bpf.closeFd(fd));
    dp.close();
    await box.destroy();
  }
});
