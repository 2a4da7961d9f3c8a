// "Add a missing import": for an unknown name, offer to import a declaration
// of that name from each module that has one. Candidates are the top-level
// declarations of the workspace modules in the last build and of the standard
// library modules (read from the stdlib folder, since a module nobody imports
// yet is not in the build). Whether the import then resolves is left to the
// compiler on the next build; this only writes the import.

import { readdirSync } from 'node:fs';
import type { Diagnostic as LspDiagnostic, TextEdit } from 'vscode-languageserver';
import { Codes, type Decl, type SourceFile } from '@mcl/language';
import { modulePathOfFile } from '@mcl/compiler';
import type { Snapshot } from '../analysis';
import { toRange } from '../convert';
import { PathMapper } from '../paths';
import type { ServerContext } from '../service';


const IMPORTABLE = new Set<Decl['kind']>(['TypeDecl', 'ProtocolDecl', 'ComponentDecl', 'SystemDecl', 'ImageDecl', 'TargetDecl']);

function declaredNames(ast: SourceFile): string[] {
  const out: string[] = [];
  for (const d of ast.decls) if (IMPORTABLE.has(d.kind) && 'name' in d && d.name.name) out.push(d.name.name);
  return out;
}

/** Module paths declaring `name` at top level, workspace modules first. */
export function modulesDeclaring(s: Snapshot, c: ServerContext, name: string, except: string): string[] {
  const found = new Set<string>();
  // Module paths are written relative to the root of the importing file's project.
  const root = c.analyzer.projectOf(except)?.root ?? '';
  for (const [file, ast] of s.program.files) {
    if (file === except || file === 'std:prelude') continue;
    const path = file.startsWith('std:') ? PathMapper.modulePath(file) : modulePathOfFile(file, root);
    if (path === undefined) continue;
    if (declaredNames(ast).includes(name)) found.add(path);
  }
  let stdFiles: string[] = [];
  try {
    stdFiles = readdirSync(c.paths.stdlibDir).filter((f) => f.endsWith('.mcl') && f !== 'prelude.mcl');
  } catch {
    stdFiles = [];
  }
  for (const f of stdFiles) {
    const file = 'std:' + f.slice(0, -4);
    if (s.program.files.has(file)) continue;
    const doc = c.analyzer.parsedDocument(file);
    if (doc && declaredNames(doc.ast).includes(name)) found.add(PathMapper.modulePath(file));
  }
  return [...found].sort((a, b) => Number(a.startsWith('std.')) - Number(b.startsWith('std.')) || a.localeCompare(b));
}

/** The edit that imports `name` from `module` into `file`: extends an existing `import module.{...}` or adds a line. */
export function importEdit(s: Snapshot, file: string, module: string, name: string): TextEdit | undefined {
  const ast = s.program.files.get(file);
  const lines = s.lines(file);
  const text = s.text(file);
  if (!ast || !lines || text === undefined) return undefined;
  for (const imp of ast.imports) {
    if (imp.module.parts.map((p) => p.name).join('.') !== module) continue;
    if (imp.items === '*') return undefined;
    const last = imp.items[imp.items.length - 1];
    if (!last) continue;
    const at = last.span.end;
    return { range: toRange(lines, { start: at, end: at }), newText: `, ${name}` };
  }
  const line = `import ${module}.{${name}}\n`;
  if (ast.imports.length > 0) {
    const end = ast.imports[ast.imports.length - 1].span.end;
    const nextLine = lines.lineOf(end) + 1;
    const at = nextLine < lines.lineCount ? lines.lineStart(nextLine) : text.length;
    return { range: toRange(lines, { start: at, end: at }), newText: at === text.length && !text.endsWith('\n') ? '\n' + line : line };
  }
  // No imports yet: above the first declaration and the comments directly above it.
  let at = 0;
  const first = ast.decls[0];
  if (first) {
    let line0 = lines.lineOf(first.span.start);
    const comments = ast.comments.filter((cm) => cm.span.end <= first.span.start);
    for (let i = comments.length - 1; i >= 0 && lines.lineOf(comments[i].span.end) === line0 - 1; i--) {
      line0 = lines.lineOf(comments[i].span.start);
    }
    at = lines.lineStart(line0);
  }
  return { range: toRange(lines, { start: at, end: at }), newText: line + (ast.decls.length > 0 ? '\n' : '') };
}

export function isUnknownName(d: LspDiagnostic): boolean {
  return d.code === Codes.UnknownName.code;
}
