// The layering of src/ (rules in .dependency-cruiser.cjs): policy <- sources <- daemon <- cli,
// src/bpf beside them behind src/dataplane, and the lab only for the demo, the CLI and tests.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('no module of src/ imports from a layer above it', async (t) => {
  const r = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(process.execPath, ['node_modules/.bin/depcruise', 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: ROOT }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    );
  });
  t.is(r.code, 0, r.out);
  // It read the tree (a wrong config or path would cruise nothing and pass).
  const m = /(\d+) modules, (\d+) dependencies cruised/.exec(r.out);
  t.truthy(m, r.out);
  t.true(Number(m![1]) > 50, r.out);
});
