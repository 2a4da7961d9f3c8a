// The build scheduler: bursts of edits are debounced into few builds, a
// request that needs checked results does not wait for the quiet period, the
// server starts from the bundle and answers initialize, and the plan request
// behind "MCL: Show Plan".

import { afterEach, describe, expect, it } from 'vitest';
import type { Hover } from 'vscode-languageserver-protocol';
import { msg, positionAt, startClient, type Client } from './harness';
import { at, MAIN, SHOP_FILES } from './fixtures';

let client: Client | undefined;
afterEach(async () => {
  await client?.close();
  client = undefined;
});

interface Stats {
  builds: number;
  abandoned: number;
}

describe('build scheduling', () => {
  it('debounces a burst of edits into a few builds and publishes the final state', async () => {
    client = await startClient(SHOP_FILES, { debounceMs: 30 });
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl');
    const before = (await client.conn.sendRequest('mcl/stats')) as Stats;
    for (let i = 0; i < 40; i++) {
      client.change('main.mcl', MAIN.replace('require db: Kv', `require db: Kv${i}`));
      await new Promise((r) => setTimeout(r, 2));
    }
    const final = await client.waitForDiagnostics('main.mcl', (ds) => ds.some((d) => /Kv39/.test(msg(d))));
    expect(final.some((d) => /Kv38/.test(msg(d)))).toBe(false);
    const after = (await client.conn.sendRequest('mcl/stats')) as Stats;
    expect(after.builds - before.builds).toBeLessThan(20);
  });

  it('starts the build at once for a request instead of waiting for the quiet period', async () => {
    client = await startClient(SHOP_FILES, { debounceMs: 60_000 });
    client.open('main.mcl', MAIN);
    const edited = MAIN.replace('param greeting', '/// Said first.\n  param greeting');
    client.change('main.mcl', edited);
    const started = Date.now();
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(edited, at(edited, 'param greeting', 8)),
    })) as Hover;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((h.contents as { value: string }).value).toContain('Said first.');
  });
});

describe('plan request', () => {
  it('returns the plan of a file for "MCL: Show Plan"', async () => {
    client = await startClient(SHOP_FILES);
    const r = (await client.conn.sendRequest('mcl/plan', { uri: client.uri('main.mcl') })) as { plan?: string; errors: unknown[] };
    expect(r.errors).toEqual([]);
    const plan = JSON.parse(r.plan!);
    expect(plan.system).toBe('main.Shop');
    expect(plan.instances.map((i: { id: string }) => i.id)).toEqual(['app', 'db', 'web']);
  });

  it('returns errors instead of a plan when the file is broken', async () => {
    client = await startClient({ ...SHOP_FILES, 'main.mcl': MAIN.replace('require db: Kv', 'require db: Nope') });
    const r = (await client.conn.sendRequest('mcl/plan', { uri: client.uri('main.mcl') })) as { plan?: string; errors: { message: string }[] };
    expect(r.plan).toBeUndefined();
    expect(r.errors.some((e) => /Nope/.test(e.message))).toBe(true);
  });
});
