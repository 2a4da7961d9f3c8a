// Runs a TypeScript entry point (benchmarks, fuzz scripts) as the shipped code
// runs: bundled by esbuild with the options of the shipped bundles, then run in
// one Node.js process with --expose-gc, forwarding arguments and the exit code.
//
// Not through tsx: its loader keeps function names, which wraps every closure
// the code creates in a call that defines a property, and that made the parser
// three times slower than in the shipped CLI. The bundle is written to a fresh
// temporary directory, removed afterwards, never into the source tree; the
// bundle's `import.meta.url` (and the `require`, `__filename` and `__dirname`
// of the CommonJS shim) still name a file beside the entry point, so paths the
// code finds from its own location resolve as from the source.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { esmShim, nodeBundleOptions } from './esbuild-options.mjs';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  process.stderr.write('usage: node scripts/run-ts.mjs ENTRY.ts [ARG...]\n');
  process.exit(2);
}
const src = resolve(entry);
const name = `.${basename(src).replace(/\.[cm]?tsx?$/, '')}.run.mjs`;
const url = JSON.stringify(pathToFileURL(join(dirname(src), name)).href);
const dir = mkdtempSync(join(tmpdir(), 'mcl-run-'));
let status = 1;
try {
  const out = join(dir, name);
  await build({
    ...nodeBundleOptions,
    entryPoints: [src],
    outfile: out,
    format: 'esm',
    define: { 'import.meta.url': url },
    banner: { js: esmShim.replaceAll('import.meta.url', url) },
  });
  const r = spawnSync(process.execPath, ['--expose-gc', out, ...args], { stdio: 'inherit' });
  status = r.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
