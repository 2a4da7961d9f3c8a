// The esbuild options every Node.js bundle of mcl is built with: the shipped
// programs (scripts/build.mjs) and the benchmarks and scripts that
// scripts/run-ts.mjs runs, so that a benchmark measures code built as it ships.

// ESM bundles that pull in CommonJS dependencies need `require`, `__filename`
// and `__dirname`, which ESM does not define.
export const esmShim = [
  "import { createRequire as __mclCreateRequire } from 'node:module';",
  "import { fileURLToPath as __mclFileURLToPath } from 'node:url';",
  "import { dirname as __mclDirname } from 'node:path';",
  'const require = __mclCreateRequire(import.meta.url);',
  'const __filename = __mclFileURLToPath(import.meta.url);',
  'const __dirname = __mclDirname(__filename);',
].join('\n');

/** Options shared by every Node.js bundle; callers add entry, output, format and banner. */
export const nodeBundleOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
};
