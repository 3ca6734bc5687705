// The inputs of `sluice manifest`, checked before anything is rendered: a manifest that
// applies but points the daemon at the wrong place is worse than a refusal.
import { SluiceError } from '../errors.js';

export class ManifestError extends SluiceError {
  constructor(flag: string, value: string, why: string, hint: string) {
    super('BAD_MANIFEST_FLAG', `${flag} ${JSON.stringify(value)}: ${why}`, { hint, exitCode: 2 });
  }
}

/** The image `scripts/build-image` tags; a unit test keeps it in step with package.json. */
export const DEFAULT_IMAGE = 'localhost/sluice:0.1.0';

export interface ManifestOptions {
  image: string;
  namespace: string;
  /** The host's cgroup2 mount, bind-mounted into the pod at /host/cgroup. */
  hostCgroup: string;
  /** Pin directory (host path, the same inside the pod). */
  bpffs: string;
  /** The daemon's HTTP address: IPv4 or [IPv6] and port, on the node's network. */
  listen: { host: string; port: number };
  lookupSocket: string;
  /** Further `sluice run` flags, already checked. */
  runFlags: string[];
}

export interface ManifestFlags {
  image?: string;
  namespace?: string;
  hostCgroup?: string;
  bpffs?: string;
  listen?: string;
  lookupSocket?: string;
  maxPods?: string;
  maxConnections?: string;
  resync?: string;
  accelerate?: boolean;
  accelerateForce?: boolean;
}

export const DEFAULTS = {
  image: DEFAULT_IMAGE,
  namespace: 'sluice',
  hostCgroup: '/sys/fs/cgroup',
  bpffs: '/sys/fs/bpf/sluice',
  listen: '127.0.0.1:15099',
  lookupSocket: '/run/sluice/lookup.sock',
} as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// registry[:port]/path[:tag][@sha256:hex], as `docker pull` accepts it (no spaces, no scheme).
const IMAGE_REF = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
const SAFE_PATH = /^(\/[A-Za-z0-9._-]+)+$/;

function pathUnder(flag: string, value: string, root: string): string {
  if (!SAFE_PATH.test(value) || value.split('/').includes('..') || !value.startsWith(`${root}/`)) {
    throw new ManifestError(flag, value, `must be a plain absolute path under ${root}/`, `for example ${root}/sluice${flag === '--lookup-socket' ? '/lookup.sock' : ''}`);
  }
  return value;
}

function listenFlag(value: string): ManifestOptions['listen'] {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new ManifestError('--listen', value, 'is not IP:PORT', 'use 127.0.0.1:15099 (the node only), or the node address to let Prometheus scrape it');
  return { host: m[1]!, port };
}

function wholeNumber(flag: string, value: string, min: number): string {
  if (!/^\d{1,9}$/.test(value) || Number(value) < min) throw new ManifestError(flag, value, `is not a whole number of at least ${min}`, `${flag} 512`);
  return String(Number(value));
}

/** Flags → checked options; throws ManifestError naming the first bad flag. */
export function manifestOptions(f: ManifestFlags): ManifestOptions {
  const image = f.image ?? DEFAULTS.image;
  if (!IMAGE_REF.test(image)) throw new ManifestError('--image', image, 'is not an image reference', 'REGISTRY/NAME:TAG or REGISTRY/NAME@sha256:DIGEST');
  const namespace = f.namespace ?? DEFAULTS.namespace;
  if (!DNS_LABEL.test(namespace)) throw new ManifestError('--namespace', namespace, 'is not a Kubernetes namespace name', 'lower-case letters, digits and -, at most 63');
  const hostCgroup = f.hostCgroup ?? DEFAULTS.hostCgroup;
  if (!SAFE_PATH.test(hostCgroup) || hostCgroup.split('/').includes('..')) {
    throw new ManifestError('--host-cgroup', hostCgroup, 'must be a plain absolute path', "the node's cgroup2 mount: `findmnt -t cgroup2` on the node (usually /sys/fs/cgroup)");
  }
  const runFlags: string[] = [];
  if (f.maxPods !== undefined) runFlags.push('--max-pods', wholeNumber('--max-pods', f.maxPods, 1));
  if (f.maxConnections !== undefined) runFlags.push('--max-connections', wholeNumber('--max-connections', f.maxConnections, 1));
  if (f.resync !== undefined) {
    // The same rule as `sluice run --resync`: seconds, 0.1 or more.
    if (!/^\d{1,6}(\.\d{1,3})?$/.test(f.resync) || !(Number(f.resync) >= 0.1)) throw new ManifestError('--resync', f.resync, 'is not a number of seconds (0.1 or more)', '--resync 10');
    runFlags.push('--resync', f.resync);
  }
  if (f.accelerateForce) runFlags.push('--accelerate-force');
  else if (f.accelerate) runFlags.push('--accelerate');
  return {
    image,
    namespace,
    hostCgroup,
    bpffs: pathUnder('--bpffs', f.bpffs ?? DEFAULTS.bpffs, '/sys/fs/bpf'),
    listen: listenFlag(f.listen ?? DEFAULTS.listen),
    lookupSocket: pathUnder('--lookup-socket', f.lookupSocket ?? DEFAULTS.lookupSocket, '/run/sluice'),
    runFlags,
  };
}
