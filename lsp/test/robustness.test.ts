// Every request at many positions of the examples and of broken sources
// answers without an error, and the server stays up.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { positionAt, REPO, startClient, type Client } from './harness';

const webstack = readFileSync(join(REPO, 'examples/webstack/webstack.mcl'), 'utf8');
const broken: Record<string, string> = {};
for (const f of readdirSync(join(REPO, 'examples/broken'))) {
  if (f.endsWith('.mcl')) broken[`broken/${f}`] = readFileSync(join(REPO, 'examples/broken', f), 'utf8');
}

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'webstack.mcl': webstack, ...broken });
});
afterAll(() => client.close());

async function probe(path: string, text: string, step: number): Promise<string[]> {
  const failures: string[] = [];
  const uri = client.uri(path);
  const doc = { textDocument: { uri } };
  for (const [method, params] of [
    ['textDocument/documentSymbol', doc],
    ['textDocument/foldingRange', doc],
    ['textDocument/semanticTokens/full', doc],
    ['textDocument/inlayHint', { ...doc, range: { start: { line: 0, character: 0 }, end: positionAt(text, text.length) } }],
    ['textDocument/documentLink', doc],
    ['textDocument/codeLens', doc],
    ['textDocument/codeAction', { ...doc, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, context: { diagnostics: [] } }],
    ['workspace/willRenameFiles', { files: [{ oldUri: uri, newUri: uri.replace(/\.mcl$/, '_moved.mcl') }] }],
  ] as const) {
    try {
      await client.conn.sendRequest(method, params);
    } catch (e) {
      failures.push(`${method}: ${String(e)}`);
    }
  }
  for (let offset = 0; offset < text.length; offset += step) {
    const position = positionAt(text, offset);
    for (const method of ['textDocument/hover', 'textDocument/definition', 'textDocument/completion', 'textDocument/references', 'textDocument/signatureHelp']) {
      try {
        await client.conn.sendRequest(method, { ...doc, position, context: { includeDeclaration: true } });
      } catch (e) {
        failures.push(`${method} at ${position.line}:${position.character}: ${String(e)}`);
      }
    }
  }
  return failures;
}

describe('robustness', () => {
  it('answers every request across the webstack example', async () => {
    client.open('webstack.mcl', webstack);
    expect(await probe('webstack.mcl', webstack, 5)).toEqual([]);
  });

  it('answers every request across the broken examples', async () => {
    const failures: string[] = [];
    for (const [path, text] of Object.entries(broken)) {
      client.open(path, text);
      failures.push(...(await probe(path, text, 11)));
    }
    expect(failures).toEqual([]);
    expect(client.proc.exitCode).toBeNull();
  });
});
