// Renaming or moving `.mcl` files and folders in the editor
// (`workspace/willRenameFiles`): before the client moves them, the server
// returns the edits that keep the project compiling.
//
// - Every import of a moved module (`import shop.types.{Order}`) and every
//   qualified name that starts with its module path (`shop.types.Order`), in
//   every file of its project, is rewritten to the new module path.
// - A moved file's program paths (`script "guest/web.sh"`), which are
//   relative to the file's folder, are rewritten to name the same files from
//   the new folder (or the files' new place, when they move along).
//
// Module paths are relative to the project's root, so a move that takes a
// module out of its project's root, or to a name that cannot be a module path
// (`my-types.mcl`), cannot be followed by edits: it is reported in the log
// and its imports are left as they are (the compiler then says what broke).

import { posix } from 'node:path';
import { moduleFile, modulePathOfFile, programFilePath } from '@mcl/compiler';
import type { Node, QualifiedName, StringLiteral } from '@mcl/language';
import type { FileOperationRegistrationOptions, RenameFilesParams, TextEdit, WorkspaceEdit } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { walk } from '../ast-util';
import { toRange } from '../convert';
import type { ServerContext } from '../service';

/** The file operations the server wants to hear about before they happen: `.mcl` files, and folders (which may hold them). */
export const RENAME_FILTERS: FileOperationRegistrationOptions = {
  filters: [
    { scheme: 'file', pattern: { glob: '**/*.mcl', matches: 'file' } },
    { scheme: 'file', pattern: { glob: '**', matches: 'folder' } },
  ],
};

export function willRenameFiles(s: Snapshot, c: ServerContext, params: RenameFilesParams, log: (m: string) => void): WorkspaceEdit | null {
  // Old workspace-relative path (file or folder, no trailing slash) -> new one.
  const moves: [string, string][] = [];
  for (const f of params.files) {
    const from = relativeOf(c, f.oldUri);
    const to = relativeOf(c, f.newUri);
    if (from === undefined || to === undefined || from === '' || to === '') continue;
    moves.push([from, to]);
  }
  if (moves.length === 0) return null;
  const moved = (p: string): string | undefined => {
    for (const [from, to] of moves) {
      if (p === from) return to;
      if (p.startsWith(from + '/')) return to + p.slice(from.length);
    }
    return undefined;
  };

  const edits = new Map<string, TextEdit[]>();
  const add = (file: string, e: TextEdit): void => {
    const uri = c.paths.toUri(file);
    const list = edits.get(uri);
    if (list) list.push(e);
    else edits.set(uri, [e]);
  };

  // The moved `.mcl` files: the renamed file itself, or the ones under a renamed folder.
  const files = [...new Set([...c.workspace.entries(), ...s.program.files.keys()])].filter((f) => !f.startsWith('std:'));
  const renamedModules = new Map<string, { root: string; from: string[]; to: string[] }[]>();
  for (const file of files) {
    const target = moved(file);
    if (target === undefined || !file.endsWith('.mcl')) continue;
    const root = c.analyzer.projectOf(file)?.root ?? '';
    // A project moved as a whole (its root folder renamed) keeps its module paths and relative program paths.
    if (root !== '' && moved(root) !== undefined) continue;
    // Module paths are the compiler's, as seen from the project's root.
    const oldModule = modulePathOfFile(file, root);
    const newModule = modulePathOfFile(target, root);
    if (!oldModule || !newModule || moduleFile(newModule, root) !== target) {
      log(`mcl: ${file} -> ${target}: the new name is not a module path under the project root ${root || '.'}; its imports are not updated`);
    } else if (oldModule !== newModule) {
      const list = renamedModules.get(root) ?? [];
      list.push({ root, from: oldModule.split('.'), to: newModule.split('.') });
      renamedModules.set(root, list);
    }
    if (under(root, file) && under(root, target)) programPathEdits(c, file, root, target, moved, add);
  }

  // Every file of the same project that names a moved module.
  for (const [root, renames] of renamedModules) {
    for (const file of files) {
      if ((c.analyzer.projectOf(file)?.root ?? '') !== root) continue;
      const doc = c.analyzer.parsedDocument(file);
      if (!doc) continue;
      const importModules = new Set(doc.ast.imports.map((i) => i.module));
      walk(doc.ast, (n: Node) => {
        if (n.kind !== 'QualifiedName') return true;
        const q = n as QualifiedName;
        const isImport = importModules.has(q);
        for (const r of renames) {
          const n0 = r.from.length;
          if (isImport ? q.parts.length !== n0 : q.parts.length <= n0) continue;
          if (!r.from.every((p, i) => q.parts[i].name === p)) continue;
          const span = { start: q.parts[0].span.start, end: q.parts[n0 - 1].span.end };
          add(file, { range: toRange(doc.lines, span), newText: r.to.join('.') });
          break;
        }
        return false;
      });
    }
  }
  if (edits.size === 0) return null;
  return { changes: Object.fromEntries(edits) };
}

/** Edits to a moved file's `script` and `file ... from` paths so they name the same files from its new folder. */
function programPathEdits(
  c: ServerContext,
  file: string,
  root: string,
  target: string,
  moved: (p: string) => string | undefined,
  add: (file: string, e: TextEdit) => void,
): void {
  const doc = c.analyzer.parsedDocument(file);
  if (!doc) return;
  const fix = (lit: StringLiteral): void => {
    const resolved = programFilePath(file, lit.value, root);
    if (resolved === undefined) return;
    const after = moved(resolved) ?? resolved;
    if (!under(root, after)) return;
    const rel = posix.relative(posix.dirname(target), after);
    if (rel === '') return;
    if (programFilePath(target, rel, root) !== after) return;
    if (rel === lit.value) return;
    // Raw strings have no escapes; a path needing one is left alone.
    if (/["\\\n]/.test(rel)) return;
    add(file, { range: toRange(doc.lines, lit.span), newText: JSON.stringify(rel) });
  };
  walk(doc.ast, (n: Node) => {
    if (n.kind === 'ScriptEntry') fix(n.path);
    else if (n.kind === 'FileEntry' && n.source.kind === 'workspace') fix(n.source.path);
    return true;
  });
}

function relativeOf(c: ServerContext, uri: string): string | undefined {
  // A folder has no `.mcl` ending, so the mapper (which only takes sources) is asked about a file inside it.
  const probe = uri.endsWith('.mcl') ? uri : uri.replace(/\/?$/, '/x.mcl');
  const rel = c.paths.fromUri(probe);
  if (rel === undefined || rel.startsWith('std:')) return undefined;
  return uri.endsWith('.mcl') ? rel : posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
}

/** True when a workspace file lies under a project root ("" is the workspace's). */
function under(root: string, file: string): boolean {
  return root === '' || file.startsWith(root + '/');
}
