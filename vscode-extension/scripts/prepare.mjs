// Prepares the extension folder for `vsce package`: makes sure the bundles
// exist (building them with the repository's build script if not) and copies
// the standard library next to them, so the .vsix works on its own.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ext = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(ext, '..');

const bundles = ['dist/extension.cjs', 'dist/server.cjs'];
if (bundles.some((b) => !existsSync(join(ext, b)))) {
  const r = spawnSync(process.execPath, [join(repo, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
for (const b of bundles) {
  if (!existsSync(join(ext, b))) {
    console.error(`prepare: ${b} is missing after the build`);
    process.exit(1);
  }
}

// The source maps stay out of the package (.vscodeignore: they would double
// its size and ship the sources), so the bundles must not point at them.
for (const b of bundles) {
  const path = join(ext, b);
  const text = readFileSync(path, 'utf8');
  const stripped = text.replace(/\n\/\/# sourceMappingURL=[^\n]*\s*$/, '\n');
  if (stripped !== text) writeFileSync(path, stripped);
}

rmSync(join(ext, 'stdlib'), { recursive: true, force: true });
mkdirSync(join(ext, 'stdlib'));
for (const f of readdirSync(join(repo, 'stdlib'))) {
  if (f.endsWith('.mcl')) cpSync(join(repo, 'stdlib', f), join(ext, 'stdlib', f));
}
console.log('prepare: bundles present, stdlib copied');
