// A live progress line on a terminal (rewritten in place); the round lines scroll above it.
export interface Progress {
  /** A line that stays (stderr). */
  log(m: string): void;
  /** The progress line: elapsed time and phase, only on a terminal. */
  progress(m: string): void;
  clear(): void;
}

export function createProgress(t0 = Date.now()): Progress {
  let shown = false;
  const clear = () => {
    if (shown) process.stderr.write('\r\x1b[K');
    shown = false;
  };
  return {
    clear,
    log: (m) => {
      clear();
      process.stderr.write(`${m}\n`);
    },
    progress: (m) => {
      if (!process.stderr.isTTY) return;
      const s = Math.round((Date.now() - t0) / 1000);
      process.stderr.write(`\r\x1b[K[${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}] ${m}`.slice(0, (process.stderr.columns || 100) + 3));
      shown = true;
    },
  };
}
