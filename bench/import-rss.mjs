// RSS of a Node process after importing each module given, in order (cumulative), with the
// daemon's young-generation flag and two full GCs before each reading. One module per run
// gives its own cost over bare Node:
//   node --expose-gc bench/import-rss.mjs @kubernetes/client-node/dist/config.js
import { readFileSync } from 'node:fs';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

setFlagsFromString('--semi-space-growth-factor=1'); // as src/daemon/run.ts sets it
const mib = (x) => (x / 1048576).toFixed(1);
const anon = () => Number(/^Anonymous:\s+(\d+)/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]) * 1024;

function report(label) {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  console.log(`${label.padEnd(44)} rss ${mib(m.rss)} anon ${mib(anon())} heapTotal ${mib(m.heapTotal)} heapUsed ${mib(getHeapStatistics().used_heap_size)} MiB`);
}

report('(bare node)');
for (const spec of process.argv.slice(2)) {
  await import(spec.startsWith('.') ? new URL(spec, `file://${process.cwd()}/`).href : spec);
  report(spec);
}
