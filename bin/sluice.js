#!/usr/bin/env node
// Runs the compiled CLI; `npm run build` produces dist/.
import { existsSync } from 'node:fs';
// client-node 2.x crashes at import on older Node; say so instead of a stack trace.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(`sluice: Node ${process.versions.node} is too old; sluice needs Node 24 or newer. ./scripts/setup installs it under node_modules/.bin (npx and npm scripts use it).`);
  process.exit(2);
}
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('sluice: dist/ is missing; run `npm run build` first (or ./scripts/setup).');
  process.exit(2);
}
await import(entry.href);
