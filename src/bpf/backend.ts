// src/bpf as the daemon's DataPlaneBackend; the CLI hands it to runDaemon.
import type { DataPlaneBackend } from '../dataplane/types.js';
import { BpfDataPlane } from './dataplane.js';
import { lockPinDir } from './pin-lock.js';
import { checkSockmapWakeup } from './probes.js';
import { findCgroup2Mount, kernelRelease } from './system.js';

export const bpfBackend: DataPlaneBackend = {
  lockPinDir: (dir, opts) => lockPinDir(dir, opts),
  // The daemon attaches to the cgroup2 root in production; tests pass their own --cgroup.
  install: (req) => BpfDataPlane.install({ ...req, allowCgroupRoot: true }),
  findCgroup2Mount,
  kernelRelease,
  sockmapCheck: (opts) => checkSockmapWakeup(opts),
};
