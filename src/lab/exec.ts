// Runs a command and collects its output; the error names the command and its stderr.
import { SluiceError } from '../errors.js';
import { spawn } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export class ExecError extends SluiceError {
  constructor(
    readonly command: string,
    /** The exit status; null when the command did not run (or was killed). */
    readonly status: number | null,
    readonly stderr: string,
    readonly stdout = '',
  ) {
    super('EXEC_FAILED', `\`${command}\` failed (exit ${status}): ${stderr.trim() || '(no stderr)'}`);
  }
}

/** Runs `cmd args...` (no shell), writing `input` to its stdin. Rejects on a non-zero exit. */
export function exec(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  const command = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new ExecError(command, null, err.message)));
    child.on('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new ExecError(command, code, stderr, stdout))));
    child.stdin.on('error', () => {}); // the child may exit before reading; its exit code tells
    child.stdin.end(opts.input ?? '');
  });
}

/** Like exec, but never rejects: for cleanup, where every step must be tried. */
export async function tryExec(cmd: string, args: string[], opts: { input?: string } = {}): Promise<ExecResult | ExecError> {
  try {
    return await exec(cmd, args, opts);
  } catch (err) {
    return err instanceof ExecError ? err : new ExecError([cmd, ...args].join(' '), null, String(err));
  }
}
