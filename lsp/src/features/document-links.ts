// Document links: the file paths written in a source, clickable. An import's
// module path (`import shop.types.{Order}`, `import std.http.*`) opens the
// module's file, and a program's workspace files (`script "guest/web.sh"`,
// `file "/srv/index.html" from "www/index.html"`) open those files. Paths are
// resolved as the compiler resolves them (its `moduleFile` and
// `programFilePath`), from the root of the file's project, and a link is given
// only for a file that exists: a missing one has its diagnostic instead.

import { existsSync } from 'node:fs';
import { moduleFile, programFilePath } from '@mcl/compiler';
import type { Node, Span, StringLiteral } from '@mcl/language';
import type { DocumentLink } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { walk } from '../ast-util';
import { toRange } from '../convert';
import type { ServerContext } from '../service';

export function documentLinks(s: Snapshot, c: ServerContext, file: string): DocumentLink[] {
  const doc = c.analyzer.parsedDocument(file);
  if (!doc) return [];
  const root = file.startsWith('std:') ? '' : (c.analyzer.projectOf(file)?.root ?? '');
  const out: DocumentLink[] = [];
  const link = (span: Span, target: string, what: string): void => {
    const fsPath = c.paths.toFsPath(target);
    if (!s.program.files.has(target) && !existsSync(fsPath)) return;
    out.push({ range: toRange(doc.lines, span), target: c.paths.toUri(target), tooltip: `Open ${what}` });
  };

  for (const imp of doc.ast.imports) {
    const path = imp.module.parts.map((p) => p.name).join('.');
    const target = path ? moduleFile(path, root) : undefined;
    if (!target) continue;
    link(imp.module.span, target, target.startsWith('std:') ? `the standard library module ${path}` : target);
  }

  // Program files are relative to the declaring file, inside its project; the standard library has none.
  if (file.startsWith('std:')) return out;
  const programPath = (lit: StringLiteral): void => {
    const target = programFilePath(file, lit.value, root);
    if (target === undefined) return;
    // Only the text between the quotes is the link.
    const quote = doc.text.startsWith('"""', lit.span.start) ? 3 : 1;
    const span = lit.span.end - lit.span.start >= 2 * quote ? { start: lit.span.start + quote, end: lit.span.end - quote } : lit.span;
    link(span, target, target);
  };
  for (const d of doc.ast.decls) {
    walk(d as Node, (n) => {
      if (n.kind === 'ScriptEntry') programPath(n.path);
      else if (n.kind === 'FileEntry' && n.source.kind === 'workspace') programPath(n.source.path);
      return n.kind !== 'SystemDecl' && n.kind !== 'TypeDecl' && n.kind !== 'ProtocolDecl';
    });
  }
  return out;
}
