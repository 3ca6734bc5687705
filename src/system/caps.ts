// The process's effective capabilities, from /proc/self/status (CapEff).
import { readFileSync } from 'node:fs';

export const CAP = { SYS_ADMIN: 21, BPF: 39 } as const;

/** Whether capability `bit` is in effect; `status` is /proc/self/status (true when it has no CapEff line). */
export function hasCapability(bit: number, status = readStatus()): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return true;
  return ((BigInt(`0x${m[1]}`) >> BigInt(bit)) & 1n) === 1n;
}

function readStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}
