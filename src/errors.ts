// One base for every error sluice raises on purpose (pnpm's PnpmError, Node's `code`):
// a stable code, a message that names the bad input, and a hint that names the fix.
// The CLI prints any of them as message plus hint, never as a stack trace.

export interface SluiceErrorOptions {
  /** What to do about it, printed after the message. */
  hint?: string;
  /** The CLI's exit code: 2 for bad input (usage, a bad file or flag), 1 otherwise. */
  exitCode?: 1 | 2;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: 1 | 2;
  constructor(
    readonly code: string,
    message: string,
    opts: SluiceErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** Message and hint on one line, for logs and a pod's status. */
  summary(): string {
    return this.hint ? `${this.message}; ${this.hint}` : this.message;
  }

  /** Message and hint, as the CLI prints them. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** What to show of any thrown value on one line: a SluiceError with its hint. */
export function errorText(e: unknown): string {
  return e instanceof SluiceError ? e.summary() : e instanceof Error ? e.message : String(e);
}
