// `--source` values: `file:PATH` now; `kubernetes` comes with the daemon.
import { InputError } from '../policy/errors.js';
import { parseObjects, readSourceText, type SourceSnapshot } from './file.js';

export type SourceSpec = { kind: 'file'; path: string };

export function parseSourceSpec(spec: string): SourceSpec {
  if (spec.startsWith('file:') && spec.length > 'file:'.length) return { kind: 'file', path: spec.slice('file:'.length) };
  throw new InputError('BAD_SOURCE', `--source ${JSON.stringify(spec)} is not supported; use file:PATH (a YAML file of Pods and Sidecars)`);
}

/** The source's text; an InputError that names the path when it cannot be read. */
export function readSourceTextOf(spec: SourceSpec): string {
  try {
    return readSourceText(spec.path);
  } catch (e) {
    throw new InputError('SOURCE_UNREADABLE', `cannot read ${spec.path}: ${(e as Error).message}; check the --source path`);
  }
}

export function readSnapshot(spec: SourceSpec): SourceSnapshot {
  return parseObjects(readSourceTextOf(spec), spec.path);
}
