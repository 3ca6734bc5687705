import test from 'ava';
import { podUidOfCgroup } from '../../src/sources/kubernetes/discovery.js';

const UID = '0f6c1a52-7d1e-4b8e-9a51-1c2d3e4f5a6b';

test('a pod UID is read from cgroupfs and systemd layouts, v2 and v1 lines', (t) => {
  t.is(podUidOfCgroup(`0::/kubepods/burstable/pod${UID}/0123abcd\n`), UID);
  t.is(podUidOfCgroup(`0::/kubepods/pod${UID}/0123abcd\n`), UID);
  t.is(podUidOfCgroup(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-1.scope\n`), UID);
  t.is(podUidOfCgroup(`12:memory:/kubepods/burstable/pod${UID}/x\n0::/\n`), UID);
});

test('paths relative to the daemon\'s own cgroup namespace still name the pod', (t) => {
  // The DaemonSet's container has a private cgroupns: other pods show as ../ paths.
  t.is(podUidOfCgroup(`0::/../../pod${UID}/0123abcd\n`), UID);
  t.is(podUidOfCgroup(`0::/../../../kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-1.scope\n`), UID);
});

test('anything else names no pod', (t) => {
  t.is(podUidOfCgroup('0::/system.slice/kubelet.service\n'), null);
  t.is(podUidOfCgroup(`0::/user.slice/pod${UID.slice(0, 30)}/x\n`), null);
  t.is(podUidOfCgroup(''), null);
});
