#!/usr/bin/env node
// Launcher for the bundled CLI; `npm run build` produces ../dist/mclc.mjs.
import { existsSync } from 'node:fs';
const bundle = new URL('../dist/mclc.mjs', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('mclc: the CLI is not built yet; run `npm run build` in the repository root.\n');
  process.exit(1);
}
await import(bundle.href);
