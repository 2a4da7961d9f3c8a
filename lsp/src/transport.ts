// The server's side of the stdio transport: a message writer that puts each
// message on the stream at once.

import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-languageserver/node';

/**
 * Writes each message to the stream when it is sent, in the order sent. The
 * library's stream writer queues every write behind a turn of the event loop
 * (its lock takes a `setImmediate`), and V8 runs the young-generation
 * collection that a compile's allocations asked for as a task of the event
 * loop, which comes before that turn: an edit's diagnostics waited for a
 * collection that does not concern them (at 50,000 lines, most of the
 * collections of a run of edits, 5 to 25 ms each). Written at once, they are
 * on their way before the collection runs.
 */
export class ImmediateStreamWriter extends AbstractMessageWriter implements MessageWriter {
  private errorCount = 0;

  constructor(private readonly out: NodeJS.WritableStream) {
    super();
    out.on('error', (e: Error) => this.fireError(e));
    out.on('close', () => this.fireClose());
  }

  write(msg: Message): Promise<void> {
    try {
      // The framing and encoding of the library's writer: a Content-Length header of the UTF-8 body's bytes.
      const body = Buffer.from(JSON.stringify(msg), 'utf8');
      this.out.write(`Content-Length: ${body.byteLength}\r\n\r\n`, 'ascii');
      this.out.write(body);
      return Promise.resolve();
    } catch (e) {
      this.errorCount++;
      this.fireError(e, msg, this.errorCount);
      return Promise.reject(e);
    }
  }

  end(): void {
    this.out.end();
  }
}
