// `--source` values: `file:PATH` (labs and tests) and `kubernetes` (a cluster).
import { InputError } from '../policy/errors.js';
import { parseObjects, readSourceText, type SourceSnapshot } from './file.js';

export type SourceSpec = { kind: 'file'; path: string } | { kind: 'kubernetes' };
type FileSpec = Extract<SourceSpec, { kind: 'file' }>;

export function parseSourceSpec(spec: string): SourceSpec {
  if (spec === 'kubernetes') return { kind: 'kubernetes' };
  if (spec.startsWith('file:') && spec.length > 'file:'.length) return { kind: 'file', path: spec.slice('file:'.length) };
  throw new InputError('BAD_SOURCE', `--source ${JSON.stringify(spec)} is not supported; use file:PATH (a YAML file of Pods and Sidecars) or kubernetes (the API server)`);
}

/** The source file's text; an InputError that names the path when it cannot be read. */
export function readSourceTextOf(spec: FileSpec): string {
  try {
    return readSourceText(spec.path);
  } catch (e) {
    throw new InputError('SOURCE_UNREADABLE', `cannot read ${spec.path}: ${(e as Error).message}; check the --source path`);
  }
}

export function readSnapshot(spec: FileSpec): SourceSnapshot {
  return parseObjects(readSourceTextOf(spec), spec.path);
}
