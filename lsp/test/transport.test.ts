// The server's stdio writer: each message is on the stream, framed as the
// protocol asks, as soon as it is sent (before the event loop turns, when a
// pending collection would run), and a client reads the messages back in order.

import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StreamMessageReader, type Message } from 'vscode-languageserver/node';
import { ImmediateStreamWriter } from '../src/transport';

describe('ImmediateStreamWriter', () => {
  it('puts each message on the stream when it is sent, framed with its UTF-8 length, in order', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    const writer = new ImmediateStreamWriter(stream);
    const first = { jsonrpc: '2.0', method: 'textDocument/publishDiagnostics', params: { uri: 'file:///é.mcl', diagnostics: [] } } as Message;
    const second = { jsonrpc: '2.0', id: 1, result: null } as Message;
    void writer.write(first);
    void writer.write(second);
    // Nothing has been awaited: the bytes are already written.
    const written = Buffer.concat(chunks).toString('utf8');
    const body = JSON.stringify(first);
    expect(written.startsWith(`Content-Length: ${Buffer.byteLength(body, 'utf8')}\r\n\r\n${body}`)).toBe(true);
    expect(written.endsWith(JSON.stringify(second))).toBe(true);

    // A client's reader gets both, in order.
    const reader = new StreamMessageReader(toReadable(Buffer.concat(chunks)));
    const got: Message[] = [];
    await new Promise<void>((resolve) => {
      reader.listen((m) => {
        got.push(m);
        if (got.length === 2) resolve();
      });
    });
    expect(got).toEqual([first, second]);
  });
});

function toReadable(data: Buffer): PassThrough {
  const s = new PassThrough();
  s.end(data);
  return s;
}
