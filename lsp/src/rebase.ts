// Moving compile results between roots. A project is compiled from its own
// root, so the compiler names its files relative to that root; the server
// names files relative to the workspace root. These functions prefix every file
// name (and symbol id, which starts with its file name) with the project's
// root, and merge the results of several projects into one Program.

import type { CompileResult, Program, SymbolInfo } from '@mcl/compiler';
import type { Diagnostic } from '@mcl/language';

export function rebaseFile(root: string, file: string): string {
  if (root === '' || file.startsWith('std:')) return file;
  return `${root}/${file}`;
}

/** The project-relative name of a workspace file, or undefined when it is not under the root. */
export function unbaseFile(root: string, file: string): string | undefined {
  if (root === '' || file.startsWith('std:')) return file;
  return file.startsWith(root + '/') ? file.slice(root.length + 1) : undefined;
}

export function rebaseResult(root: string, r: CompileResult): CompileResult {
  if (root === '') return r;
  const f = (file: string) => rebaseFile(root, file);
  const program: Program = {
    files: new Map([...r.program.files].map(([k, v]) => [f(k), v])),
    texts: new Map([...r.program.texts].map(([k, v]) => [f(k), v])),
    symbols: new Map(
      [...r.program.symbols].map(([id, s]) => {
        const moved: SymbolInfo = { ...s, id: f(id), file: f(s.file) };
        if (s.container !== undefined) moved.container = f(s.container);
        return [f(id), moved];
      }),
    ),
    references: r.program.references.map((ref) => ({ file: f(ref.file), span: ref.span, symbol: f(ref.symbol) })),
    instances: new Map(
      [...r.program.instances].map(([id, settings]) => [
        f(id),
        {
          ...settings,
          params: settings.params.map((p) => ({ ...p, type: { ...p.type, file: f(p.type.file) }, ...(p.value ? { value: { ...p.value, file: f(p.value.file) } } : {}) })),
        },
      ]),
    ),
  };
  return { ...r, program, diagnostics: r.diagnostics.map((d) => rebaseDiagnostic(root, d)) };
}

function rebaseDiagnostic(root: string, d: Diagnostic): Diagnostic {
  const f = (file: string) => rebaseFile(root, file);
  const out: Diagnostic = { ...d, file: f(d.file) };
  if (d.related) out.related = d.related.map((x) => ({ ...x, file: f(x.file) }));
  if (d.fixes) out.fixes = d.fixes.map((fix) => ({ ...fix, edits: fix.edits.map((e) => ({ ...e, file: f(e.file) })) }));
  return out;
}

/**
 * One Program and diagnostic list from several projects. Standard library
 * files appear in every project with the same names and symbol ids, so they
 * merge; their diagnostics are kept once.
 */
export function mergeResults(results: CompileResult[]): CompileResult {
  if (results.length === 1) return results[0];
  const program: Program = { files: new Map(), texts: new Map(), symbols: new Map(), references: [], instances: new Map() };
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const seenRefs = new Set<string>();
  for (const r of results) {
    for (const [k, v] of r.program.files) program.files.set(k, v);
    for (const [k, v] of r.program.texts) program.texts.set(k, v);
    for (const [k, v] of r.program.symbols) if (!program.symbols.has(k)) program.symbols.set(k, v);
    for (const [k, v] of r.program.instances) if (!program.instances.has(k)) program.instances.set(k, v);
    for (const ref of r.program.references) {
      // References inside a standard library file would repeat once per project.
      if (ref.file.startsWith('std:')) {
        const key = `${ref.file}\u0000${ref.span.start}\u0000${ref.span.end}\u0000${ref.symbol}`;
        if (seenRefs.has(key)) continue;
        seenRefs.add(key);
      }
      program.references.push(ref);
    }
    for (const d of r.diagnostics) {
      const key = `${d.file}\u0000${d.code}\u0000${d.span.start}\u0000${d.span.end}\u0000${d.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      diagnostics.push(d);
    }
  }
  return { program, diagnostics };
}
