// `sluice doctor`: can this node run sluice? Each check says what is wrong and the fix.
// Host facts, the BPF features the programs use (libbpf's probes), and the live sockmap
// regression check that decides whether --accelerate is safe. Only a missing required
// feature fails (exit 1); what only --accelerate needs is a warning.
import { existsSync, readdirSync } from 'node:fs';
import type { WakeupReport } from '../bpf/probe-facts.js';
import type { Feature, WakeupOptions } from '../bpf/probes.js';
import { bpffsMountFor, btfAvailable, findCgroup2Mount, kernelRelease, parseKernelVersion, runningUpstreamVersion, SOCKMAP_REGRESSION, sockmapRegressionByVersion } from '../bpf/system.js';
import type { ObjectLoad } from '../bpf/object-probes.js';
import { SluiceError, errorText } from '../errors.js';
import { CAP, hasCapability } from '../system/caps.js';

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
  const upstream = runningUpstreamVersion();
  const kernel = upstream === release ? release : `${release} (upstream ${upstream})`;
  checks.push({ name: 'kernel', status: 'ok', detail: kernel });

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

  const regressed = sockmapRegressionByVersion(upstream);
  const v = parseKernelVersion(upstream);
  const fixed = v ? SOCKMAP_REGRESSION[`${v[0]}.${v[1]}`]?.fixed : undefined;
  const ranges = 'upstream 929e30f93125 in 6.6.128+, 6.12.75 to 6.12.113, 6.18.14+ and mainline 6.19+; fixed by 04af4efde58a in 6.12.114';
  checks.push({
    name: 'sockmap-wakeup (by version)',
    status: regressed === false ? 'ok' : 'warn',
    detail:
      regressed === true
        ? `${kernel} is in a range that carries the sockmap regression (${ranges}); keep --accelerate off unless the live check passes`
        : regressed === false
          ? fixed !== undefined && v && v[2] >= fixed
            ? `${kernel} has the regression's fix (04af4efde58a, in 6.12.${fixed})`
            : `${kernel} predates the regression in its series`
          : `${kernel} is not a series the regression is known for (${ranges}); rely on the live check`,
  });
  return checks;
}

/** The oldest kernel the suite ran green on (README, kernel matrix). */
export const MIN_TESTED_KERNEL = '6.1';

/** Program types, map types, helpers, context fields and kfuncs, each probed by loading or creating a tiny one. */
/**
 * Whether BPF probes can tell "not supported" from "not allowed": root with CAP_BPF or
 * CAP_SYS_ADMIN in effect. Without them every probe fails with EPERM, which is no
 * verdict on the kernel (a DaemonSet that dropped a capability must not hear "upgrade").
 */
export function canProbeBpf(status?: string): boolean {
  if (process.geteuid?.() !== 0) return false;
  return hasCapability(CAP.SYS_ADMIN, status) || hasCapability(CAP.BPF, status);
}

export function featureChecks(features: readonly Feature[], root = canProbeBpf()): Check[] {
  // Without privileges every load fails, and libbpf reports that as "not supported".
  if (!root) return [{ name: 'bpf features', status: 'fail', detail: `${features.length} program types, map types, helpers and kfuncs cannot be probed without root and CAP_BPF or CAP_SYS_ADMIN: run sluice doctor as root` }];
  return features.map((f) => {
    const name = `${f.kind} ${f.name}`;
    const answer = f.probe();
    if (answer === true) return { name, status: 'ok', detail: `supported (${f.use})` };
    const missing = answer === false ? 'not supported by this kernel' : `the probe failed (${answer})`;
    const since = f.since ? `; it came in Linux ${f.since}` : '';
    if (f.required) return { name, status: 'fail', detail: `${missing}${since}; sluice needs it for ${f.use}: run on Linux ${MIN_TESTED_KERNEL} or later` };
    if (f.kind === 'kfunc') return { name, status: 'ok', detail: `${missing}${since}; fallback in use: ${f.use}` };
    return { name, status: 'warn', detail: `${missing}${since}; only ${f.use} needs it, so --accelerate is not available` };
  });
}

/** Each object's trial load (object-probes.ts) as a check: a failure is what `sluice run` would hit. */
export function objectChecks(loads: ObjectLoad[]): Check[] {
  return loads.map(({ object, error }) =>
    error === null
      ? { name: `object ${object}.bpf.o`, status: 'ok', detail: 'loads into this kernel' }
      : { name: `object ${object}.bpf.o`, status: 'fail', detail: `does not load into this kernel: ${error.replace(/; the kernel rejected a program or map: the verifier log.*$/, '')}` },
  );
}

/** `sluice run` (and the demo) on a kernel that lacks something capture needs: exit 2, nothing changed. */
export class KernelUnsupportedError extends SluiceError {
  constructor(readonly missing: Check[]) {
    super('KERNEL_UNSUPPORTED', `this kernel cannot run sluice; nothing was changed. ${missing.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, {
      hint: '`sluice doctor` lists every check; the README has the kernels sluice was tested on',
      exitCode: 2,
    });
  }
}

/** Throws KernelUnsupportedError naming every failed check among `checks`. */
export function refuseUnsupportedKernel(checks: Check[]): void {
  const missing = checks.filter((c) => c.status === 'fail');
  if (missing.length > 0) throw new KernelUnsupportedError(missing);
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
    if (r.verdict === 'limited') {
      return { name: SOCKMAP_CHECK, status: 'warn', detail: `limited: ${r.summary}. FIONREAD readers (nginx, Java NIO) would read 0 on accelerated sockets; sluice run --accelerate is refused (--accelerate-force overrides)` };
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
      checks.push({ name: probe.name || 'probe', status: 'fail', detail: errorText(e) });
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
