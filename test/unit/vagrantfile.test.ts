// The top-level Vagrantfile parses and validates with Debian's vagrant (`vagrant validate`,
// provider options ignored: no box or provider can be had here), for the default kernel
// and for SLUICE_KERNEL=6.12; a broken copy is refused, so the check can fail.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function validate(dir: string, env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const state = mkdtempSync(join(tmpdir(), 'sluice-test-vagrant-'));
  try {
    const { stdout } = await promisify(execFile)('vagrant', ['validate', '--ignore-provider'], {
      cwd: dir,
      env: { ...process.env, VAGRANT_DOTFILE_PATH: join(state, 'dot'), VAGRANT_HOME: join(state, 'home'), VAGRANT_CHECKPOINT_DISABLE: '1', ...env },
      timeout: 120_000,
    });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') return { code: -1, out: 'vagrant is not installed: apt-get install vagrant (scripts/setup does)' };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

test('the Vagrantfile validates, with the default kernel and with SLUICE_KERNEL=6.12', async (t) => {
  for (const env of [{}, { SLUICE_KERNEL: '6.12' }] as Record<string, string>[]) {
    const r = await validate(ROOT, env);
    t.is(r.code, 0, r.out);
    t.regex(r.out, /Vagrantfile validated successfully/);
  }
  t.regex(readFileSync(join(ROOT, 'Vagrantfile'), 'utf8'), /config\.vm\.box = "debian\/bookworm64"[\s\S]*scripts\/setup[\s\S]*npm test/);
});

test('a broken Vagrantfile is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-vagrant-'));
  try {
    copyFileSync(join(ROOT, 'Vagrantfile'), join(dir, 'Vagrantfile'));
    writeFileSync(join(dir, 'Vagrantfile'), readFileSync(join(dir, 'Vagrantfile'), 'utf8').replace('config.vm.hostname', 'config.vm.hostnam'));
    const r = await validate(dir);
    t.not(r.code, 0);
    t.regex(r.out, /hostnam/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
