// Host facts the loader and `sluice doctor` need: cgroup2 and bpffs mounts, BTF, kernel.
import { SluiceError } from '../errors.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';

export interface Mount {
  source: string;
  target: string;
  type: string;
}

export function mounts(): Mount[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', type = ''] = line.split(' ');
      // /proc/mounts escapes spaces as \040.
      return { source, target: target.replace(/\\040/g, ' '), type };
    });
}

/** The cgroup v2 mount point (it differs between machines: /sys/fs/cgroup, .../unified). */
export function findCgroup2Mount(): string | null {
  return mounts().find((m) => m.type === 'cgroup2')?.target ?? null;
}

/** The bpffs mount that holds `dir`, or null. */
export function bpffsMountFor(dir: string): string | null {
  const candidates = mounts().filter((m) => m.type === 'bpf' && (dir === m.target || dir.startsWith(m.target.endsWith('/') ? m.target : m.target + '/')));
  return candidates.sort((a, b) => b.target.length - a.target.length)[0]?.target ?? null;
}

export class BpffsError extends SluiceError {
  constructor(message: string, hint: string) {
    super('BPFFS_UNAVAILABLE', message, { hint });
  }
}

/**
 * Makes sure `dir` is on a bpffs, mounting /sys/fs/bpf when nothing is mounted there
 * (a fresh machine here has no bpffs), then creates `dir`.
 */
export function ensureBpffs(dir: string): void {
  if (!bpffsMountFor(dir)) {
    const root = '/sys/fs/bpf';
    if (!dir.startsWith(root + '/') && dir !== root) {
      throw new BpffsError(`${dir} is not on a bpffs mount`, `use a directory under ${root} or mount bpffs there first`);
    }
    try {
      mkdirSync(root, { recursive: true });
      execFileSync('mount', ['-t', 'bpf', 'bpf', root], { stdio: 'pipe' });
    } catch (e) {
      throw new BpffsError(`bpffs is not mounted at ${root} and mounting it failed (${(e as Error).message.trim()})`, `run as root or mount it: mount -t bpf bpf ${root}`);
    }
  }
  mkdirSync(dir, { recursive: true });
}

export function btfAvailable(): boolean {
  return existsSync('/sys/kernel/btf/vmlinux');
}

export function kernelRelease(): string {
  return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
}

/**
 * The upstream version of the running kernel. Debian's release string carries its ABI
 * number, not the upstream patch level (`6.1.0-57-amd64` is 6.1.192): that is in
 * /proc/version ("... Debian 6.1.192-3 ..."). Ubuntu puts it in /proc/version_signature.
 */
export function upstreamKernelVersion(release: string, procVersion: string, signature = ''): string {
  // The last "Debian x.y.z": the compiler's version comes first ("gcc-12 (Debian 12.2.0-14)").
  const debian = [...procVersion.matchAll(/\bDebian (\d+\.\d+\.\d+)/g)].at(-1);
  if (debian) return debian[1]!;
  const ubuntu = /^Ubuntu \S+ (\d+\.\d+\.\d+)/.exec(signature);
  if (ubuntu) return ubuntu[1]!;
  return /^\d+\.\d+(\.\d+)?/.exec(release)?.[0] ?? release;
}

export function runningUpstreamVersion(): string {
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  return upstreamKernelVersion(kernelRelease(), read('/proc/version'), read('/proc/version_signature'));
}

export function parseKernelVersion(release: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/**
 * Stable series that carry the sockmap regression (upstream 929e30f93125, "bpf, sockmap:
 * Fix FIONREAD for sockmap"), and the first release with its fix (04af4efde58a, "bpf,
 * sockmap: Account for receive queue in FIONREAD without a verdict program"), from the
 * Debian changelogs: 6.12.75 brought it, 6.12.114 the fix (Debian 6.12.115 the first
 * package). No fixed 6.6 or 6.18 release is known yet. Only a version hint: `sluice
 * doctor` also tests it live.
 */
export const SOCKMAP_REGRESSION: Record<string, { since: number; fixed?: number }> = { '6.6': { since: 128 }, '6.12': { since: 75, fixed: 114 }, '6.18': { since: 14 } };

/** `version` is the upstream one (upstreamKernelVersion), not a distribution's release string. */
export function sockmapRegressionByVersion(version: string): boolean | null {
  const v = parseKernelVersion(version);
  if (!v) return null;
  const series = SOCKMAP_REGRESSION[`${v[0]}.${v[1]}`];
  if (series === undefined) return null;
  return v[2] >= series.since && (series.fixed === undefined || v[2] < series.fixed);
}
