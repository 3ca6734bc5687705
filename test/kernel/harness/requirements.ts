// What the kernel tests need. Kernel tests call checkRequirements() first and FAIL (never
// skip) when it throws: a suite that silently skips proves nothing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findTool } from '../../../src/system/tools.js';

export { findTool, tool } from '../../../src/system/tools.js';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * How much slower than this host the machine is: scripts/test-vm sets SLUICE_TEST_SLOW in
 * its TCG guests. Waits scale by it; what a test asserts does not.
 */
export const SLOW = Math.max(1, Number(process.env.SLUICE_TEST_SLOW) || 1);
export const scaled = (ms: number): number => ms * SLOW;
export const PROBE_PATH = join(REPO_ROOT, 'native', 'build', 'sluice-probe');

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
