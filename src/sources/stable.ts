// A half-written file must never remove policies: a writer that truncates and then
// writes is seen empty (or cut short) within the watch debounce. A read that changed is
// applied at once (adds and changes) but removes nothing until the same text is read
// again, CONFIRM_MS later. And a source that stays broken is reported once, not on every
// resync.

/** How soon an unconfirmed read is read again. */
export const CONFIRM_MS = 250;

/** Whether each text is the same as the one read before it. */
export class StableText {
  private last: string | null = null;

  /** True when `text` equals the previous read; null (unreadable) forgets it. */
  same(text: string | null): boolean {
    const same = text !== null && text === this.last;
    this.last = text;
    return same;
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
