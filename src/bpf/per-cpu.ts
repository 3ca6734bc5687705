// Per-CPU map values: one 8-byte-aligned slot per possible CPU (not per online one).
import { readFileSync } from 'node:fs';
import { decodeU64 } from './wire.js';

let cpus: number | null = null;

export function possibleCpus(): number {
  // "0-1" or "0,2-3": read once, the possible CPUs do not change while we run.
  if (cpus !== null) return cpus;
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  let n = 0;
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return (cpus = n);
}

/** Bytes of one CPU's slot of a value of `valueSize`. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** The sum over CPUs of a per-CPU __u64 value as a lookup returns it (null: absent, 0). */
export function sumPerCpu(v: Buffer | null, valueSize = 8): bigint {
  if (!v) return 0n;
  const stride = perCpuStride(valueSize);
  let sum = 0n;
  for (let off = 0; off + 8 <= v.length; off += stride) sum += decodeU64(v, off);
  return sum;
}
