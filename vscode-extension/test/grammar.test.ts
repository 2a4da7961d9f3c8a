// The TextMate grammar, tokenized with the same engine VS Code uses
// (vscode-textmate over the Oniguruma WASM build).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as oniguruma from 'vscode-oniguruma';
import * as vsctm from 'vscode-textmate';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let grammar: vsctm.IGrammar;

beforeAll(async () => {
  const wasm = readFileSync(join(dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (p: string[]) => new oniguruma.OnigScanner(p), createOnigString: (s: string) => new oniguruma.OnigString(s) }),
    loadGrammar: async (scope) => {
      if (scope !== 'source.mcl') return null;
      const path = join(here, '..', 'syntaxes', 'mcl.tmLanguage.json');
      return vsctm.parseRawGrammar(readFileSync(path, 'utf8'), path);
    },
  });
  grammar = (await registry.loadGrammar('source.mcl'))!;
});

/** Tokenizes text and returns `[text, innermost scope]` pairs per line. */
function tokenize(text: string): [string, string][][] {
  let state = vsctm.INITIAL;
  return text.split('\n').map((line) => {
    const r = grammar.tokenizeLine(line, state);
    state = r.ruleStack;
    return r.tokens.map((t) => [line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]] as [string, string]);
  });
}

function scopeOf(text: string, word: string): string | undefined {
  for (const line of tokenize(text)) {
    const hit = line.find(([t]) => t === word);
    if (hit) return hit[1];
  }
  return undefined;
}

