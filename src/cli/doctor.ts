// `sluice doctor`: can this node run sluice? Each check says what is wrong and the fix.
import { existsSync, readdirSync } from 'node:fs';
import { bpffsMountFor, btfAvailable, findCgroup2Mount, kernelRelease, sockmapRegressionByVersion } from '../bpf/system.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

/** Extra probes (BPF program and map types, the live sockmap check) plug in here. */
export type Probe = () => Check | Check[] | Promise<Check | Check[]>;

export function hostChecks(bpfObjectDir: string, bpffsDir: string): Check[] {
  const checks: Check[] = [];
  const euid = process.geteuid?.() ?? -1;
  checks.push(euid === 0 ? { name: 'root', status: 'ok', detail: 'running as root' } : { name: 'root', status: 'fail', detail: `running as uid ${euid}; run sluice as root (or with CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)` });

  const release = kernelRelease();
  checks.push({ name: 'kernel', status: 'ok', detail: release });

  const cg = findCgroup2Mount();
  checks.push(cg ? { name: 'cgroup2', status: 'ok', detail: `mounted at ${cg}` } : { name: 'cgroup2', status: 'fail', detail: 'no cgroup2 mount; mount it: mount -t cgroup2 none /sys/fs/cgroup/unified' });

  const bpffs = bpffsMountFor(bpffsDir);
  checks.push(
    bpffs
      ? { name: 'bpffs', status: 'ok', detail: `${bpffsDir} is on the bpffs mounted at ${bpffs}` }
      : { name: 'bpffs', status: 'warn', detail: `${bpffsDir} is not on a bpffs; sluice run mounts /sys/fs/bpf itself, or: mount -t bpf bpf /sys/fs/bpf` },
  );

  checks.push(btfAvailable() ? { name: 'btf', status: 'ok', detail: '/sys/kernel/btf/vmlinux present' } : { name: 'btf', status: 'warn', detail: 'no kernel BTF (/sys/kernel/btf/vmlinux); sluice does not need CO-RE, but bpftool output is poorer' });

  const objects = existsSync(bpfObjectDir) ? readdirSync(bpfObjectDir).filter((f) => f.endsWith('.bpf.o')) : [];
  checks.push(objects.length > 0 ? { name: 'bpf-objects', status: 'ok', detail: `${objects.length} objects in ${bpfObjectDir}` } : { name: 'bpf-objects', status: 'fail', detail: `no BPF objects in ${bpfObjectDir}; run npm run build` });

  const regressed = sockmapRegressionByVersion(release);
  checks.push({
    name: 'sockmap-wakeup (by version)',
    status: regressed === false ? 'ok' : 'warn',
    detail:
      regressed === true
        ? `${release} is in a series that carries the sockmap epoll wake-up regression (6.6.128+, 6.12.75+, 6.18.14+); keep --accelerate off unless the live check passes`
        : regressed === false
          ? `${release} predates the regression in its series`
          : `${release} is not a series the regression is known for; rely on the live check`,
  });
  return checks;
}

export async function runDoctor(opts: { json?: boolean; bpffs: string; objects: string }, probes: Probe[] = []): Promise<number> {
  const checks = hostChecks(opts.objects, opts.bpffs);
  for (const probe of probes) {
    try {
      const r = await probe();
      checks.push(...(Array.isArray(r) ? r : [r]));
    } catch (e) {
      checks.push({ name: probe.name || 'probe', status: 'fail', detail: (e as Error).message });
    }
  }
  if (opts.json) console.log(JSON.stringify(checks, null, 2));
  else for (const c of checks) console.log(`${c.status.toUpperCase().padEnd(4)} ${c.name}: ${c.detail}`);
  return checks.some((c) => c.status === 'fail') ? 1 : 0;
}
