// The editor knows factory ports: hover on a created instance says who creates
// it and how many, completion offers `factory` and the components it may
// create, and `created` among instance settings.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletionItem, CompletionList, Hover } from 'vscode-languageserver-protocol';
import { parseFixture, positionAt, startClient, type Client } from './harness';

const FARM = `protocol Jobs { call run(string) -> string }
component Coord { require workers: factory Worker { max 8; param job } }
component Worker { param job: string  provide jobs: Jobs }
system Farm {
  c = Coord
  w = Worker { created by c.workers }
  connect c.workers -> w.jobs
}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'farm.mcl': FARM });
  client.open('farm.mcl', FARM);
  await client.waitForDiagnostics('farm.mcl');
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

describe('factory ports in the editor', () => {
  it('hover on a created instance names its creator and bound', async () => {
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('farm.mcl') },
      position: positionAt(FARM, FARM.indexOf('w = Worker')),
    })) as Hover | null;
    expect((h?.contents as { value: string }).value).toContain('created at run time by `c.workers` (at most 8 per creator)');
  });

  it('offers `factory` after `require p:`, then the components', async () => {
    expect(await complete(`${FARM}component D { require p: $0 }`)).toEqual(expect.arrayContaining(['factory', 'Jobs']));
    expect(await complete(`${FARM}component D { provide p: $0 }`)).not.toContain('factory');
    expect(await complete(`${FARM}component D { require p: factory $0 }`)).toEqual(expect.arrayContaining(['Worker', 'Coord']));
  });

  it('offers `created` among instance settings', async () => {
    expect(await complete(`${FARM}system G {\n  w = Worker { $0 }\n}`)).toContain('created');
  });
});
