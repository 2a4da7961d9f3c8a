// The Prettier plugin for `.mcl` files: the formatter behind `mclc fmt` and
// editor formatting. It parses with @mcl/language and refuses to format a
// file with syntax errors (formatting must never lose or invent text).

import * as prettier from 'prettier';
import type { Parser, Plugin, SupportLanguage } from 'prettier';
import { LineIndex, parse, type SourceFile } from '@mcl/language';
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

export interface FormatOptions {
  /** Used in error messages and for Prettier configuration lookup by callers. */
  filepath?: string;
  printWidth?: number;
}

/** Formats `.mcl` source text. Rejects with McLSyntaxError when the text does not parse. */
export async function formatMcl(text: string, opts: FormatOptions = {}): Promise<string> {
  return prettier.format(text, {
    parser: 'mcl',
    plugins: [plugin],
    filepath: opts.filepath,
    printWidth: opts.printWidth ?? defaultOptions.printWidth,
    tabWidth: 2,
    useTabs: false,
  });
}

/** True when the text is already formatted. */
export async function isFormatted(text: string, opts: FormatOptions = {}): Promise<boolean> {
  return (await formatMcl(text, opts)) === text;
}
