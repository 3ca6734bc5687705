// `sluice doctor`: can this node run sluice? Each check says what is wrong and the fix.
// Host facts, the BPF features the programs use (libbpf's probes), and the live sockmap
// regression check that decides whether --accelerate is safe. Only a missing required
// feature fails (exit 1); what only --accelerate needs is a warning.
import { existsSync, readdirSync } from 'node:fs';
import type { WakeupReport } from '../bpf/probe-facts.js';
import type { Feature, WakeupOptions } from '../bpf/probes.js';
import { bpffsMountFor, btfAvailable, findCgroup2Mount, kernelRelease, sockmapRegressionByVersion } from '../bpf/system.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
}

/** One source of checks; doctor runs them in order. Tests inject their own. */
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

/** Program types, map types and helpers, each probed by loading or creating a tiny one. */
export function featureChecks(features: readonly Feature[], root = process.geteuid?.() === 0): Check[] {
  // Without privileges every load fails, and libbpf reports that as "not supported".
  if (!root) return [{ name: 'bpf features', status: 'fail', detail: `${features.length} program types, map types and helpers cannot be probed without root: run sluice doctor as root` }];
  return features.map((f) => {
    const name = `${f.kind} ${f.name}`;
    const answer = f.probe();
    if (answer === true) return { name, status: 'ok', detail: `supported (${f.use})` };
    const missing = answer === false ? 'not supported by this kernel' : `the probe failed (${answer})`;
    return f.required
      ? { name, status: 'fail', detail: `${missing}; sluice needs it for ${f.use}: run as root on Linux 6.1 or later` }
      : { name, status: 'warn', detail: `${missing}; only ${f.use} needs it, so --accelerate is not available` };
  });
}

export const SOCKMAP_CHECK = 'sockmap-regression (live)';

/** The live sockmap check as a doctor check; it never fails the doctor, it only decides --accelerate. */
export function sockmapCheck(run: (opts: WakeupOptions) => Promise<WakeupReport>, opts: WakeupOptions = {}): Probe {
  return async () => {
    const r = await run(opts);
    if (r.verdict === 'ok') return { name: SOCKMAP_CHECK, status: 'ok', detail: `--accelerate is safe here: ${r.summary}` };
    if (r.verdict === 'regressed') {
      return {
        name: SOCKMAP_CHECK,
        status: 'warn',
        detail: `regressed: ${r.summary}. Sockets in a sockmap can stall epoll clients (libuv, Go) and FIONREAD readers (nginx, Java); sluice run --accelerate is refused (--accelerate-force overrides)`,
      };
    }
    return { name: SOCKMAP_CHECK, status: 'warn', detail: `${r.verdict}; sluice run --accelerate is refused until this check says ok (--accelerate-force overrides)` };
  };
}

/** Runs every probe; a probe that throws becomes a failed check with its message. */
export async function collectChecks(probes: Probe[]): Promise<Check[]> {
  const checks: Check[] = [];
  for (const probe of probes) {
    try {
      const r = await probe();
      checks.push(...(Array.isArray(r) ? r : [r]));
    } catch (e) {
      checks.push({ name: probe.name || 'probe', status: 'fail', detail: (e as Error).message });
    }
  }
  return checks;
}

export interface DoctorReport {
  /** False when a required feature is missing: the exit code is then 1. */
  ok: boolean;
  /** What `sluice run --accelerate` would do on this node. */
  accelerate: 'allowed' | 'refused' | 'not checked';
  checks: Check[];
}

export function doctorReport(checks: Check[]): DoctorReport {
  const live = checks.find((c) => c.name === SOCKMAP_CHECK);
  return { ok: !checks.some((c) => c.status === 'fail'), accelerate: !live ? 'not checked' : live.status === 'ok' ? 'allowed' : 'refused', checks };
}

export function formatDoctor(report: DoctorReport, json: boolean): string {
  if (json) return JSON.stringify(report, null, 2);
  const lines = report.checks.map((c) => `${c.status.toUpperCase().padEnd(4)} ${c.name}: ${c.detail}`);
  lines.push(report.ok ? 'sluice can run on this node' : 'sluice cannot run on this node: see FAIL above');
  lines.push(`--accelerate: ${report.accelerate}`);
  return lines.join('\n');
}

export async function runDoctor(opts: { json?: boolean }, probes: Probe[], out: (text: string) => void = console.log): Promise<number> {
  const report = doctorReport(await collectChecks(probes));
  out(formatDoctor(report, opts.json ?? false));
  return report.ok ? 0 : 1;
}
