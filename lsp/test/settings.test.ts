// Settings changed while the server runs, through the real server: pushed in
// `workspace/didChangeConfiguration` by a client that does not answer
// `workspace/configuration`, and pulled from one that does. Each setting the
// server has takes effect without a restart; bad values are refused with a
// message.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClient, STDLIB, type Client } from './harness';

const MAIN = `import std.http.{Http, Extra}
component Web {
  expose http: Http on tcp 8080
  param e: Extra = 1
}
system S { web = Web }
deploy S
deploy S
`;

let altStdlib: string;
beforeAll(() => {
  // A second standard library that declares one more type in std.http.
  altStdlib = mkdtempSync(join(tmpdir(), 'mcl-alt-stdlib-'));
  cpSync(STDLIB, altStdlib, { recursive: true });
  writeFileSync(join(altStdlib, 'http.mcl'), `${readFileSync(join(STDLIB, 'http.mcl'), 'utf8')}\ntype Extra = int\n`);
});
afterAll(() => rmSync(altStdlib, { recursive: true, force: true }));

// Two `deploy` declarations are a warning while only checking, and an error when the plan is assembled too.
const twoDeploys = (severity: number) => (d: { code?: unknown; severity?: number }[]) => d.some((x) => x.code === 'MCL0605' && x.severity === severity);

describe('settings pushed by the client', () => {
  let client: Client;
  const messages: string[] = [];
  beforeAll(async () => {
    client = await startClient({ 'main.mcl': MAIN });
    client.conn.onNotification('window/showMessage', (p: { message: string }) => {
      messages.push(p.message);
    });
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl', (d) => d.some((x) => x.code === 'MCL0202') && twoDeploys(2)(d));
  });
  afterAll(() => client.close());

  it('switches plan checks on and off', async () => {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { mcl: { diagnostics: { planChecks: true } } } });
    await client.waitForDiagnostics('main.mcl', twoDeploys(1));
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { mcl: {} } });
    await client.waitForDiagnostics('main.mcl', twoDeploys(2));
  });

  it('reads another standard library folder, and refuses one without a prelude', async () => {
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { stdlibPath: altStdlib, emitPlan: true } });
    await client.waitForDiagnostics('main.mcl', (d) => !d.some((x) => x.code === 'MCL0202') && twoDeploys(1)(d));
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: { stdlibPath: client.root, debounceMs: 'soon' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(messages.join('\n')).toContain('has no prelude.mcl');
    expect(messages.join('\n')).toContain('debounceMs must be a number');
  });
});

describe('settings pulled from the client', () => {
  let client: Client;
  let section: unknown = { stdlibPath: '' };
  beforeAll(async () => {
    client = await startClient({ 'main.mcl': MAIN }, {}, { workspace: { workspaceFolders: true, configuration: true, didChangeConfiguration: { dynamicRegistration: true } } });
    client.conn.onRequest('workspace/configuration', () => [section]);
    client.open('main.mcl', MAIN);
    await client.waitForDiagnostics('main.mcl', (d) => d.some((x) => x.code === 'MCL0202'));
  });
  afterAll(() => client.close());

  it('asks again for the section on each change notification', async () => {
    section = { stdlibPath: altStdlib, diagnostics: { debounceMs: 5, planChecks: false } };
    await client.conn.sendNotification('workspace/didChangeConfiguration', { settings: null });
    await client.waitForDiagnostics('main.mcl', (d) => !d.some((x) => x.code === 'MCL0202'));
  });
});
