// Builds the shipped artifacts with esbuild: the `mclc` CLI, the language
// server, the Prettier plugin and the VS Code extension. Sources stay
// TypeScript; tests run them directly through Vitest, and only programs that
// Node or VS Code load by path are bundled here. An entry whose source does
// not exist yet is skipped with a note, so a partial tree still builds.

import { build } from 'esbuild';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { esmShim, nodeBundleOptions } from './esbuild-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const entries = [
  { src: 'cli/src/main.ts', out: 'cli/dist/mclc.mjs', format: 'esm', banner: '#!/usr/bin/env node\n' + esmShim },
  { src: 'lsp/src/server.ts', out: 'lsp/dist/server.cjs', format: 'cjs' },
  // The kubevirt backend with its Kubernetes client, loaded by mclc only when a kubevirt deployment is acted on
  // (cli/src/backends.ts), so that the client's few megabytes are not parsed by every other command.
  { src: 'backends/kubevirt/src/index.ts', out: 'backends/kubevirt/dist/index.mjs', format: 'esm', banner: esmShim },
  { src: 'prettier-plugin/src/index.ts', out: 'prettier-plugin/dist/index.mjs', format: 'esm', external: ['prettier'], banner: esmShim },
  { src: 'vscode-extension/src/extension.ts', out: 'vscode-extension/dist/extension.cjs', format: 'cjs', external: ['vscode'] },
  // The extension ships its own copy of the server so the .vsix is self-contained.
  { src: 'lsp/src/server.ts', out: 'vscode-extension/dist/server.cjs', format: 'cjs' },
];

const started = Date.now();
for (const e of entries) {
  if (!existsSync(join(root, e.src))) {
    console.log(`build: skipping ${e.out} (${e.src} does not exist yet)`);
    continue;
  }
  mkdirSync(dirname(join(root, e.out)), { recursive: true });
  await build({
    ...nodeBundleOptions,
    entryPoints: [join(root, e.src)],
    outfile: join(root, e.out),
    format: e.format,
    external: e.external ?? [],
    banner: e.banner ? { js: e.banner } : undefined,
  });
  console.log(`build: ${e.out}`);
}
writeFileSync(join(root, 'node_modules', '.mcl-build-stamp'), String(Date.now()));
console.log(`build: done in ${Date.now() - started} ms`);
