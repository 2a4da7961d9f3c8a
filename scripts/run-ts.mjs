// Runs a TypeScript entry point (benchmarks, fuzz scripts) as the shipped code
// runs: bundled by esbuild with the options of the shipped bundles, then run in
// one Node.js process with --expose-gc, forwarding arguments and the exit code.
//
// Not through tsx: its loader keeps function names, which wraps every closure
// the code creates in a call that defines a property, and that made the parser
// three times slower than in the shipped CLI. The bundle is written beside the
// entry point (`.NAME.run.mjs`, ignored by git), so paths the code finds from
// its own location resolve as from the source.
import { spawnSync } from 'node:child_process';
import { basename, dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { esmShim, nodeBundleOptions } from './esbuild-options.mjs';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  process.stderr.write('usage: node scripts/run-ts.mjs ENTRY.ts [ARG...]\n');
  process.exit(2);
}
const src = resolve(entry);
const out = join(dirname(src), `.${basename(src).replace(/\.[cm]?tsx?$/, '')}.run.mjs`);
await build({ ...nodeBundleOptions, entryPoints: [src], outfile: out, format: 'esm', banner: { js: esmShim } });
const r = spawnSync(process.execPath, ['--expose-gc', out, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
