// Hostile source files (issue 9, items 2 and 7): YAML bombs are bounded per document,
// a half-written file never prunes by itself, duplicates keep the first, and a source
// error is reported once per distinct error.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseObjects } from '../../src/sources/file.js';
import { fileFeed } from '../../src/sources/file-feed.js';
import { CONFIRM_MS, DistinctErrors, StableText } from '../../src/sources/stable.js';
import { DEFAULT_CONFIG } from '../../src/policy/index.js';
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

test('block nesting and a flow bomb running into the next documents never reach the recursive parser (found by the fuzz suite)', (t) => {
  const bombs = {
    dashes: '- '.repeat(20_000) + 'x\n',
    indent: Array.from({ length: 1500 }, (_, i) => `${' '.repeat(i)}k:`).join('\n') + ' 1\n',
    // No newline before ---: the pods after it are inside the unclosed flow sequence.
    runOn: `${'['.repeat(5048)}---\n${podDoc('x', { 'd7{ko|r': 'v' })}`,
  };
  for (const [name, bomb] of Object.entries(bombs)) {
    const snap = parseObjects(`${podDoc('a')}---\n${bomb}---\n${podDoc('b')}`, 'f');
    t.deepEqual(snap.pods.map((p) => p.metadata.name), ['a', 'b'], name);
    t.deepEqual(snap.errors, [`f document 2: YAML nested more than ${YAML_LIMITS.depth} levels deep; flatten it`], name);
  }
  const text = `# c\n%YAML 1.2\n---\n${podDoc('a')}...\n---\nk: |\n  ---x\n  [[[\n---\n"q": [1, {b: '['}]\n`;
  t.deepEqual(parseDocuments(text).map((d) => ('value' in d ? d.value : d.error)), [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', annotations: { 'sidecar.istio.io/status': '{}' } } }, { k: '---x\n[[[\n' }, { q: [1, { b: '[' }] }], 'directives, doc ends, block scalars and quoted brackets');
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

/** A file feed over a scratch file; `write` replaces its text. */
function feedOver(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unit-feed-'));
  const path = join(dir, 'pods.yaml');
  writeFileSync(path, text);
  const feed = fileFeed({ kind: 'file', path }, DEFAULT_CONFIG);
  return { feed, path, write: (t: string) => writeFileSync(path, t), done: async () => (await feed.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('an empty or cut read never prunes by itself; a text unchanged for CONFIRM_MS does', async (t) => {
  const full = `${podDoc('a')}---\n${podDoc('b')}`;
  const f = feedOver(full);
  const settle = () => new Promise((r) => setTimeout(r, CONFIRM_MS + 20));
  try {
    const prune = () => f.feed.read()!.prune;
    t.false(prune(), 'the first read is not settled yet');
    t.false(prune(), 'nor a second one at once');
    await settle();
    t.true(prune());
    f.write('');
    t.false(prune(), 'an empty read (truncate, then write)');
    t.false(prune(), 'read empty twice within the window: still not');
    f.write(podDoc('a'));
    t.false(prune(), 'a cut read');
    await settle();
    t.true(prune(), 'unchanged for CONFIRM_MS: a real removal');
    f.write('');
    prune();
    await settle();
    t.true(prune(), 'an empty file that stays empty is empty for real');
    f.write(`${podDoc('a')}---\nkind: Pod\nmetadata: {name: [unclosed\n`);
    prune();
    await settle();
    t.false(prune(), 'a broken document never prunes');
    f.write(`${podDoc('a')}---\n${podDoc('a')}`);
    prune();
    await settle();
    t.like(f.feed.read(), { prune: true, duplicates: ['Pod default/a appears more than once; the first one is used, remove the others'] }, 'duplicates do not block pruning');
  } finally {
    await f.done();
  }
});

test('StableText: settled only after CONFIRM_MS unchanged; any other text starts over', (t) => {
  const s = new StableText();
  t.false(s.settled('', 0));
  t.false(s.settled('', CONFIRM_MS - 1), 'two empty reads close together (truncate, write, truncate)');
  t.true(s.settled('', CONFIRM_MS));
  t.false(s.settled('x', CONFIRM_MS + 1));
  t.false(s.settled(null, CONFIRM_MS * 3), 'unreadable');
  t.false(s.settled('x', CONFIRM_MS * 3));
  t.true(s.settled('x', CONFIRM_MS * 4));
});

test('an unconfirmed read asks for another one CONFIRM_MS later', async (t) => {
  const f = feedOver(podDoc('a'));
  try {
    let calls = 0;
    f.feed.read(); // before start(), as the daemon's first sync
    await f.feed.start(() => calls++);
    await new Promise((r) => setTimeout(r, CONFIRM_MS + 100));
    t.is(calls, 1, 'the confirming read was asked for');
    t.true(f.feed.read()!.prune, 'and it settles the text');
    await new Promise((r) => setTimeout(r, CONFIRM_MS + 100));
    t.is(calls, 1, 'a confirmed read asks for nothing');
  } finally {
    await f.done();
  }
});

test('a source error is reported once per distinct error, not on every resync', (t) => {
  const seen = new DistinctErrors();
  t.deepEqual(seen.fresh(['a', 'b']), ['a', 'b']);
  t.deepEqual(seen.fresh(['a', 'b']), [], 'unchanged: not again');
  t.deepEqual(seen.fresh(['b', 'c']), ['c']);
  t.deepEqual(seen.fresh([]), []);
  t.deepEqual(seen.fresh(['a']), ['a'], 'it came back after being fixed: counted again');
});
