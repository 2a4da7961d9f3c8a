// Whole-file source actions and unused imports, through the real server:
// the MCL0212 warning with its "unnecessary" tag and quick fix,
// `source.organizeImports` and `source.fixAll`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CodeAction, Diagnostic, TextEdit } from 'vscode-languageserver-protocol';
import { startClient, type Client } from './harness';

const TYPES = `type Order = { item: string }
protocol Orders { call place(Order) -> Order }
`;

const MESSY = `// The shop.
import shop.types.{Orders}
// Logging comes from the standard library.
import std.log.{Logs} // kept
import std.kv.{Kv}
import std.http.{Request, Http}
import shop.types.{Order, Orders}
import std.http.{Http}

component App {
  provide orders: Orders
  expose http: Http on tcp 8080
  require log: Logs
  param o: string = "x"
}
`;

const ORGANIZED = `// The shop.
import std.http.{Http}
// Logging comes from the standard library.
import std.log.{Logs} // kept
import shop.types.{Orders}

component App {
  provide orders: Orders
  expose http: Http on tcp 8080
  require log: Logs
  param o: string = "x"
}
`;

const FIXABLE = `import std.kv.{Kv}
import std.sql.{Sql}
component Tiny { memory 64 }
component App { require db: Sql }
component Db { provide sql: Sql }
system Shop {
  app = App
  db = Db
  connect db.sql -> app.db
}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'shop/types.mcl': TYPES, 'messy.mcl': MESSY, 'fixable.mcl': FIXABLE });
});
afterAll(() => client.close());

function apply(text: string, edits: TextEdit[]): string {
  const offset = (p: { line: number; character: number }) => {
    const lines = text.split('\n');
    let o = 0;
    for (let i = 0; i < p.line; i++) o += lines[i].length + 1;
    return o + p.character;
  };
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  for (const e of sorted) text = text.slice(0, offset(e.range.start)) + e.newText + text.slice(offset(e.range.end));
  return text;
}

async function actions(path: string, only?: string[], diagnostics: Diagnostic[] = []): Promise<CodeAction[]> {
  return (await client.conn.sendRequest('textDocument/codeAction', {
    textDocument: { uri: client.uri(path) },
    range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
    context: { diagnostics, ...(only ? { only } : {}) },
  })) as CodeAction[];
}

describe('unused imports', () => {
  it('are warnings tagged unnecessary, each with a quick fix that removes it', async () => {
    client.open('messy.mcl', MESSY);
    const ds = await client.waitForDiagnostics('messy.mcl', (d) => d.some((x) => x.code === 'MCL0212'));
    const unused = ds.filter((d) => d.code === 'MCL0212');
    expect(unused.map((d) => [d.range.start.line, d.severity, d.tags])).toEqual([
      [4, 2, [1]],
      [5, 2, [1]],
      [6, 2, [1]],
      [7, 2, [1]],
    ]);
    const fixes = await actions('messy.mcl', undefined, [unused[0]]);
    const quick = fixes.find((a) => a.kind === 'quickfix')!;
    expect(quick.title).toBe('Remove the unused import of `std.kv`');
    expect(apply(MESSY, quick.edit!.changes![client.uri('messy.mcl')])).not.toContain('std.kv');
  });
});

describe('organize imports', () => {
  it('drops unused imports, merges and sorts the rest, keeping comments', async () => {
    client.open('messy.mcl', MESSY);
    await client.waitForDiagnostics('messy.mcl', (d) => d.some((x) => x.code === 'MCL0212'));
    const [action] = await actions('messy.mcl', ['source.organizeImports']);
    expect(action.kind).toBe('source.organizeImports');
    const organized = apply(MESSY, action.edit!.changes![client.uri('messy.mcl')]);
    expect(organized).toBe(ORGANIZED);
    // Organised imports are left alone.
    client.change('messy.mcl', organized);
    await client.waitForDiagnostics('messy.mcl', (d) => !d.some((x) => x.code === 'MCL0212'));
    expect(await actions('messy.mcl', ['source.organizeImports'])).toEqual([]);
    client.change('messy.mcl', MESSY);
  });

  it('is not offered when only quick fixes are asked for', async () => {
    const got = await actions('messy.mcl', ['quickfix']);
    expect(got.filter((a) => a.kind?.startsWith('source'))).toEqual([]);
  });
});

describe('fix all', () => {
  it('applies every unambiguous fix of the file at once', async () => {
    client.open('fixable.mcl', FIXABLE);
    await client.waitForDiagnostics('fixable.mcl', (d) => d.length >= 3);
    const [action] = await actions('fixable.mcl', ['source.fixAll']);
    expect(action.kind).toBe('source.fixAll');
    const fixed = apply(FIXABLE, action.edit!.changes![client.uri('fixable.mcl')]);
    expect(fixed).toContain('memory 64MiB');
    expect(fixed).toContain('connect app.db -> db.sql');
    expect(fixed).not.toContain('std.kv');
    client.change('fixable.mcl', fixed);
    const after = await client.waitForDiagnostics('fixable.mcl', (d) => !d.some((x) => x.code === 'MCL0212'));
    expect(after.filter((d) => d.severity === 1)).toEqual([]);
  });
});

describe('organize imports leaves alone', () => {
  it('imports that share their line with other code', async () => {
    const text = 'import std.kv.{Kv} import std.http.{Http}\ncomponent A { provide h: Http }\n';
    client.open('oneline.mcl', text);
    await client.waitForDiagnostics('oneline.mcl', (d) => d.some((x) => x.code === 'MCL0212'));
    expect(await actions('oneline.mcl', ['source.organizeImports'])).toEqual([]);
  });
});
