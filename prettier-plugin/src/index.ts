// The Prettier plugin for `.mcl` files: the formatter behind `mclc fmt` and
// editor formatting. It parses with @mcl/language and refuses to format a
// file with syntax errors (formatting must never lose or invent text).

import * as prettier from 'prettier';
import type { Parser, Plugin, SupportLanguage } from 'prettier';
import { LineIndex, parse, type SourceFile } from '@mcl/language';
import type * as A from '@mcl/language';
import { printer } from './printer';

export const languages: SupportLanguage[] = [
  {
    name: 'mcl',
    parsers: ['mcl'],
    extensions: ['.mcl'],
    vscodeLanguageIds: ['mcl'],
  },
];

/** Thrown (as Prettier expects) when the source has syntax errors; carries the first error's position. */
export class McLSyntaxError extends SyntaxError {
  constructor(
    message: string,
    readonly loc: { start: { line: number; column: number }; end: { line: number; column: number } },
  ) {
    super(message);
  }
}

const mclParser: Parser<SourceFile> = {
  astFormat: 'mcl-ast',
  parse(text, options) {
    const path = (options as { filepath?: string }).filepath ?? 'input.mcl';
    const { file, diagnostics } = parse(text, path);
    const errors = diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0) {
      const first = errors[0];
      const index = new LineIndex(text);
      const start = index.position(first.span.start);
      const end = index.position(first.span.end);
      throw new McLSyntaxError(`${first.code}: ${first.message}` + (errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''), {
        start: { line: start.line, column: start.column },
        end: { line: end.line, column: end.column },
      });
    }
    // Prettier names a comment's text `value` (its own error messages read it).
    for (const c of file.comments) (c as A.Comment & { value?: string }).value = c.text;
    return file;
  },
  locStart: (node: any) => node.span?.start ?? 0,
  locEnd: (node: any) => node.span?.end ?? 0,
};

export const parsers = { mcl: mclParser };
export const printers = { 'mcl-ast': printer };
export const options = {};
export const defaultOptions = { printWidth: 100, tabWidth: 2, useTabs: false };

const plugin: Plugin = { languages, parsers, printers, options, defaultOptions } as Plugin;
export default plugin;

/** The options the printer honours; every other Prettier option has no effect on `.mcl` files. */
export interface LayoutOptions {
  printWidth: number;
  tabWidth: number;
  useTabs: boolean;
  endOfLine: 'lf' | 'crlf' | 'cr' | 'auto';
}

export interface FormatOptions extends Partial<LayoutOptions> {
  /**
   * The file's path: named in error messages, and where the configuration is
   * looked up (`.prettierrc` and the other Prettier configuration files, then
   * `.editorconfig`), exactly as the Prettier CLI does for that file. Options
   * given here override the configuration.
   */
  filepath?: string;
  /** Set to false to ignore configuration files (the defaults and the options given here only). */
  config?: boolean;
}

/**
 * The layout for a file: the plugin's defaults (width 100, two spaces, LF),
 * overridden by the Prettier configuration that applies to the file, as the
 * Prettier CLI resolves it (a `.prettierrc` and its `overrides`, then
 * `.editorconfig`'s `indent_style`, `indent_size`/`tab_width`,
 * `max_line_length` and `end_of_line`). `mclc fmt`, the language server and
 * `prettier` all format through this, so they always agree.
 */
export async function resolveLayout(filepath: string | undefined): Promise<LayoutOptions> {
  const layout: LayoutOptions = { ...defaultOptions, endOfLine: 'lf' };
  if (!filepath) return layout;
  const found = (await prettier.resolveConfig(filepath, { editorconfig: true })) ?? {};
  if (typeof found.printWidth === 'number') layout.printWidth = found.printWidth;
  if (typeof found.tabWidth === 'number') layout.tabWidth = found.tabWidth;
  if (typeof found.useTabs === 'boolean') layout.useTabs = found.useTabs;
  if (found.endOfLine === 'lf' || found.endOfLine === 'crlf' || found.endOfLine === 'cr' || found.endOfLine === 'auto') layout.endOfLine = found.endOfLine;
  return layout;
}

/** Forgets cached configuration files (after one changed on disk). */
export async function clearConfigCache(): Promise<void> {
  await prettier.clearConfigCache();
}

/** Formats `.mcl` source text. Rejects with McLSyntaxError when the text does not parse. */
export async function formatMcl(text: string, opts: FormatOptions = {}): Promise<string> {
  const layout = await resolveLayout(opts.config === false ? undefined : opts.filepath);
  return prettier.format(text, {
    parser: 'mcl',
    plugins: [plugin],
    filepath: opts.filepath,
    printWidth: opts.printWidth ?? layout.printWidth,
    tabWidth: opts.tabWidth ?? layout.tabWidth,
    useTabs: opts.useTabs ?? layout.useTabs,
    endOfLine: opts.endOfLine ?? layout.endOfLine,
  });
}
