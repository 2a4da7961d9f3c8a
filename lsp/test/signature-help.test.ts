// Signature help inside the braces of an instance and of a channel, through
// the real server, for a client with label offsets and Markdown and for one
// with neither.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignatureHelp } from 'vscode-languageserver-protocol';
import { positionAt, startClient, type Client } from './harness';
import { at, MAIN, SHOP_FILES } from './fixtures';

const RICH = {
  textDocument: {
    signatureHelp: { signatureInformation: { documentationFormat: ['markdown', 'plaintext'], parameterInformation: { labelOffsetSupport: true } } },
  },
};

let rich: Client;
let plain: Client;
beforeAll(async () => {
  [rich, plain] = await Promise.all([startClient(SHOP_FILES, {}, RICH), startClient(SHOP_FILES)]);
  for (const c of [rich, plain]) {
    c.open('main.mcl', MAIN);
    await c.waitForDiagnostics('main.mcl');
  }
});
afterAll(async () => {
  await Promise.all([rich.close(), plain.close()]);
});

const help = (c: Client, offset: number, text = MAIN) =>
  c.conn.sendRequest('textDocument/signatureHelp', { textDocument: { uri: c.uri('main.mcl') }, position: positionAt(text, offset) }) as Promise<SignatureHelp | null>;

function activeLabel(h: SignatureHelp): string {
  const sig = h.signatures[h.activeSignature ?? 0];
  const p = sig.parameters![h.activeParameter ?? 0];
  return typeof p.label === 'string' ? p.label : sig.label.slice(p.label[0], p.label[1]);
}

describe('signature help', () => {
  it("lists an instance's parameters with types, defaults and docs, and the instance settings", async () => {
    const h = (await help(rich, at(MAIN, 'max_quantity = 5', 3)))!;
    const sig = h.signatures[0];
    expect(sig.label).toMatch(/^app = App \{ max_quantity: int\(1\.\.100\) = 10, greeting: string\(max 16\) = "hi", single, replicas N, /);
    expect(activeLabel(h)).toBe('max_quantity: int(1..100) = 10');
    const doc = sig.parameters![h.activeParameter!].documentation as { kind: string; value: string };
    expect(doc.kind).toBe('markdown');
    expect(doc.value).toContain('Largest quantity accepted.');
    expect(doc.value).toContain('default `10`');
  });

  it('follows the setting being written', async () => {
    const text = MAIN.replace('{ max_quantity = 5 }', '{ max_quantity = 5; replicas 2 }');
    rich.change('main.mcl', text);
    await rich.waitForDiagnostics('main.mcl', (d) => !d.some((x) => x.severity === 1));
    expect(activeLabel((await help(rich, at(text, 'replicas 2', 9), text))!)).toBe('replicas N');
    rich.change('main.mcl', MAIN);
  });

  it("lists a channel's attributes, with the protocol's operations under `allow`", async () => {
    const h = (await help(rich, at(MAIN, 'allow place', 6)))!;
    expect(h.signatures[0].label).toBe(
      'connect web.orders -> app.orders { rate N/s [burst N], max_message SIZE, timeout DURATION, allow op, ..., max_inflight N, declassifies LABEL -> LABEL, query }',
    );
    expect(activeLabel(h)).toBe('allow op, ...');
    const doc = h.signatures[0].parameters![h.activeParameter!].documentation as { value: string };
    expect(doc.value).toContain('`place`, `cancel`');
  });

  it('gives plain text and parameter labels as text to a client that did not ask for more', async () => {
    const h = (await help(plain, at(MAIN, 'max_quantity = 5', 3)))!;
    const p = h.signatures[0].parameters![h.activeParameter!];
    expect(p.label).toBe('max_quantity: int(1..100) = 10');
    expect(typeof p.documentation).toBe('string');
    expect(p.documentation).not.toContain('`');
  });

  it('is silent outside the braces', async () => {
    expect(await help(rich, at(MAIN, 'app = App', 2))).toBeNull();
    expect(await help(rich, at(MAIN, 'component App', 3))).toBeNull();
  });
});
