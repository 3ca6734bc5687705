#!/usr/bin/env node
// Runs the compiled CLI; `npm run build` produces dist/.
import { existsSync } from 'node:fs';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('sluice: dist/ is missing; run `npm run build` first (or ./scripts/setup).');
  process.exit(2);
}
await import(entry.href);
