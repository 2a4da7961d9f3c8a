// Document links through the real server: import module paths (workspace
// and standard library) and program files, resolved from the project root as
// the compiler resolves them, and no link to a file that does not exist.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DocumentLink } from 'vscode-languageserver-protocol';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { rangeOf, startClient, STDLIB, type Client } from './harness';
import { at, TYPES } from './fixtures';

const APP = `import std.http.{Http}
import shop.types.{Orders}
import shop.missing.{Gone}

component Web {
  expose http: Http on tcp 8080
  require orders: Orders
  program {
    script "guest/web.sh"
    file "/srv/index.html" from "../www/index.html"
    file "/etc/x" from "nope.txt"
  }
}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({
    'proj/shop/types.mcl': TYPES,
    'proj/shop/app.mcl': APP,
    'proj/shop/guest/web.sh': 'echo hi\n',
    'proj/www/index.html': '<p>hi</p>\n',
  });
  client.open('proj/shop/app.mcl', APP);
  await client.waitForDiagnostics('proj/shop/app.mcl');
});
afterAll(() => client.close());

describe('document links', () => {
  it('link import paths and program files to the files the compiler reads', async () => {
    const links = (await client.conn.sendRequest('textDocument/documentLink', { textDocument: { uri: client.uri('proj/shop/app.mcl') } })) as DocumentLink[];
    const got = links.map((l) => [l.range, l.target]);
    const span = (needle: string) => rangeOf(APP, { start: at(APP, needle), end: at(APP, needle) + needle.length });
    expect(got).toEqual([
      [span('std.http'), pathToFileURL(join(STDLIB, 'http.mcl')).href],
      [span('shop.types'), client.uri('proj/shop/types.mcl')],
      [span('guest/web.sh'), client.uri('proj/shop/guest/web.sh')],
      [span('../www/index.html'), client.uri('proj/www/index.html')],
    ]);
    expect(links[1].tooltip).toBe('Open proj/shop/types.mcl');
  });
});
