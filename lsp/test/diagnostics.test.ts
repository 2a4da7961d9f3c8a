// Workspace diagnostics: every file is checked, not only open ones; edits
// update them; syntax errors of unchanged files survive later builds; policy
// counterexamples arrive as related information.

import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { msg, startClient, type Client } from './harness';
import { MAIN, SHOP_FILES } from './fixtures';

let client: Client | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
});

describe('diagnostics', () => {
  it('reports problems in files that are not open', async () => {
    client = await startClient({ ...SHOP_FILES, 'broken.mcl': 'component Broken {\n  require db: NoSuchProtocol\n}\n' });
    const d = await client.waitForDiagnostics('broken.mcl', (ds) => ds.length > 0);
    expect(d[0].message).toMatch(/NoSuchProtocol/);
    expect(d[0].code).toMatch(/^MCL02/);
    expect(d[0].source).toBe('mcl');
    expect(d[0].range.start).toEqual({ line: 1, character: 14 });
  });

  it('updates on every edit and clears fixed problems', async () => {
    client = await startClient(SHOP_FILES);
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl', (ds) => ds.every((d) => d.severity !== 1));
    client.change('main.mcl', MAIN.replace('require db: Kv', 'require db: Kvv'));
    const bad = await client.waitForDiagnostics('main.mcl', (ds) => ds.some((d) => d.severity === 1));
    expect(bad.some((d) => /Kvv/.test(msg(d)))).toBe(true);
    // The message carries the hint on how to fix it.
    expect(bad.find((d) => /Kvv/.test(msg(d)))!.message).toMatch(/Hint: /);
    client.change('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl', (ds) => ds.every((d) => d.severity !== 1));
  });

  it('follows files created, changed and deleted on disk', async () => {
    client = await startClient(SHOP_FILES, {}, { workspace: { didChangeWatchedFiles: { dynamicRegistration: true } } });
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl');
    const path = join(client.root, 'late.mcl');
    writeFileSync(path, 'component Late {\n  require db: Missing\n}\n');
    await client.conn.sendNotification('workspace/didChangeWatchedFiles', { changes: [{ uri: client.uri('late.mcl'), type: 1 }] });
    await client.waitForDiagnostics('late.mcl', (ds) => ds.some((d) => /Missing/.test(msg(d))));
    // The disk is cached while the client reports changes, so the change must be reported to be seen.
    writeFileSync(path, 'component Late {\n  require db: std.kv.Kv optional\n}\n');
    await client.conn.sendNotification('workspace/didChangeWatchedFiles', { changes: [{ uri: client.uri('late.mcl'), type: 2 }] });
    await client.waitForDiagnostics('late.mcl', (ds) => !ds.some((d) => /Missing/.test(msg(d))));
    writeFileSync(path, 'component Late {\n  require db: Gone\n}\n');
    await client.conn.sendNotification('workspace/didChangeWatchedFiles', { changes: [{ uri: client.uri('late.mcl'), type: 2 }] });
    await client.waitForDiagnostics('late.mcl', (ds) => ds.some((d) => /Gone/.test(msg(d))));
    unlinkSync(path);
    await client.conn.sendNotification('workspace/didChangeWatchedFiles', { changes: [{ uri: client.uri('late.mcl'), type: 3 }] });
    await client.waitForDiagnostics('late.mcl', (ds) => ds.length === 0);
  });

  it('finds files created on disk at the next save when the client reports no file changes', async () => {
    client = await startClient(SHOP_FILES);
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl');
    writeFileSync(join(client.root, 'later.mcl'), 'component Later {\n  require db: Absent\n}\n');
    await client.conn.sendNotification('textDocument/didSave', { textDocument: { uri: client.uri('main.mcl') } });
    await client.waitForDiagnostics('later.mcl', (ds) => ds.some((d) => /Absent/.test(msg(d))));
  });

  it('keeps syntax errors of an unchanged file when another file is edited', async () => {
    client = await startClient({ ...SHOP_FILES, 'syntax.mcl': 'component Bad {\n  memory\n  provide : Kv\n}\n' });
    client.open('main.mcl', MAIN);
    const first = await client.waitForDiagnostics('syntax.mcl', (ds) => ds.length > 0);
    client.change('main.mcl', MAIN + '\n// edited\n');
    // Let the second build finish, then check the syntax errors are still published.
    await client.waitForDiagnostics('main.mcl');
    await new Promise((r) => setTimeout(r, 150));
    const after = client.diagnostics.get(client.uri('syntax.mcl'));
    expect(after?.filter((d) => String(d.code).startsWith('MCL01')).length).toBe(first.filter((d) => String(d.code).startsWith('MCL01')).length);
    expect(first.some((d) => String(d.code).startsWith('MCL01'))).toBe(true);
  });

  it('reports a failed policy with the counterexample path as related information', async () => {
    const text = MAIN.replace('connect app.db -> db.kv', 'connect app.db -> db.kv\n  connect web.orders2 -> db.kv').replace(
      'require orders: Orders\n  replicas 3',
      'require orders: Orders\n  require orders2: std.kv.Kv\n  replicas 3',
    );
    client = await startClient({ ...SHOP_FILES, 'main.mcl': text });
    const d = await client.waitForDiagnostics('main.mcl', (ds) => ds.some((x) => String(x.code).startsWith('MCL05')));
    const policy = d.find((x) => String(x.code).startsWith('MCL05'))!;
    expect(policy.message).toMatch(/db/);
    expect(policy.relatedInformation?.length ?? 0).toBeGreaterThan(0);
    expect(policy.relatedInformation![0].location.uri).toBe(client.uri('main.mcl'));
  });
});
