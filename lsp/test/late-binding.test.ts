// The editor knows late binding (`connect a.db -> x.sql | y.sql`): hover on the
// connection lists the candidates, each candidate's names resolve (definition,
// semantic tokens), and completion offers instances after `|`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletionItem, CompletionList, Hover, Location, SemanticTokens } from 'vscode-languageserver-protocol';
import { parseFixture, positionAt, startClient, type Client } from './harness';

const SRC = `protocol Sql { call query(string) -> string }
component App { require db: Sql }
component Db { provide sql: Sql }
system S {
  app = App
  db1 = Db
  db2 = Db
  connect app.db -> db1.sql | db2.sql
}
deploy S
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'main.mcl': SRC });
  client.open('main.mcl', SRC);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

async function complete(marked: string): Promise<string[]> {
  const f = parseFixture(marked);
  client.open('edit.mcl', f.text);
  const r = (await client.conn.sendRequest('textDocument/completion', {
    textDocument: { uri: client.uri('edit.mcl') },
    position: positionAt(f.text, f.cursors[0]),
  })) as CompletionList | CompletionItem[] | null;
  return (Array.isArray(r) ? r : (r?.items ?? [])).map((i) => i.label);
}

describe('late binding in the editor', () => {
  it('hover on the connection lists its candidates, the initial one marked', async () => {
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(SRC, SRC.indexOf('connect app.db')),
    })) as Hover | null;
    expect((h?.contents as { value: string }).value).toContain('candidates db1.sql (initial) | db2.sql');
  });

  it('resolves a candidate after `|` to its instance', async () => {
    const locs = (await client.conn.sendRequest('textDocument/definition', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(SRC, SRC.indexOf('db2.sql')),
    })) as Location[];
    expect(locs).toHaveLength(1);
    expect(locs[0].range.start).toEqual(positionAt(SRC, SRC.indexOf('db2 = Db')));
  });

  it('gives a candidate semantic tokens as any port reference', async () => {
    const tokens = (await client.conn.sendRequest('textDocument/semanticTokens/full', { textDocument: { uri: client.uri('main.mcl') } })) as SemanticTokens;
    const lineOf = SRC.split('\n').findIndex((l) => l.includes('| db2.sql'));
    const col = SRC.split('\n')[lineOf].indexOf('db2');
    let line = 0;
    let char = 0;
    const found: number[] = [];
    for (let i = 0; i < tokens.data.length; i += 5) {
      line += tokens.data[i];
      char = tokens.data[i] === 0 ? char + tokens.data[i + 1] : tokens.data[i + 1];
      if (line === lineOf) found.push(char);
    }
    expect(found).toContain(col);
    expect(found).toContain(col + 'db2.'.length);
  });

  it('offers the instances after `|`, and their provided ports after the dot', async () => {
    const sys = (conn: string) => `${SRC.replace(/system S[\s\S]*$/, '')}system T {\n  app = App\n  db1 = Db\n  db2 = Db\n  ${conn}\n}\n`;
    expect(await complete(sys('connect app.db -> db1.sql | $0'))).toEqual(expect.arrayContaining(['app', 'db1', 'db2']));
    expect(await complete(sys('connect app.db -> db1.sql | db2.$0'))).toEqual(['sql']);
  });
});
