// Unused imports (MCL0212): what counts as a use, the span and message of each
// warning, and fixes that leave a source that compiles without the warning.

import { describe, expect, test } from 'vitest';
import type { Diagnostic } from '@mcl/language';
import { compileText } from './helpers';

const unused = (main: string, others: Record<string, string> = {}): Diagnostic[] =>
  compileText(main, others).diagnostics.filter((d) => d.code === 'MCL0212');

function applyFix(text: string, d: Diagnostic): string {
  const edits = [...d.fixes![0].edits].sort((a, b) => b.span.start - a.span.start);
  for (const e of edits) text = text.slice(0, e.span.start) + e.newText + text.slice(e.span.end);
  return text;
}

describe('unused imports', () => {
  test('an unused item among used ones is reported on the item, and its fix removes it with its comma', () => {
    const main = 'import std.http.{Request, Http, Response}\ncomponent C { provide h: Http }\n';
    const ds = unused(main);
    expect(ds.map((d) => [main.slice(d.span.start, d.span.end), d.severity, d.message])).toEqual([
      ['Request', 'warning', '`Request` is imported but never used'],
      ['Response', 'warning', '`Response` is imported but never used'],
    ]);
    let text = applyFix(main, ds[0]);
    expect(text.split('\n')[0]).toBe('import std.http.{Http, Response}');
    text = applyFix(text, unused(text)[0]);
    expect(text.split('\n')[0]).toBe('import std.http.{Http}');
    expect(compileText(text).diagnostics.filter((d) => d.severity !== 'info')).toEqual([]);
  });

  test('an import none of whose names is used is reported once, and its fix removes the line', () => {
    const main = '// Kinds of store.\nimport std.kv.{Kv}\nimport std.http.{Http, Request}\ncomponent C { provide h: Http }\n';
    const ds = unused(main);
    expect(ds.map((d) => main.slice(d.span.start, d.span.end))).toEqual(['import std.kv.{Kv}', 'Request']);
    expect(applyFix(main, ds[0])).toBe('// Kinds of store.\nimport std.http.{Http, Request}\ncomponent C { provide h: Http }\n');
  });

  test('aliases, qualified uses, enum members and deploy targets count as uses', () => {
    const types = 'type Method = enum { GET, POST }\ntarget far { backend kvm }\n';
    const main = [
      'import std.http.{Http as Web}',
      'import types.{Method, far}',
      'component C {',
      '  provide h: Web',
      '  param m: types.Method = Method.GET',
      '}',
      'system S { c = C }',
      'deploy S to far',
      '',
    ].join('\n');
    expect(unused(main, { 'types.mcl': types })).toEqual([]);
  });

  test('a glob import is unused when none of its names is', () => {
    const main = 'import std.kv.*\nimport std.http.*\ncomponent C { provide h: Http }\n';
    const ds = unused(main);
    expect(ds.map((d) => d.message)).toEqual(['nothing imported from `std.kv` is used']);
    expect(applyFix(main, ds[0])).toBe('import std.http.*\ncomponent C { provide h: Http }\n');
  });

  test('a name is a use wherever it comes, before or after the other imported names are all seen', () => {
    // The walk for uses stops once every imported name is seen; a glob import needs every name.
    const late = 'import std.http.{Http, Request}\ncomponent A { provide h: Http }\ncomponent B { provide h: Http }\ntype T = Request\n';
    expect(unused(late)).toEqual([]);
    const mixed = 'import std.http.{Http}\nimport std.kv.*\ncomponent A { provide h: Http }\ncomponent B { require k: Kv }\n';
    expect(unused(mixed)).toEqual([]);
    const never = 'import std.http.{Http, Request}\nimport std.kv.*\ncomponent A { provide h: Http }\ncomponent B { provide h: Http }\n';
    expect(unused(never).map((d) => d.message)).toEqual(['`Request` is imported but never used', 'nothing imported from `std.kv` is used']);
  });

  test('a name imported twice is reported at the second import', () => {
    const main = 'import std.http.{Http}\nimport std.http.{Http}\ncomponent C { provide h: Http }\n';
    const ds = unused(main);
    expect(ds.map((d) => [d.message, main.slice(0, d.span.start).split('\n').length])).toEqual([['`Http` is imported twice', 2]]);
    expect(applyFix(main, ds[0])).toBe('import std.http.{Http}\ncomponent C { provide h: Http }\n');
  });

  test('files with syntax errors and unresolved imports get no warning', () => {
    expect(unused('import std.kv.{Kv}\ncomponent C { provide h: }\n')).toEqual([]);
    expect(unused('import std.nope.{Kv}\n')).toEqual([]);
    // The standard library's own imports are not reported.
    expect(compileText('import std.http.{Http}\ncomponent C { provide h: Http }\n').diagnostics.filter((d) => d.severity !== 'info')).toEqual([]);
  });
});
