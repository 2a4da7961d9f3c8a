// A component's guest program: `script` (a workspace file run by /bin/sh),
// `exec` (an argv), files placed in the guest, and environment variables.
// Workspace files are read through the host, relative to the directory of the
// .mcl file that declares the component, and never from outside the workspace.

import type { Expr, ProgramMember } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { PlanFile } from '@mcl/plan';
import { Ctx, related, type Module } from '../context';
import { joinRelative, relativeToRoot, underRoot } from '../resolve/load';

export interface ProgramSpec {
  argv: string[];
  env: Record<string, string>;
  files: PlanFile[];
}

export const PROGRAM_DIR = '/mcl/program';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function dirOf(file: string): string {
  const i = file.lastIndexOf('/');
  return i < 0 ? '' : file.slice(0, i);
}

/**
 * The workspace file a program path (`script "guest/web.sh"`, `file ... from
 * "www/index.html"`) names, relative to the directory of the .mcl file that
 * writes it, or undefined when the path leaves the workspace (or `root`, the
 * folder the compile is rooted at: `CompilerHost.moduleRoot`).
 */
export function programFilePath(declaringFile: string, rel: string, root = ''): string | undefined {
  const from = relativeToRoot(root, declaringFile);
  if (from === undefined) return undefined;
  const path = joinRelative(dirOf(from), rel);
  return path === undefined ? undefined : underRoot(root, path);
}

/**
 * A workspace file's text as this compile sees it (read once per compile,
 * through the host), or undefined when it cannot be read.
 */
export function programFileText(ctx: Ctx, path: string): string | undefined {
  let text = ctx.programFiles.get(path);
  if (text === undefined) {
    try {
      text = ctx.host.readFile(path);
    } catch {
      text = undefined;
    }
    if (text !== undefined) ctx.programFiles.set(path, text);
  }
  return text;
}

function readWorkspace(ctx: Ctx, m: Module, rel: string, span: { start: number; end: number }): { path: string; text: string } | undefined {
  if (m.isStd) {
    ctx.report(Codes.ProgramFileOutsideWorkspace, `a standard library component cannot read the workspace file \`${rel}\``, m.file, span, { hint: 'give the program inline with `file "/path" = "..."`' });
    return undefined;
  }
  const path = programFilePath(m.file, rel, ctx.root);
  if (path === undefined) {
    ctx.report(Codes.ProgramFileOutsideWorkspace, `\`${rel}\` is outside the workspace`, m.file, span, {
      hint: 'programs may only use files inside the workspace; copy the file into it and give a path relative to this .mcl file',
    });
    return undefined;
  }
  // A file is read once per compile, however many components run it: every
  // instance then sees the same text as the plan's `sources` records, and
  // 10,000 components sharing a few scripts do not mean 10,000 reads.
  const text = programFileText(ctx, path);
  if (text === undefined) {
    const why = ctx.host.unreadable?.(path);
    ctx.report(Codes.ProgramFileNotFound, why ? `program file \`${rel}\` cannot be read (\`${path}\`): ${why.reason}` : `program file \`${rel}\` does not exist (looked for \`${path}\`)`, m.file, span, {
      hint: why?.hint ?? 'paths are relative to the directory of this .mcl file',
    });
    return undefined;
  }
  return { path, text };
}

function envValue(e: Expr): string | undefined {
  switch (e.kind) {
    case 'String':
      return e.value;
    case 'Int':
    case 'Float':
      return String(e.value);
    case 'Bool':
      return e.value ? 'true' : 'false';
    case 'Size':
      return String(e.bytes);
    case 'Duration':
      return String(e.ms);
    default:
      return undefined;
  }
}

/**
 * Builds a component's program (without parameters); reports problems and
 * returns what it could build. `reads` collects the workspace files it read,
 * with their text, for whoever keeps the program until they change.
 */