describe('TextMate grammar', () => {
  it('scopes declarations and their names', () => {
    const src = 'component Web {\n}\nsystem Shop {\n}\nprotocol Auth {\n  call check(Credentials) -> Identity\n}\ntype Credentials = { token: string(max 256) }';
    expect(scopeOf(src, 'component')).toBe('storage.type.component.mcl');
    expect(scopeOf(src, 'Web')).toBe('entity.name.type.class.mcl');
    expect(scopeOf(src, 'Shop')).toBe('entity.name.type.module.mcl');
    expect(scopeOf(src, 'check')).toBe('entity.name.function.mcl');
    expect(scopeOf(src, 'string')).toBe('support.type.primitive.mcl');
  });

  it('scopes quoted field names as properties and int64 as a primitive type', () => {
    const src = 'type Event = { "type": string, "@id"?: int64, note: string = "x" }';
    expect(scopeOf(src, '"type"')).toBe('variable.other.property.quoted.mcl');
    expect(scopeOf(src, '"@id"')).toBe('variable.other.property.quoted.mcl');
    expect(scopeOf(src, 'int64')).toBe('support.type.primitive.mcl');
  });

  it('scopes comments, doc comments and strings with escapes', () => {
    const lines = tokenize('/// Doc.\n// note\n/* block\n still */ param p: string = "a\\n\\u{1F600}"');
    expect(lines[0][0]).toEqual(['/// Doc.', 'comment.line.documentation.mcl']);
    expect(lines[1][0]).toEqual(['// note', 'comment.line.double-slash.mcl']);
    expect(lines[3][0][1]).toBe('comment.block.mcl');
    const last = lines[3];
    expect(last.find(([t]) => t === '\\n')?.[1]).toBe('constant.character.escape.mcl');
    expect(last.find(([t]) => t === '\\u{1F600}')?.[1]).toBe('constant.character.escape.unicode.mcl');
  });

  it('scopes sizes, durations, rates and plain numbers', () => {
    const src = 'memory 256MiB\nconnect a.b -> c.d { rate 500/s burst 50; timeout 2s; max_message 64KiB }\nbad 64KB';
    expect(scopeOf(src, '256MiB')).toBe('constant.numeric.size.mcl');
    expect(scopeOf(src, '500/s')).toBe('constant.numeric.rate.mcl');
    expect(scopeOf(src, '2s')).toBe('constant.numeric.duration.mcl');
    expect(scopeOf(src, '50')).toBe('constant.numeric.mcl');
    expect(scopeOf(src, '64KB')).toBe('invalid.illegal.unit.mcl');
  });

  it('treats contextual keywords as names where they are names', () => {
    const lines = tokenize('component C {\n  require log: Logs\n  memory 64MiB\n}\ntype T = { from: string }');
    expect(lines[1].find(([t]) => t === 'log')?.[1]).toBe('variable.other.property.port.mcl');
    expect(lines[2].find(([t]) => t === 'memory')?.[1]).toBe('keyword.other.mcl');
    expect(lines[4].find(([t]) => t === 'from')?.[1]).not.toBe('keyword.other.mcl');
  });

  it('scopes contextual keywords used as instance and port names as names', () => {
    const lines = tokenize('system S {\n  connect no.path -> session.path\n  expose on.tcp on tcp 80\n  per session\n}');
    const scopes = new Map(lines[1].filter(([t]) => t.trim()).map(([t, s]) => [t, s]));
    expect(scopes.get('no')).toBe('variable.other.instance.mcl');
    expect(scopes.get('session')).toBe('variable.other.instance.mcl');
    expect(lines[1].filter(([t]) => t === 'path').map(([, s]) => s)).toEqual(['variable.other.property.mcl', 'variable.other.property.mcl']);
    expect(lines[1].find(([t]) => t === 'connect')?.[1]).toBe('keyword.control.wiring.mcl');
    // `on.tcp` is a port reference; the `on tcp` after it is the exposure's keywords.
    expect(lines[2].filter(([t]) => t === 'on' || t === 'tcp').map(([, s]) => s)).toEqual([
      'variable.other.instance.mcl',
      'variable.other.property.mcl',
      'keyword.other.mcl',
      'keyword.other.mcl',
    ]);
    expect(lines[3].find(([t]) => t === 'session')?.[1]).toBe('keyword.other.mcl');
  });

  it('treats four or more slashes as a plain comment, not documentation', () => {
    const lines = tokenize('//// divider\n/// doc\n///');
    expect(lines[0][0]).toEqual(['//// divider', 'comment.line.double-slash.mcl']);
    expect(lines[1][0]).toEqual(['/// doc', 'comment.line.documentation.mcl']);
    expect(lines[2][0]).toEqual(['///', 'comment.line.documentation.mcl']);
  });

  it('does not pair `<` with `>`, so `->` is not an unmatched bracket', () => {
    const config = JSON.parse(readFileSync(join(here, '..', 'language-configuration.json'), 'utf8'));
    const pairs = [...config.brackets, ...config.surroundingPairs, ...config.autoClosingPairs.map((p: { open: string; close: string }) => [p.open, p.close])];
    expect(pairs.some(([open, close]: string[]) => open === '<' || close === '>')).toBe(false);
    expect(config.brackets).toEqual([['{', '}'], ['[', ']'], ['(', ')']]);
  });

  it('scopes imports and wiring', () => {
    const src = 'import std.http.{Http, Request as Req}\nsystem S {\n  web = Web\n  connect web.api -> app.api\n}';
    expect(scopeOf(src, 'import')).toBe('keyword.control.import.mcl');
    expect(scopeOf(src, 'std')).toBe('entity.name.namespace.mcl');
    expect(scopeOf(src, 'as')).toBe('keyword.control.as.mcl');
    expect(scopeOf(src, 'web')).toBe('variable.other.instance.mcl');
    expect(scopeOf(src, 'connect')).toBe('keyword.control.wiring.mcl');
    expect(scopeOf(src, '->')).toBe('keyword.operator.arrow.mcl');
  });

  it('tokenizes every example and stdlib file without leaving open scopes', () => {
    // The check can fail: an unterminated block comment leaves a scope open.
    expect((grammar.tokenizeLine('/* open', vsctm.INITIAL).ruleStack as unknown as { depth: number }).depth).toBeGreaterThan(1);
    const root = join(here, '..', '..');
    const files = ['stdlib/prelude.mcl', 'stdlib/http.mcl', 'examples/webstack/webstack.mcl'];
    for (const f of files) {
      const text = readFileSync(join(root, f), 'utf8');
      let state = vsctm.INITIAL;
      for (const line of text.split('\n')) state = grammar.tokenizeLine(line, state).ruleStack;
      // Back at the top level: no string or block comment left open.
      expect((state as unknown as { depth: number }).depth, f).toBe(1);
    }
  });
});
