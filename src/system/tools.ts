// Finds the system tools sluice runs (ip, nsenter, iptables-save; the lab's ss, haproxy...) by absolute path.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

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
  if (!p) throw new Error(`sluice needs \`${name}\`, which is not on PATH (nor in ${EXTRA_PATH.join(', ')})`);
  return p;
}
