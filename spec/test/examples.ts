// Compiles the examples of spec/diagnostics.md with the real compiler, through
// an in-memory workspace (the example is `main.mcl`, the section's `file="..."`
// blocks are the other files) and the real standard library from stdlib/.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type CompileResult, type CompilerHost } from '@mcl/compiler';
import { REPO, type Example, type Section } from './doc';

let stdlibCache: Map<string, string> | undefined;
function stdlib(): Map<string, string> {
  if (!stdlibCache) {
    stdlibCache = new Map();
    const dir = join(REPO, 'stdlib');
    for (const f of readdirSync(dir)) if (f.endsWith('.mcl')) stdlibCache.set(f.slice(0, -4), readFileSync(join(dir, f), 'utf8'));
  }
  return stdlibCache;
}

export class MemoryHost implements CompilerHost {
  constructor(readonly files: Record<string, string>) {}
  readFile(path: string): string | undefined {
    return Object.prototype.hasOwnProperty.call(this.files, path) ? this.files[path] : undefined;
  }
  readStdlib(modulePath: string): string | undefined {
    return stdlib().get(modulePath.split('.').join('/'));
  }
}

export function compileExample(section: Section, example: Example): CompileResult {
  const host = new MemoryHost({ ...section.files, 'main.mcl': example.source });
  return compile(host, {
    entries: ['main.mcl'],
    mclcVersion: 'spec',
    ...(example.exclude ? { exclude: example.exclude } : {}),
    ...(example.target ? { target: example.target } : {}),
    ...(example.system ? { system: example.system } : {}),
  });
}
