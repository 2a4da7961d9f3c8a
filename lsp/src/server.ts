// Entry point of the bundled language server (`node lsp/dist/server.cjs --stdio`,
// or `mclc lsp`). `--stdio` (the default) talks over standard input and output
// through a guard that answers every request after `shutdown` with an error,
// as the protocol requires (and the server exits when its input ends); `--node-ipc` and `--socket=N` go to
// `createConnection`, which picks those transports from the command line.

import {
  createConnection,
  ErrorCodes,
  ProposedFeatures,
  StreamMessageReader,
  type DataCallback,
  type Message,
  type MessageReader,
  type MessageWriter,
} from 'vscode-languageserver/node';
import { SERVER_VERSION, startServer } from './service';
import { ImmediateStreamWriter } from './transport';

const USAGE = `Usage: mcl-lsp [--stdio | --node-ipc | --socket=PORT]

The mcl language server. Editors start it and talk the Language Server
Protocol to it, over standard input and output by default.

Options:
  --stdio          talk over standard input and output (the default)
  --node-ipc       talk over Node's IPC channel (VS Code's node transport)
  --socket=PORT    connect to a socket on localhost
  --version        print the version and exit
  --help           print this help and exit
`;

const args = process.argv.slice(2);
if (args.includes('--version') || args.includes('-V')) {
  process.stdout.write(`${SERVER_VERSION}\n`);
  process.exit(0);
}
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const viaStdio = !args.some((a) => a === '--node-ipc' || a.startsWith('--socket') || a.startsWith('--pipe'));
const connection = viaStdio ? stdioConnection() : createConnection(ProposedFeatures.all);
// The bundle is CommonJS, so `__dirname` is the folder holding server.cjs.
startServer(connection, __dirname);
connection.listen();

function stdioConnection() {
  const writer = new ImmediateStreamWriter(process.stdout);
  const conn = createConnection(ProposedFeatures.all, refuseAfterShutdown(new StreamMessageReader(process.stdin), writer), writer);
  // Standard output carries the protocol: stray console output goes to standard error instead.
  for (const level of ['log', 'info', 'warn', 'debug'] as const) console[level] = (...a: unknown[]) => console.error(...a);
  // The client is gone when standard input ends: exit as the protocol asks (0 after shutdown, else 1).
  const gone = (): never => process.exit(shutDown ? 0 : 1);
  process.stdin.on('end', gone);
  process.stdin.on('close', gone);
  return conn;
}

let shutDown = false;

/**
 * After the client's `shutdown` request every other request is answered
 * with InvalidRequest and not handled (only the `exit` notification still
 * counts). The connection library would answer them normally.
 */
function refuseAfterShutdown(reader: MessageReader, writer: MessageWriter): MessageReader {
  return {
    onError: reader.onError,
    onClose: reader.onClose,
    onPartialMessage: reader.onPartialMessage,
    dispose: () => reader.dispose(),
    listen(callback: DataCallback) {
      return reader.listen((msg: Message) => {
        const m = msg as Message & { id?: number | string | null; method?: string };
        if (shutDown && m.method !== undefined && m.id !== undefined && m.id !== null) {
          void writer.write({
            jsonrpc: '2.0',
            id: m.id,
            error: { code: ErrorCodes.InvalidRequest, message: `the server is shut down; ${m.method} is not handled` },
          } as Message);
          return;
        }
        if (m.method === 'shutdown') shutDown = true;
        callback(msg);
      });
    },
  };
}
