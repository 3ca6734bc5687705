// glibc keeps memory that libbpf and koffi freed (object loads, BTF) in its arenas instead
// of returning it: after a 512-pod cold start 13 of 20 MiB of malloc's heap were free
// (mallinfo2), and malloc_trim(0) gave 9 MiB of RSS back. Trimmed after work that loaded
// objects, at most every TRIM_EVERY_MS (a trim walks every arena).
import koffi from 'koffi';

const TRIM_EVERY_MS = 5000;

type Trim = (pad: number) => number;

function load(): Trim | null {
  try {
    return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as Trim;
  } catch {
    return null; // not glibc (musl has no malloc_trim): nothing to do
  }
}

export class MallocTrimmer {
  private trim: Trim | null | undefined;
  private last = -Infinity;

  constructor(private readonly now: () => number = Date.now) {}

  /** Returns freed heap memory to the kernel, unless that was done in the last few seconds. */
  maybeTrim(): boolean {
    const now = this.now();
    if (now - this.last < TRIM_EVERY_MS) return false;
    if (this.trim === undefined) this.trim = load();
    if (!this.trim) return false;
    this.last = now;
    this.trim(0);
    return true;
  }
}
