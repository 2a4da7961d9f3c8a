// `mclc fmt`: formats .mcl files in place with the Prettier plugin, or with
// --check lists the files that are not formatted (exit code 4). The plugin is
// loaded only when this command runs, so the rest of the CLI works without it.
// The layout (width, indentation, line endings) comes from the Prettier
// configuration that applies to each file (`.prettierrc`, `.editorconfig`),
// resolved by the plugin exactly as the Prettier CLI resolves it.

import { statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { MAX_FILE_BYTES } from '@mcl/compiler/node-host';
import { importBundled } from '../bundled';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { displayPath, readText, realPath, writeAtomic } from '../files';
import { isInside, resolveWorkspace } from '../workspace';
import { MCLC_VERSION } from '../version';

interface Formatter {
  formatMcl(text: string, opts: { filepath?: string }): Promise<string>;
}

/** The plugin is never bundled into mclc (see bundled.ts). */
function importPlugin(): Promise<unknown> {
  return importBundled('../../prettier-plugin/dist/index.mjs', ['@mcl', 'prettier-plugin']);
}

async function loadFormatter(): Promise<Formatter> {
  let mod: Partial<Formatter>;
  try {
    mod = (await importPlugin()) as Partial<Formatter>;
  } catch (e) {
    throw new CliError(
      `the formatter is not available: @mcl/prettier-plugin could not be loaded (${(e as Error).message.split('\n')[0]})`,
      ExitCode.Invalid,
      'Install the workspace dependencies (`npm ci`) and rebuild (`npm run build`).',
    );
  }
  if (typeof mod.formatMcl !== 'function') {
    throw new CliError('the formatter is not available: @mcl/prettier-plugin does not export formatMcl', ExitCode.Invalid);
  }
  return mod as Formatter;
}

export async function fmtCommand(ctx: Context, paths: string[], o: { check?: boolean }): Promise<ExitCodeValue> {
  const ws = resolveWorkspace(paths, { cwd: ctx.cwd });
  const formatter = await loadFormatter();
  const s = ctx.errStyle;
  let unformatted = 0;
  let changed = 0;
  let failed = 0;
  let internal = 0;
  const realRoot = realPath(ws.root) ?? ws.root;
  for (const entry of ws.entries) {
    const abs = join(ws.root, entry);
    const shown = relative(ctx.cwd, abs) || abs;
    // A file is read and written at its real path, so a symbolic link stays a link, and only when that
    // path is inside the workspace: formatting must never change a file elsewhere through a link.
    const real = realPath(abs) ?? abs;
    if (!isInside(realRoot, real)) {
      failed++;
      ctx.err(
        `${shown}: ${s.red('error')}: not formatting it: it is a symbolic link to ${displayPath(ctx.cwd, real)}, outside the workspace ${displayPath(ctx.cwd, ws.root)}\n` +
          `  hint: format the file where it is (mclc fmt ${displayPath(ctx.cwd, real)}), or copy it into the workspace instead of linking to it\n`,
      );
      continue;
    }
    let text: string;
    try {
      text = readText(real, ctx.cwd, 'source file', MAX_FILE_BYTES);
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      failed++;
      ctx.err(`${shown}: ${s.red('error')}: cannot format: ${e.message}\n`);
      continue;
    }
    let formatted: string;
    try {
      formatted = await formatter.formatMcl(text, { filepath: abs });
    } catch (e) {
      const err: Error & { loc?: { start: { line: number; column: number } } } = e instanceof Error ? e : new Error(String(e));
      if (isSyntaxError(err)) {
        failed++;
        const at = err.loc ? `:${err.loc.start.line}:${err.loc.start.column}` : '';
        ctx.err(`${shown}${at}: ${s.red('error')}: cannot format: ${err.message.split('\n')[0]}\n`);
      } else {
        // The file parses, so the formatter failing on it is a bug in the formatter, not in the file.
        internal++;
        ctx.err(
          `${shown}: ${s.red(s.bold('internal error'))}: cannot format: ${err.message.split('\n')[0]}\n` +
            `  This is a bug in mclc ${MCLC_VERSION}'s formatter. Please report it with this file; the file was left unchanged.\n`,
        );
      }
      continue;
    }
    if (formatted === text) continue;
    if (o.check) {
      unformatted++;
      ctx.out(`${shown}\n`);
    } else {
      writeAtomic(real, formatted, ctx.cwd, { mode: modeOf(real) });
      changed++;
      ctx.out(`${shown}\n`);
    }
  }
  const total = ws.entries.length;
  const notRead = failed ? ` ${failed} of ${total} could not be ${o.check ? 'checked' : 'formatted'}.` : '';
  if (o.check) {
    ctx.err(
      (unformatted ? `${unformatted} of ${total} files are not formatted; run \`mclc fmt\` to format them.` : failed ? 'The other files are formatted.' : `All ${total} files are formatted.`) + notRead + '\n',
    );
  } else {
    ctx.err(`Formatted ${changed} of ${total} files.${notRead}\n`);
  }
  if (internal) return ExitCode.Internal;
  if (failed) return ExitCode.Invalid;
  return unformatted ? ExitCode.Unformatted : ExitCode.Ok;
}

/** A syntax error in the file (the plugin's McLSyntaxError, with the position of the first error). */
export function isSyntaxError(e: Error & { loc?: unknown }): boolean {
  return e instanceof SyntaxError && typeof e.loc === 'object' && e.loc !== null;
}

/** The permission bits of a file, so that formatting it keeps them. */
function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return undefined;
  }
}
