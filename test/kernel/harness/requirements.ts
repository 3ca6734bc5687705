// What the kernel tests need. Kernel tests call checkRequirements() first and FAIL (never
// skip) when it throws: a suite that silently skips proves nothing.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PROBE_PATH = join(REPO_ROOT, 'native', 'build', 'sluice-probe');

// Node's PATH often lacks the sbin directories where ip and iptables live.
const EXTRA_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const found = new Map<string, string>();

/** The absolute path of a tool, or null when it is not installed. */
export function findTool(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_PATH]) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      found.set(name, p);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Like findTool, but throws the same message checkRequirements would. */
export function tool(name: string): string {
  const p = findTool(name);
  if (!p) throw new Error(`kernel tests need \`${name}\`, which is not on PATH (nor in ${EXTRA_PATH.join(', ')})`);
  return p;
}

export interface RequirementOptions {
  /** The iptables backend: iptables-restore and ip6tables-restore. */
  iptables?: boolean;
}

/** Throws one Error listing everything that is missing. */
export function checkRequirements(opts: RequirementOptions = {}): void {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('root: run the kernel tests as root (they create network namespaces)');
  if (!findTool('ip')) missing.push('`ip` from iproute2');
  if (!findTool('sysctl')) missing.push('`sysctl` (procps)');
  if (opts.iptables) {
    for (const t of ['iptables-restore', 'ip6tables-restore']) if (!findTool(t)) missing.push(`\`${t}\` (the iptables package)`);
  }
  if (!existsSync(PROBE_PATH)) missing.push(`the probe binary ${PROBE_PATH}: run \`npm run build\` (or \`make -C native\`)`);
  if (!existsSync('/proc/self/ns/net')) missing.push('network namespaces (/proc/self/ns/net)');
  if (missing.length > 0) throw new Error(`kernel test requirements missing:\n  - ${missing.join('\n  - ')}`);
}
