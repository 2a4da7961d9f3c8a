// Builds the shipped artifacts with esbuild: the `mclc` CLI, the language
// server, the Prettier plugin and the VS Code extension. Sources stay
// TypeScript; tests run them directly through Vitest, and only programs that
// Node or VS Code load by path are bundled here. An entry whose source does
// not exist yet is skipped with a note, so a partial tree still builds.

import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { esmShim, nodeBundleOptions } from './esbuild-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const entries = [
  // Split: what only some commands need (the graph renderer, the backends, remote hosts) goes into chunks
  // beside mclc.mjs that its dynamic imports load, so that `plan` and `validate` do not parse them.
  { src: 'cli/src/main.ts', out: 'cli/dist/mclc.mjs', format: 'esm', banner: '#!/usr/bin/env node\n' + esmShim, split: true },
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
  const out = e.split
    ? {
        // The entry keeps its name; chunks get content-hashed names, so a rebuild leaves stale ones, removed below.
        outdir: dirname(join(root, e.out)),
        entryNames: basename(e.out).replace(/\.mjs$/, ''),
        chunkNames: 'chunk-[hash]',
        outExtension: { '.js': '.mjs' },
        splitting: true,
      }
    : { outfile: join(root, e.out) };
  const result = await build({
    ...nodeBundleOptions,
    entryPoints: [join(root, e.src)],
    ...out,
    format: e.format,
    external: e.external ?? [],
    banner: e.banner ? { js: e.banner } : undefined,
    metafile: !!e.split,
  });
  if (e.split) {
    // Only after the build, so that an mclc running meanwhile finds the chunks it loads.
    const dir = dirname(join(root, e.out));
    const written = new Set(Object.keys(result.metafile.outputs).map((o) => basename(o)));
    for (const f of readdirSync(dir)) if (/^chunk-[A-Z0-9]+\.mjs(\.map)?$/.test(f) && !written.has(f)) rmSync(join(dir, f));
  }
  console.log(`build: ${e.out}`);
}
writeFileSync(join(root, 'node_modules', '.mcl-build-stamp'), String(Date.now()));
console.log(`build: done in ${Date.now() - started} ms`);
