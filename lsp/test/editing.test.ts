// Document features: outline and workspace symbols, folding, semantic tokens,
// formatting, inlay hints and quick fixes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CodeAction, Diagnostic, DocumentSymbol, FoldingRange, InlayHint, SemanticTokens, SymbolInformation, TextEdit } from 'vscode-languageserver-protocol';
import { startClient, type Client } from './harness';
import { at, MAIN, SHOP_FILES } from './fixtures';

const SWAPPED = `import std.sql.{Sql}
component App { require db: Sql }
component Db { provide sql: Sql }
system Shop {
  app = App
  db = Db
  connect db.sql -> app.db
}
`;

const UNFORMATTED = `component   Tiny {memory 64MiB
provide  kv: std.kv.Kv}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ ...SHOP_FILES, 'swapped/swapped.mcl': SWAPPED, 'fmt.mcl': UNFORMATTED });
  client.open('main.mcl', MAIN);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

const doc = (path: string) => ({ textDocument: { uri: client.uri(path) } });

describe('symbols', () => {
  it('gives a hierarchical outline of a document', async () => {
    const syms = (await client.conn.sendRequest('textDocument/documentSymbol', doc('main.mcl'))) as DocumentSymbol[];
    const names = syms.map((s) => s.name);
    expect(names).toEqual(['Web', 'App', 'Db', 'Shop', 'deploy Shop']);
    const app = syms.find((s) => s.name === 'App')!;
    expect(app.children!.map((c) => c.name)).toEqual(['orders', 'db', 'max_quantity', 'greeting']);
    const shop = syms.find((s) => s.name === 'Shop')!;
    expect(shop.children!.map((c) => c.name)).toContain('web.orders -> app.orders');
  });

  it('finds declarations across the workspace by fuzzy name', async () => {
    const syms = (await client.conn.sendRequest('workspace/symbol', { query: 'ordr' })) as SymbolInformation[];
    const names = syms.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['Order', 'Orders']));
    expect(syms.find((s) => s.name === 'Orders')!.location.uri).toBe(client.uri('shop/types.mcl'));
  });
});

describe('folding', () => {
  it('folds declarations, nested blocks and the import list', async () => {
    const ranges = (await client.conn.sendRequest('textDocument/foldingRange', doc('main.mcl'))) as FoldingRange[];
    const starts = ranges.map((r) => `${r.startLine}-${r.endLine}${r.kind ? ':' + r.kind : ''}`);
    expect(starts).toContain('0-2:imports');
    // `component Web {` on line 5 folds to the line before its closing brace.
    expect(starts).toContain('5-9');
    // `policy {` inside the system.
    expect(starts).toContain('31-32');
  });
});

describe('semantic tokens', () => {
  it('classifies names by what they resolve to', async () => {
    const tokens = (await client.conn.sendRequest('textDocument/semanticTokens/full', doc('main.mcl'))) as SemanticTokens;
    const legend = ['namespace', 'type', 'class', 'enum', 'interface', 'struct', 'parameter', 'variable', 'property', 'enumMember', 'method', 'keyword', 'comment', 'string', 'number', 'operator'];
    // Decode the relative encoding into absolute (line, char, length, type, mods).
    const decoded: { line: number; char: number; len: number; type: string; mods: number }[] = [];
    let line = 0;
    let char = 0;
    for (let i = 0; i < tokens.data.length; i += 5) {
      line += tokens.data[i];
      char = tokens.data[i] === 0 ? char + tokens.data[i + 1] : tokens.data[i + 1];
      decoded.push({ line, char, len: tokens.data[i + 2], type: legend[tokens.data[i + 3]], mods: tokens.data[i + 4] });
    }
    const lines = MAIN.split('\n');
    const find = (l: number, word: string) => decoded.find((t) => t.line === l && lines[l].slice(t.char, t.char + t.len) === word);
    expect(find(12, 'App')?.type).toBe('class');
    expect(find(12, 'App')!.mods & 1).toBe(1); // declaration
    expect(find(14, 'Orders')?.type).toBe('interface');
    expect(find(26, 'web')?.type).toBe('variable');
    expect(find(29, 'orders')?.type).toBe('property');
    expect(find(7, 'Http')!.mods & 2).toBe(2); // defaultLibrary
    expect(find(17, 'param')?.type).toBe('keyword');
    expect(find(4, '/// The front end.')?.type).toBe('comment');
    expect(find(4, '/// The front end.')!.mods & 8).toBe(8); // documentation
    expect(find(7, '8080')?.type).toBe('number');
    expect(find(18, '"hi"')?.type).toBe('string');
    expect(find(6, 'memory')?.type).toBe('keyword');
  });
});

describe('formatting', () => {
  it('formats a document through the Prettier plugin', async () => {
    client.open('fmt.mcl', UNFORMATTED);
    const edits = (await client.conn.sendRequest('textDocument/formatting', { ...doc('fmt.mcl'), options: { tabSize: 2, insertSpaces: true } })) as TextEdit[];
    expect(edits).toHaveLength(1);
    expect(edits[0].newText).toContain('component Tiny {');
    expect(edits[0].newText).toMatch(/\n {2}memory 64MiB\n/);
  });
});

describe('inlay hints', () => {
  it('shows replica counts, memory and defaulted parameters after instances', async () => {
    const hints = (await client.conn.sendRequest('textDocument/inlayHint', {
      ...doc('main.mcl'),
      range: { start: { line: 0, character: 0 }, end: { line: 40, character: 0 } },
    })) as InlayHint[];
    const byLine = new Map(hints.map((h) => [h.position.line, String(h.label)]));
    expect(byLine.get(26)).toBe('×3 · 128MiB each');
    expect(byLine.get(27)).toBe('greeting = "hi"');
    // Right after the component name of `  web = Web`.
    expect(hints.find((h) => h.position.line === 26)!.position.character).toBe(at(MAIN, 'web = Web', 9) - at(MAIN, 'web = Web') + 2);
  });
});

describe('code actions', () => {
  it('offers the compiler fix that swaps a backwards connect', async () => {
    client.open('swapped/swapped.mcl', SWAPPED);
    const diags = await client.waitForDiagnostics('swapped/swapped.mcl', (ds) => ds.some((d) => d.data));
    const withFix = diags.find((d: Diagnostic) => d.data)!;
    const actions = (await client.conn.sendRequest('textDocument/codeAction', {
      ...doc('swapped/swapped.mcl'),
      range: withFix.range,
      context: { diagnostics: [withFix] },
    })) as CodeAction[];
    expect(actions.length).toBeGreaterThan(0);
    expect(actions[0].kind).toBe('quickfix');
    const edits = actions[0].edit!.changes![client.uri('swapped/swapped.mcl')];
    // Apply the edits and check the connect now goes from the require port.
    const lines = SWAPPED.split('\n');
    let text = SWAPPED;
    const offset = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
    for (const e of [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start))) {
      text = text.slice(0, offset(e.range.start)) + e.newText + text.slice(offset(e.range.end));
    }
    expect(text).toContain('connect app.db -> db.sql');
  });
});

describe('more quick fixes', () => {
  it('wires an unwired required port to the only provider', async () => {
    const text = `import std.kv.{Kv}\ncomponent App { require store: Kv }\ncomponent Store { provide kv: Kv }\nsystem Shop {\n  app = App\n  store = Store\n}\n`;
    client.open('unwired.mcl', text);
    const diags = await client.waitForDiagnostics('unwired.mcl', (ds) => ds.some((d) => d.data));
    const withFix = diags.find((d) => d.data)!;
    const actions = (await client.conn.sendRequest('textDocument/codeAction', {
      ...doc('unwired.mcl'),
      range: withFix.range,
      context: { diagnostics: [withFix] },
    })) as CodeAction[];
    const edits = actions[0].edit!.changes![client.uri('unwired.mcl')];
    expect(edits.map((e) => e.newText).join('')).toMatch(/connect app\.store -> store\.kv/);
  });

  it('imports an unknown name from the standard library module that declares it', async () => {
    const text = `/// A web front.\ncomponent Front {\n  provide api: Http\n}\n`;
    client.open('noimport.mcl', text);
    const diags = await client.waitForDiagnostics('noimport.mcl', (ds) => ds.some((d) => d.code === 'MCL0203'));
    const unknown = diags.find((d) => d.code === 'MCL0203')!;
    const actions = (await client.conn.sendRequest('textDocument/codeAction', {
      ...doc('noimport.mcl'),
      range: unknown.range,
      context: { diagnostics: [unknown] },
    })) as CodeAction[];
    const imp = actions.find((a) => a.title === 'Import `Http` from `std.http`');
    expect(imp, JSON.stringify(actions.map((a) => a.title))).toBeDefined();
    const [edit] = imp!.edit!.changes![client.uri('noimport.mcl')];
    expect(edit).toEqual({ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, newText: 'import std.http.{Http}\n\n' });
  });

  it('extends an existing import list of the same module', async () => {
    const text = `import std.http.{Request}\ncomponent Front {\n  provide api: Http\n}\n`;
    client.open('partial.mcl', text);
    const diags = await client.waitForDiagnostics('partial.mcl', (ds) => ds.some((d) => d.code === 'MCL0203'));
    const unknown = diags.find((d) => d.code === 'MCL0203')!;
    const actions = (await client.conn.sendRequest('textDocument/codeAction', {
      ...doc('partial.mcl'),
      range: unknown.range,
      context: { diagnostics: [unknown] },
    })) as CodeAction[];
    const [edit] = actions.find((a) => a.title.startsWith('Import `Http`'))!.edit!.changes![client.uri('partial.mcl')];
    expect(edit).toEqual({ range: { start: { line: 0, character: 24 }, end: { line: 0, character: 24 } }, newText: ', Http' });
  });
});
