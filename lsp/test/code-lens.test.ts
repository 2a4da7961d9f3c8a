// Code lenses through the real server: instance, VM and channel counts above
// systems and instances, and "Show plan" with the client command the VS Code
// extension implements.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CodeLens } from 'vscode-languageserver-protocol';
import { startClient, type Client } from './harness';
import { MAIN, SHOP_FILES } from './fixtures';

const NO_DEPLOY = `import std.kv.{Kv}
component Db { provide kv: Kv }
component Front { require kv: Kv  per session pool 2 max 8 }
system A {
  db = Db
  f = Front
  connect f.kv -> db.kv
}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ ...SHOP_FILES, 'other/nodeploy.mcl': NO_DEPLOY });
  client.open('main.mcl', MAIN);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

const lenses = async (path: string) =>
  ((await client.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: client.uri(path) } })) as CodeLens[]).map((l) => [
    l.range.start.line,
    l.command!.title,
    l.command!.command,
    ...(l.command!.arguments ?? []),
  ]);

describe('code lens', () => {
  it('counts instances, VMs and channels, and offers the plan at `deploy`', async () => {
    expect(await lenses('main.mcl')).toEqual([
      [25, '3 instances (5 VMs) · 2 channels', ''],
      [26, '3 VMs · 1 channel (0 in, 1 out)', ''],
      [27, '1 VM · 2 channels (1 in, 1 out)', ''],
      [28, '1 VM · 1 channel (1 in, 0 out)', ''],
      [36, 'Show plan', 'mcl.showPlan', client.uri('main.mcl')],
    ]);
  });

  it('offers the plan on each system of a file without `deploy`, and counts per-session pools', async () => {
    client.open('other/nodeploy.mcl', NO_DEPLOY);
    await client.waitForDiagnostics('other/nodeploy.mcl');
    expect(await lenses('other/nodeploy.mcl')).toEqual([
      [3, '2 instances (3 VMs at start, more per session) · 1 channel', ''],
      [3, 'Show plan', 'mcl.showPlan', client.uri('other/nodeploy.mcl')],
      [4, '1 VM · 1 channel (1 in, 0 out)', ''],
      [5, 'a VM per session, 2 ready · 1 channel (0 in, 1 out)', ''],
    ]);
  });
});
