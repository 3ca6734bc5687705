// How the CLI ends on an error: any SluiceError as message plus hint (its message says
// what went wrong, its hint what to do; a stack would only bury them), anything else
// with its stack, since that is a bug.
import { CommanderError } from 'commander';
import { SluiceError } from '../errors.js';

/** Prints `e` and returns the exit code. */
export function reportError(e: unknown, print: (line: string) => void = console.error): number {
  // Commander has printed help, version or the usage error itself; usage errors exit 2.
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
  if (e instanceof SluiceError) {
    print(`sluice: ${e.describe()}`);
    return e.exitCode;
  }
  print(`sluice: ${(e as Error).stack ?? e}`);
  return 1;
}
