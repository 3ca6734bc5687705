// A half-written file must never remove policies: a writer that truncates and then
// writes is seen empty (or cut short) within the watch debounce. A read that changed is
// applied at once (adds and changes) but removes nothing until the same text has been
// read unchanged for CONFIRM_MS. And a source that stays broken is reported once, not on every
// resync.

/** How soon an unconfirmed read is read again. */
export const CONFIRM_MS = 250;

/**
 * Whether a text is settled: read unchanged for CONFIRM_MS or more. Time, not a count of
 * reads: a writer that truncates and then writes leaves the file empty twice (its own
 * truncate, then the next writer's), and two quick reads may both see it empty.
 */
export class StableText {
  private last: string | null = null;
  private since = 0;

  /** True when `text` has not changed for CONFIRM_MS; null (unreadable) forgets it. */
  settled(text: string | null, now = Date.now()): boolean {
    if (text === null || text !== this.last) {
      this.last = text;
      this.since = now;
      return false;
    }
    return now - this.since >= CONFIRM_MS;
  }
}

/** Messages not in the previous call's set: what to count and log this time. */
export class DistinctErrors {
  private previous = new Set<string>();

  fresh(messages: string[]): string[] {
    const out = messages.filter((m) => !this.previous.has(m));
    this.previous = new Set(messages);
    return out;
  }
}
