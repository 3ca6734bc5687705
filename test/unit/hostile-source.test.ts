// Hostile source files (issue 9, items 2 and 7): YAML bombs are bounded per document,
// a half-written file never prunes by itself, duplicates keep the first, and a source
// error is reported once per distinct error.
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseObjects } from '../../src/sources/file.js';
import { StableSource } from '../../src/sources/stable.js';
import { parseDocuments, YAML_LIMITS } from '../../src/sources/yaml.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const podDoc = (name: string, extra: Record<string, string> = {}) =>
  stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, annotations: { 'sidecar.istio.io/status': '{}', ...extra } } });
/** 10^levels alias expansions in a few hundred bytes. */
function aliasBomb(levels: number): string {
  let y = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
  for (let i = 1; i <= levels; i++) y += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
  return y;
}
const names = (text: string) => parseObjects(text, 'f').pods.map((p) => p.metadata.name);

test('a 5,000-deep document is refused by the depth limit, alone; the documents around it apply', (t) => {
  const snap = parseObjects(`${podDoc('a')}---\n${'['.repeat(5000)}\n---\n${podDoc('b')}`, 'f');
  t.deepEqual(snap.pods.map((p) => p.metadata.name), ['a', 'b']);
  t.deepEqual(snap.errors, [`f document 2: YAML nested more than ${YAML_LIMITS.depth} levels deep; flatten it`]);
  t.is(names(`${'{a: '.repeat(65)}1${'}'.repeat(65)}\n---\n${podDoc('c')}`)[0], 'c', 'flow maps count too');
  t.true('value' in parseDocuments(`${'- '.repeat(64)}x\n`)[0]!, '64 levels are allowed');
  t.true('error' in parseDocuments(`${'- '.repeat(65)}x\n`)[0]!, '65 are not');
});

test('reading a 5,000-deep document twice in one process ends normally (it aborted V8 the second time)', async (t) => {
  const script = `import { parseObjects } from './src/sources/file.ts';
    const text = '['.repeat(5000) + '\\n---\\nkind: Pod\\nmetadata: {name: ok}\\n';
    for (let i = 0; i < 3; i++) console.log(parseObjects(text, 'f').pods.length);`;
  const r = await new Promise<{ code: number | null; out: string }>((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT }, (err, stdout) => resolve({ code: err ? (err.code as number) : 0, out: stdout })),
  );
  t.is(r.code, 0);
  t.is(r.out, '1\n1\n1\n');
});

test('an alias bomb skips its own document, not the file', (t) => {
  const snap = parseObjects(`${podDoc('a')}---\n${aliasBomb(8)}---\n${podDoc('b')}`, 'f');
  t.deepEqual(snap.pods.map((p) => p.metadata.name), ['a', 'b']);
  t.is(snap.errors.length, 1);
  t.regex(snap.errors[0]!, /^f document 2: YAML aliases expand too far .* at most 100 alias uses/);
});

test('a document over the size limit is skipped alone; a few aliases still work', (t) => {
  const big = `kind: Pod\nmetadata: {name: big}\nx: "${'y'.repeat(YAML_LIMITS.documentBytes)}"\n`;
  const snap = parseObjects(`${big}---\n${podDoc('a')}`, 'f');
  t.deepEqual(snap.pods.map((p) => p.metadata.name), ['a']);
  t.regex(snap.errors[0]!, /^f document 1: document is \d+ bytes, over the limit of 2097152/);
  t.deepEqual(names('base: &b {kind: Pod}\n---\nkind: Pod\nmetadata: &m {name: x}\n'), ['x']);
  t.deepEqual(parseDocuments(''), []);
  t.deepEqual(parseDocuments('# only a comment\n'), []);
});

test('duplicate namespace/name: the first is kept, each duplicate reported', (t) => {
  const snap = parseObjects(`${podDoc('a', { n: '1' })}---\n${podDoc('a', { n: '2' })}---\n${podDoc('b')}`, 'f');
  t.deepEqual(
    snap.pods.map((p) => [p.metadata.name, p.metadata.annotations?.n]),
    [
      ['a', '1'],
      ['b', undefined],
    ],
  );
  t.deepEqual(snap.duplicates, ['Pod default/a appears more than once; the first one is used, remove the others']);
  t.deepEqual(snap.errors, [], 'a duplicate is not a broken document: it does not block pruning');
});

test('an empty or cut read never prunes by itself; the same text twice does', (t) => {
  let text = `${podDoc('a')}---\n${podDoc('b')}`;
  const src = new StableSource('f', () => text);
  t.like(src.read(), { prune: false, confirm: true }, 'the first read is not confirmed yet');
  t.like(src.read(), { prune: true, confirm: false });
  text = '';
  t.like(src.read(), { prune: false, confirm: true }, 'an empty read (truncate, then write)');
  text = podDoc('a');
  t.like(src.read(), { prune: false, confirm: true }, 'a cut read');
  t.like(src.read(), { prune: true, confirm: false }, 'the same text again: a real removal');
  text = '';
  src.read();
  t.like(src.read(), { prune: true }, 'an empty file read twice is empty for real');
});

test('a source error is reported once per distinct error, not on every resync', (t) => {
  let text = `${podDoc('a')}---\nkind: Pod\nmetadata: {name: [unclosed\n`;
  let fail = false;
  const src = new StableSource('f', () => {
    if (fail) throw new Error('cannot read f: ENOENT');
    return text;
  });
  t.is(src.read().newErrors.length, 1);
  t.deepEqual(src.read().newErrors, [], 'unchanged: not again');
  t.like(src.read(), { prune: false }, 'a broken document never prunes');
  text = `${podDoc('a')}---\n${podDoc('a')}`;
  t.deepEqual(src.read().newDuplicates, ['Pod default/a appears more than once; the first one is used, remove the others']);
  t.deepEqual(src.read().newDuplicates, []);
  fail = true;
  t.like(src.read(), { snapshot: null, unreadable: 'cannot read f: ENOENT', newErrors: ['cannot read f: ENOENT'] });
  t.deepEqual(src.read().newErrors, []);
  fail = false;
  text = `${podDoc('a')}---\nkind: Pod\nmetadata: {name: [unclosed\n`;
  t.is(src.read().newErrors.length, 1, 'it came back after being fixed: counted again');
});
