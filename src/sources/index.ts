// `--source` values: `file:PATH` (labs and tests) and `kubernetes` (a cluster).
import { InputError } from '../policy/errors.js';
import { readSourceFile, type SourceSnapshot } from './file.js';

export type SourceSpec = { kind: 'file'; path: string } | { kind: 'kubernetes' };

export function parseSourceSpec(spec: string): SourceSpec {
  if (spec === 'kubernetes') return { kind: 'kubernetes' };
  if (spec.startsWith('file:') && spec.length > 'file:'.length) return { kind: 'file', path: spec.slice('file:'.length) };
  throw new InputError('BAD_SOURCE', `--source ${JSON.stringify(spec)} is not supported; use file:PATH (a YAML file of Pods and Sidecars) or kubernetes (the API server)`);
}

export function readSnapshot(spec: Extract<SourceSpec, { kind: 'file' }>): SourceSnapshot {
  try {
    return readSourceFile(spec.path);
  } catch (e) {
    throw new InputError('SOURCE_UNREADABLE', `cannot read ${spec.path}: ${(e as Error).message}; check the --source path`);
  }
}