export function buildProgram(ctx: Ctx, m: Module, p: ProgramMember | undefined, reads?: [string, string][]): ProgramSpec {
  const spec: ProgramSpec = { argv: [], env: {}, files: [] };
  if (!p) return spec;
  let argvFrom: { start: number; end: number } | undefined;
  const guestPaths = new Map<string, { start: number; end: number }>();
  const addFile = (path: string, content: string, mode: string, span: { start: number; end: number }) => {
    const prev = guestPaths.get(path);
    if (prev) {
      ctx.report(Codes.InvalidProgram, `the guest file \`${path}\` is given twice`, m.file, span, { hint: 'remove one of them', related: [related(m.file, prev, 'first given here')] });
      return;
    }
    guestPaths.set(path, span);
    spec.files.push({ path, content, mode });
  };
  for (const entry of p.entries) {
    switch (entry.kind) {
      case 'ScriptEntry':
      case 'ExecEntry': {
        if (argvFrom) {
          ctx.report(Codes.InvalidProgram, 'a program has one `script` or one `exec`', m.file, entry.span, { hint: 'keep one of them', related: [related(m.file, argvFrom, 'the program is already given here')] });
          break;
        }
        argvFrom = entry.span;
        if (entry.kind === 'ScriptEntry') {
          const rel = entry.path.value;
          const f = readWorkspace(ctx, m, rel, entry.path.span);
          if (!f) break;
          reads?.push([f.path, f.text]);
          const base = f.path.slice(f.path.lastIndexOf('/') + 1);
          const guest = `${PROGRAM_DIR}/${base}`;
          spec.argv = ['/bin/sh', guest];
          addFile(guest, f.text, '0755', entry.path.span);
        } else {
          const argv: string[] = [];
          for (const item of entry.argv.items) {
            if (item.kind !== 'String') {
              ctx.report(Codes.InvalidProgram, '`exec` takes a list of strings', m.file, item.span, { hint: 'quote each argument: `exec ["/bin/app", "--flag"]`' });
              continue;
            }
            argv.push(item.value);
          }
          if (argv.length === 0) {
            ctx.report(Codes.InvalidProgram, '`exec` needs at least the program to run', m.file, entry.argv.span, { hint: 'write e.g. `exec ["/bin/httpd", "-f"]`' });
          } else if (!argv[0].startsWith('/')) {
            ctx.report(Codes.InvalidProgram, `the program \`${argv[0]}\` must be an absolute path in the guest`, m.file, entry.argv.items[0].span, { hint: `write \`/bin/${argv[0]}\` or wherever it lives in the image` });
          }
          spec.argv = argv;
        }
        break;
      }
      case 'FileEntry': {
        const gp = entry.guestPath.value;
        if (!gp.startsWith('/') || gp.split('/').some((s) => s === '..') || gp.includes('\0')) {
          ctx.report(Codes.InvalidProgram, `guest file path \`${gp}\` must be absolute and must not contain \`..\``, m.file, entry.guestPath.span, { hint: 'write e.g. `file "/etc/app.conf" = "..."`' });
          break;
        }
        if (entry.source.kind === 'inline') {
          addFile(gp, entry.source.text.value, '0644', entry.span);
        } else {
          const f = readWorkspace(ctx, m, entry.source.path.value, entry.source.path.span);
          if (f) {
            reads?.push([f.path, f.text]);
            addFile(gp, f.text, '0644', entry.span);
          }
        }
        break;
      }
      case 'EnvEntry': {
        for (const en of entry.vars.entries) {
          const key = en.key.kind === 'String' ? en.key.value : en.key.name;
          if (!ENV_NAME.test(key)) {
            ctx.report(Codes.InvalidProgram, `\`${key}\` is not a valid environment variable name`, m.file, en.key.span, { hint: 'use letters, digits and `_`, not starting with a digit' });
            continue;
          }
          if (key.startsWith('MCL_')) {
            ctx.report(Codes.InvalidProgram, `\`${key}\` is reserved: \`MCL_\` variables are set by mcl`, m.file, en.key.span, { hint: 'parameters reach the program as `MCL_PARAM_<NAME>` already; choose another name' });
            continue;
          }
          if (key in spec.env) {
            ctx.report(Codes.InvalidProgram, `environment variable \`${key}\` is set twice`, m.file, en.key.span, { hint: 'keep one of them' });
            continue;
          }
          const v = envValue(en.value);
          if (v === undefined) {
            if (en.value.kind !== 'MissingExpr') ctx.report(Codes.InvalidProgram, `environment variable \`${key}\` must be a string, number or boolean`, m.file, en.value.span, { hint: 'quote the value' });
            continue;
          }
          spec.env[key] = v;
        }
        break;
      }
    }
  }
  return spec;
}
