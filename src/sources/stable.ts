// Reads a source so that a half-written file never removes policies: a writer that
// truncates and then writes is seen empty (or cut short) within the watch debounce.
// Adding and changing pods applies at once; removing what the read does not name waits
// until the same text is read twice in a row, with every document parsed.
import { parseObjects, type SourceSnapshot } from './file.js';

/** How soon an unconfirmed read is read again. */
export const CONFIRM_MS = 250;

export interface SourceRead {
  /** null: the source could not be read at all (`unreadable` says why). */
  snapshot: SourceSnapshot | null;
  unreadable: string | null;
  /** Errors and duplicates the previous read did not report: count and log only these. */
  newErrors: string[];
  newDuplicates: string[];
  /** Safe to remove entries no pod in the snapshot claims. */
  prune: boolean;
  /** The text changed since the last read: read again after CONFIRM_MS to confirm it. */
  confirm: boolean;
}

export class StableSource {
  private lastText: string | null = null;
  private reported = new Set<string>();

  constructor(
    private readonly name: string,
    private readonly readText: () => string,
  ) {}

  read(): SourceRead {
    let text: string;
    try {
      text = this.readText();
    } catch (e) {
      this.lastText = null;
      const unreadable = (e as Error).message;
      return { snapshot: null, unreadable, newErrors: this.fresh([unreadable]), newDuplicates: [], prune: false, confirm: false };
    }
    const snapshot = parseObjects(text, this.name);
    const confirmed = text === this.lastText;
    this.lastText = text;
    const newErrors = this.fresh([...snapshot.errors, ...snapshot.duplicates]);
    const dup = new Set(snapshot.duplicates);
    return {
      snapshot,
      unreadable: null,
      newErrors: newErrors.filter((e) => !dup.has(e)),
      newDuplicates: newErrors.filter((e) => dup.has(e)),
      prune: confirmed && snapshot.errors.length === 0,
      confirm: !confirmed,
    };
  }

  /** The messages of this read not in the previous one; the previous set becomes this one. */
  private fresh(messages: string[]): string[] {
    const out = messages.filter((m) => !this.reported.has(m));
    this.reported = new Set(messages);
    return out;
  }
}
