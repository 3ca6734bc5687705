// glibc keeps memory that libbpf and koffi freed (object loads, BTF) in its arenas instead
// of returning it: after a 512-pod cold start 13 of 20 MiB of malloc's heap were free
// (mallinfo2), and malloc_trim(0) gave 9 MiB of RSS back. Trimmed after work that loaded
// objects, at most every TRIM_EVERY_MS (a trim walks every arena).
//
// V8 likewise keeps the old-generation pages a burst of work filled: after a 512-pod cold
// start (file source) 39 MiB of heap held 18 MiB of live objects. Once no write has come
// for IDLE_MS, one full GC and a trim give that back (RSS 115 -> 106 MiB). Only when idle:
// a full GC of the daemon's heap takes 30-70 ms, which a policy change must not wait for.
import koffi from 'koffi';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const TRIM_EVERY_MS = 5000;
const IDLE_MS = 5000;

type Trim = (pad: number) => number;

function load(): Trim | null {
  try {
    return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as Trim;
  } catch {
    return null; // not glibc (musl has no malloc_trim): nothing to do
  }
}

/** V8's full, compacting GC, without starting node with --expose-gc. */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export class MallocTrimmer {
  private trim: Trim | null | undefined;
  private last = -Infinity;
  private idle: NodeJS.Timeout | null = null;
  private gc: (() => void) | undefined;

  constructor(private readonly now: () => number = Date.now, private readonly idleMs = IDLE_MS) {}

  /** Returns freed heap memory to the kernel, unless that was done in the last few seconds; a full GC follows once idle. */
  maybeTrim(): boolean {
    this.armIdle();
    const now = this.now();
    if (now - this.last < TRIM_EVERY_MS) return false;
    if (!this.loaded()) return false;
    this.last = now;
    this.trim!(0);
    return true;
  }

  /** Drops the pending idle collection (the daemon is stopping). */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
  }

  private loaded(): boolean {
    if (this.trim === undefined) this.trim = load();
    return this.trim !== null;
  }

  private armIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.idle = null;
      this.gc ??= fullGc();
      this.gc();
      if (this.loaded()) this.trim!(0);
    }, this.idleMs);
    this.idle.unref();
  }
}
