// Each pinned link must not cost the daemon an open fd: the soak test saw its bpf_link fds
// grow by one per pod attach (pinAndRelease freed libbpf's handle without closing its fd).
import test from 'ava';
import { openSync, closeSync, readdirSync, readlinkSync } from 'node:fs';
import { attachNetns, detachNetns, install } from '../../src/bpf/loader.js';
import { netnsCookie } from '../../src/bpf/netns.js';
import { bpfRequirementsMissing, createBpfSandbox } from '../kernel/bpf-fixture.js';

const missing = bpfRequirementsMissing();
const linkFds = () => readdirSync('/proc/self/fd').filter((f) => {
  try {
    return readlinkSync(`/proc/self/fd/${f}`) === 'anon_inode:bpf_link';
  } catch {
    return false;
  }
}).length;

test('attaching and detaching a netns link 20 times leaves no bpf_link fd open', async (t) => {
  if (missing) return t.fail(missing);
  const box = await createBpfSandbox();
  try {
    install({ cgroupDir: box.cg.path, bpffsDir: box.bpffs.path });
    const before = linkFds();
    const cookie = netnsCookie(box.topo.pod.path);
    for (let i = 0; i < 20; i++) {
      const fd = openSync(box.topo.pod.path, 'r');
      try {
        t.true(attachNetns(cookie, fd, { bpffsDir: box.bpffs.path }));
      } finally {
        closeSync(fd);
      }
      t.true(detachNetns(cookie, box.bpffs.path));
    }
    t.is(linkFds() - before, 0, 'bpf_link fds left open by 20 attaches');
  } finally {
    const { uninstall } = await import('../../src/bpf/loader.js');
    uninstall(box.bpffs.path);
    await box.destroy();
  }
});
