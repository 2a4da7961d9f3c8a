// Test helpers: an in-memory CompilerHost over a workspace of texts, the real
// standard library read once from stdlib/, and a compact rendering of
// diagnostics for assertions and golden files.

import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatDiagnostic, LineIndex } from '@mcl/language';
import { canonicalJson, compile, type CompileOptions, type CompileResult, type CompilerHost } from '../src/index';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let stdlibCache: Map<string, string> | undefined;
export function stdlib(): Map<string, string> {
  if (!stdlibCache) {
    stdlibCache = new Map();
    const dir = join(REPO, 'stdlib');
    for (const f of readdirSync(dir)) if (f.endsWith('.mcl')) stdlibCache.set(f.slice(0, -4), readFileSync(join(dir, f), 'utf8'));
  }
  return stdlibCache;
}

export class MemoryHost implements CompilerHost {
  readonly reads: string[] = [];
  constructor(
    readonly files: Record<string, string>,
    readonly std: Map<string, string> = stdlib(),
  ) {}
  readFile(path: string): string | undefined {
    this.reads.push(path);
    return Object.prototype.hasOwnProperty.call(this.files, path) ? this.files[path] : undefined;
  }
  readStdlib(modulePath: string): string | undefined {
    return this.std.get(modulePath.split('.').join('/'));
  }
}

/** Compiles `main.mcl` (plus any other files) with default options. */
export function compileText(main: string, others: Record<string, string> = {}, opts: Partial<CompileOptions> = {}): CompileResult {
  return compile(new MemoryHost({ 'main.mcl': main, ...others }), { entries: ['main.mcl'], mclcVersion: 'test', ...opts });
}

export function codes(r: CompileResult): string[] {
  return r.diagnostics.map((d) => d.code);
}

/** The diagnostics in the one plain-text form of golden files (`formatDiagnostic`), a line each plus hints and fixes. */
export function renderDiagnostics(r: CompileResult): string {
  const lines: string[] = [];
  for (const d of r.diagnostics) lines.push(formatDiagnostic(d, new LineIndex(r.program.texts.get(d.file) ?? '')));
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** All files under a directory as workspace-relative paths -> text. */
export function readTree(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) {
    const abs = join(dir, f);
    const rel = prefix ? `${prefix}/${f}` : f;
    if (statSync(abs).isDirectory()) Object.assign(out, readTree(abs, rel));
    else out[rel] = readFileSync(abs, 'utf8');
  }
  return out;
}

/** The parts of a result that must not depend on how it was computed, in a form that does not depend on order. */
export function observable(r: CompileResult) {
  const byKey = <T>(xs: T[]) => xs.map((x) => JSON.stringify(x)).sort();
  return {
    diagnostics: r.diagnostics.map((d) => JSON.stringify(d)),
    plan: r.plan ? canonicalJson(r.plan) : undefined,
    symbols: byKey([...r.program.symbols.values()]),
    references: byKey(r.program.references),
    instances: byKey([...r.program.instances.entries()]),
    files: [...r.program.files.keys()].sort(),
  };
}
