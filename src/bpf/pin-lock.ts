// One writer per pin directory. Two daemons on one bpffs (a surge during a rolling
// update) would race on pod ids and garbage-collect each other's staged sets, so each
// daemon holds flock(2) on the pin directory itself (bpffs takes no regular files) for
// its whole life. The kernel drops the lock when the process dies, kill -9 included.
import { closeSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import koffi from 'koffi';
import { SluiceError } from '../errors.js';
import { ensureBpffs } from './system.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

const libc = koffi.load('libc.so.6');
const flock = libc.func('int flock(int fd, int operation)') as (fd: number, op: number) => number;

/** Another daemon holds the pin directory and did not let go in time. */
export class PinDirBusyError extends SluiceError {
  constructor(dir: string, waitedMs: number) {
    super('PIN_DIR_BUSY', `another sluice daemon holds the pin directory ${dir} (waited ${Math.round(waitedMs / 1000)} s)`, {
      hint: 'stop the other daemon (a rolling update does), or give this one its own --bpffs directory',
    });
  }
}

export interface PinDirLock {
  release(): void;
}

/** Takes the lock now, or returns null when another process holds it. */
export function tryLockPinDir(dir: string): PinDirLock | null {
  ensureBpffs(dir);
  const fd = openSync(dir, 'r');
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = koffi.errno();
    closeSync(fd);
    if (errno === osConstants.errno.EWOULDBLOCK) return null;
    throw new SluiceError('PIN_DIR_LOCK', `flock(${dir}) failed with errno ${errno}`, { hint: 'check that the --bpffs directory is on bpffs and writable by root' });
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}

export interface LockWait {
  /** Give up (PinDirBusyError) after this long; default: wait as long as it takes. */
  timeoutMs?: number;
  pollMs?: number;
  /** Told once when the lock is taken by another daemon, so the wait is visible. */
  onWait?: () => void;
}

/**
 * Waits for the lock without blocking the event loop. Waiting, not exiting, is what makes
 * a surge safe: the old daemon keeps reconciling until it stops, and the new one takes
 * over the pins the moment it does, with no crash loop and its back-off in between.
 */
export async function lockPinDir(dir: string, opts: LockWait = {}): Promise<PinDirLock> {
  const start = Date.now();
  let told = false;
  for (;;) {
    const lock = tryLockPinDir(dir);
    if (lock) return lock;
    if (!told) opts.onWait?.();
    told = true;
    if (opts.timeoutMs !== undefined && Date.now() - start >= opts.timeoutMs) throw new PinDirBusyError(dir, Date.now() - start);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
  }
}
