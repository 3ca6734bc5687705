// Resolving a netns path to its cookie enters the namespace (the native helper), which
// costs milliseconds; every pass resolves every pod. Each answer is kept while the path
// still names the same namespace (dev and inode, one stat), for at most `ttlMs`, so a
// recycled inode number can mislead for that long at most.
import { statSync } from 'node:fs';
import type { NetnsResolver } from '../dataplane/index.js';

interface Entry {
  dev: number;
  ino: number;
  cookie: bigint;
  at: number;
}

export class CachedNetnsResolver implements NetnsResolver {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly inner: NetnsResolver,
    private readonly ttlMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  cookieOf(path: string): bigint {
    let st;
    try {
      st = statSync(path);
    } catch {
      this.cache.delete(path);
      return this.inner.cookieOf(path); // gone: the resolver's own error says so
    }
    const hit = this.cache.get(path);
    if (hit && hit.dev === st.dev && hit.ino === st.ino && this.now() - hit.at < this.ttlMs) return hit.cookie;
    const cookie = this.inner.cookieOf(path);
    this.cache.set(path, { dev: st.dev, ino: st.ino, cookie, at: this.now() });
    // Paths of pods that went away are dropped as the cache turns over.
    if (this.cache.size > 4096) this.cache.delete(this.cache.keys().next().value!);
    return cookie;
  }
}
