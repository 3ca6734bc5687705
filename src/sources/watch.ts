// Calls back when a file changes. Watches the directory (editors and `mv` replace the
// file, which silently ends a watch on the file itself) and polls as a fallback.
import { watch, statSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface FileWatch {
  close(): void;
}

function fingerprint(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return 'missing';
  }
}

export function watchFile(path: string, onChange: () => void, opts: { debounceMs?: number; pollMs?: number } = {}): FileWatch {
  const debounceMs = opts.debounceMs ?? 50;
  let last = fingerprint(path);
  let timer: NodeJS.Timeout | null = null;
  const check = () => {
    timer = null;
    const now = fingerprint(path);
    if (now === last) return;
    last = now;
    onChange();
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(check, debounceMs);
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dirname(path), (_event, name) => {
      if (name === null || name === basename(path)) schedule();
    });
    watcher.on('error', () => undefined); // the poll below still covers changes
  } catch {
    watcher = null;
  }
  const poll = setInterval(schedule, opts.pollMs ?? 500);
  poll.unref();
  return {
    close() {
      watcher?.close();
      clearInterval(poll);
      if (timer) clearTimeout(timer);
    },
  };
}
