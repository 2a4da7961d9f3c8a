// The dependency rules of ARCHITECTURE.md, checked over every package's
// sources: a package imports only itself, the packages its package.json
// declares as dependencies and Node's built-in modules; a relative import
// never leaves the package's folder; and the language and the compiler
// import no Node built-in at all (the compiler's file-system host,
// compiler/src/node-host.ts, is the one exception: it is not part of the
// package index). The per-package tsconfigs of language/ and compiler/ check
// the same for ambient Node names (`process`, `Buffer`) by having no Node
// types; `npm run typecheck` runs them.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Pkg {
  dir: string;
  name: string;
  deps: Set<string>;
}

/** Packages without IO: no Node built-in, except in the listed files. */
const NO_NODE: Record<string, string[]> = {
  '@mcl/language': [],
  '@mcl/compiler': ['compiler/src/node-host.ts'],
};

/** Modules a host provides by name rather than a package (the editor's API). */
const HOST_MODULES: Record<string, string[]> = { 'mcl-vscode': ['vscode'] };

/** Packages shipped as one esbuild bundle (`vsce package --no-dependencies`): their devDependencies are bundled in. */
const BUNDLED = new Set(['mcl-vscode']);

function packages(): Pkg[] {
  const root = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { workspaces: string[] };
  return root.workspaces.map((w) => {
    const pj = JSON.parse(readFileSync(join(repo, w, 'package.json'), 'utf8')) as {
      name: string;
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const declared = { ...pj.dependencies, ...pj.peerDependencies, ...(BUNDLED.has(pj.name) ? pj.devDependencies : {}) };
    return { dir: w, name: pj.name, deps: new Set(Object.keys(declared)) };
  });
}

function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(ts|mts|cts|mjs|js)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

const builtins = new Set(builtinModules);
const isBuiltin = (spec: string) => spec.startsWith('node:') || builtins.has(spec.split('/')[0]);
const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

/** Every module specifier a file imports or re-exports, statically or with `import()`/`require()`. */
function imports(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The rules broken by one package's `src/` files, as "file: reason" lines. */
function violations(pkg: Pkg, files = sources(join(repo, pkg.dir, 'src')), read = (f: string) => readFileSync(f, 'utf8')): string[] {
  const out: string[] = [];
  const pkgDir = join(repo, pkg.dir);
  const noNode = NO_NODE[pkg.name];
  for (const file of files) {
    const rel = relative(repo, file).split(sep).join('/');
    for (const spec of imports(read(file))) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec);
        if (target !== pkgDir && !target.startsWith(pkgDir + sep)) out.push(`${rel}: imports ${spec}, outside ${pkg.dir}/; import the package by its name`);
      } else if (isBuiltin(spec)) {
        if (noNode && !noNode.includes(rel)) out.push(`${rel}: imports the Node built-in ${spec}; ${pkg.name} does no IO and runs outside Node`);
      } else {
        const name = packageOf(spec);
        if (name !== pkg.name && !pkg.deps.has(name) && !(HOST_MODULES[pkg.name] ?? []).includes(name)) {
          out.push(`${rel}: imports ${name}, which ${pkg.dir}/package.json does not declare as a dependency`);
        }
      }
    }
  }
  return out;
}

describe('package layering', () => {
  const pkgs = packages();

  it('finds every package and its sources', () => {
    expect(pkgs.map((p) => p.name)).toEqual(expect.arrayContaining(['@mcl/language', '@mcl/compiler', '@mcl/plan', '@mcl/cli', '@mcl/backend-kvm']));
    for (const p of pkgs) expect(statSync(join(repo, p.dir, 'src')).isDirectory()).toBe(true);
  });

  for (const p of pkgs) {
    it(`${p.name} imports only its declared dependencies${NO_NODE[p.name] ? ' and no Node built-in' : ''}`, () => {
      expect(violations(p)).toEqual([]);
    });
  }

  it('catches an undeclared package, an import into another package and a Node built-in', () => {
    const tmp = join(repo, 'compiler', 'src', '__layers_probe.ts');
    const backend = pkgs.find((p) => p.name === '@mcl/backend-kvm')!;
    const compiler = pkgs.find((p) => p.name === '@mcl/compiler')!;
    const text = [
      "import { run } from '@mcl/cli';",
      "import type { X } from '../../../../cli/src/cli';",
      "import { readFileSync } from 'node:fs';",
      "const m = await import('fs');",
    ].join('\n');
    // The probe file is never written: its path places it in the package, its text is given.
    const probe = (pkg: Pkg, at: string) => violations(pkg, [at], () => text);
    const kvmFile = join(repo, 'backends', 'kvm', 'src', 'lifecycle', 'probe.ts');
    expect(probe(backend, kvmFile)).toEqual([
      'backends/kvm/src/lifecycle/probe.ts: imports @mcl/cli, which backends/kvm/package.json does not declare as a dependency',
      'backends/kvm/src/lifecycle/probe.ts: imports ../../../../cli/src/cli, outside backends/kvm/; import the package by its name',
    ]);
    expect(probe(compiler, tmp)).toEqual([
      'compiler/src/__layers_probe.ts: imports @mcl/cli, which compiler/package.json does not declare as a dependency',
      'compiler/src/__layers_probe.ts: imports ../../../../cli/src/cli, outside compiler/; import the package by its name',
      'compiler/src/__layers_probe.ts: imports the Node built-in node:fs; @mcl/compiler does no IO and runs outside Node',
      'compiler/src/__layers_probe.ts: imports the Node built-in fs; @mcl/compiler does no IO and runs outside Node',
    ]);
  });
});
